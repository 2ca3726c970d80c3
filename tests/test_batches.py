"""What ``next_batch`` hands the host: well-formed plugin events, several per
batch, with the timestamps the plugin chose, then Rc.EOF for good. Also
progress and ``event_to_string``."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from falco_plugin._internal.layout import NO_VALUE, PAYLOAD_OFFSET, PLUGIN_EVENT, PLUGIN_EVENT_HEADER
from falco_plugin_tools.host import Rc
from falco_plugin_tools.host.raw import Event, Library, State, event_header, payload_of, plugin_event
from falco_plugin_tools.host.runners import Host
from harness import Built

SOURCE_ONLY_ID = 999_101
TS_BASE = 1_700_000_000_000_000_000


@pytest.fixture
def source_only(loaded: Callable[[str], Library]) -> State:
    st = loaded("source_only").init("")
    assert st.rc == Rc.SUCCESS, st.last_error
    return st


def test_a_batch_holds_several_events_and_the_stream_ends_with_eof(source_only: State) -> None:
    inst = source_only.opened("7")
    sizes = []
    while True:
        rc, events = inst.next_batch()
        if rc == Rc.EOF:
            break
        assert rc == Rc.SUCCESS
        sizes.append(len(events))
    assert sizes == [3, 3, 1]
    assert inst.next_batch() == (Rc.EOF, [])  # Rc.EOF is final


def test_events_are_plugin_events_carrying_the_plugin_id_and_payload(source_only: State) -> None:
    inst = source_only.opened("4")
    _rc, events = inst.next_batch()
    raw = [e.bytes() for e in events]
    for n, data in enumerate(raw, start=1):
        payload = f"source-only event {n}".encode()
        _ts, tid, length, etype, nparams = event_header(data)
        assert (tid, length, etype, nparams) == (NO_VALUE, PAYLOAD_OFFSET + len(payload), PLUGIN_EVENT, 2)
        assert PLUGIN_EVENT_HEADER.unpack_from(data)[5:] == (4, len(payload), SOURCE_ONLY_ID)
        assert payload_of(data) == payload


def test_bytes_bytearray_and_memoryview_payloads_are_all_accepted(source_only: State) -> None:
    # The fixture alternates bytes, bytearray, memoryview and (bytes, ts).
    events = source_only.opened("4").batches()
    assert [payload_of(e.bytes()) for e in events] == [f"source-only event {n}".encode() for n in range(1, 5)]


def test_timestamps_are_the_plugins_or_the_time_of_their_batch(source_only: State) -> None:
    # Events 4 and 8 come as (payload, ts) and keep it; the others get the time of their batch
    # (batches of 3: events 1-3, 4-6, 7-8), read once per batch by the SDK, not "no value", for
    # which libsinsp would read the clock once per event.
    before = time.time_ns()
    events = source_only.opened("8").batches()
    after = time.time_ns()
    stamps = [event_header(e.bytes())[0] for e in events]
    assert (stamps[3], stamps[7]) == (TS_BASE + 4, TS_BASE + 8)
    first, second, third = stamps[0:3], stamps[4:6], stamps[6:7]
    assert len(set(first)) == len(set(second)) == len(set(third)) == 1
    assert before <= first[0] <= second[0] <= third[0] <= after


def test_large_batches_and_large_payloads(loaded: Callable[[str], Library]) -> None:
    st = loaded("full").init('{"batch": 1000, "prefix": "' + "p" * 70_000 + '"}')
    assert st.rc == Rc.SUCCESS, st.last_error
    rc, events = st.opened('{"count": 1500}').next_batch()
    assert (rc, len(events)) == (Rc.SUCCESS, 1000)
    counters = [st.values(e, "full.counter")[0][0] for e in events]
    assert counters == list(range(1000))
    assert len(payload_of(events[999].bytes())) == 70_000 + len(" 999 t0")


def test_progress_is_reported_in_hundredths_of_a_percent_with_a_text(loaded: Callable[[str], Library]) -> None:
    st = loaded("full").init('{"batch": 2}')
    inst = st.opened('{"count": 8}')
    assert inst.progress() == (0, "0/8")
    inst.next_batch()
    assert inst.progress() == (2500, "2/8")
    inst.batches()
    assert inst.progress() == (10000, "8/8")


def test_a_float_progress_gets_a_default_text(loaded: Callable[[str], Library]) -> None:
    st = loaded("dummy").init('{"jitter": 0}')
    inst = st.opened('{"maxEvents": 256}')
    inst.next_batch()  # dummy batches hold 128 events
    assert inst.progress() == (5000, "50.00")


def test_event_to_string_renders_an_event(loaded: Callable[[str], Library]) -> None:
    st = loaded("full").init("")
    event = Event.from_bytes(plugin_event(b"full 3 t0"), num=12)
    assert st.event_to_string(event)[1] == "fxt_full #12: full 3 t0"


def test_closing_an_instance_reaches_the_plugin(loaded: Callable[[str], Library]) -> None:
    st = loaded("full").init("")
    probe = Event.from_bytes(plugin_event(b"full 0 t0"), num=1)
    st.opened().close()
    st.opened().close()
    assert st.values(probe, "full.closed") == [[2]]


# -- in both hosts --------------------------------------------------------------------------


def test_every_event_of_every_batch_reaches_the_host_numbered_from_one(host: Host, built: Built) -> None:
    run = host.run(
        built("full").library,
        init_config='{"batch": 4}',
        open_params='{"count": 10, "start": 5}',
        fields=["full.counter", "full.evtnum"],
    )
    assert run.failure is None
    assert [e.num for e in run.events] == list(range(1, 11))
    assert run.column("full.counter") == [str(i) for i in range(5, 15)]
    assert run.column("full.evtnum") == [str(i) for i in range(1, 11)]  # the host's numbers reach the plugin


def test_the_host_may_stop_in_the_middle_of_a_batch(host: Host, built: Built) -> None:
    run = host.run(
        built("full").library, init_config='{"batch": 4}', open_params='{"count": 10}', fields=["full.counter"], n=6
    )
    assert (run.failure, run.column("full.counter")) == (None, ["0", "1", "2", "3", "4", "5"])


def test_payloads_lists_and_located_values_reach_the_host(host: Host, built: Built) -> None:
    run = host.run(
        built("full").library,
        init_config='{"prefix": "abc", "batch": 2}',
        open_params='{"count": 3}',
        fields=["full.payload", "full.tags", "full.prefix", "full.counter_at"],
    )
    assert run.failure is None
    assert [e.values for e in run.events] == [
        {"full.payload": f"abc {i} {tags}", "full.tags": tags, "full.prefix": "abc", "full.counter_at": str(i)}
        for i, tags in enumerate(["t0", "t0,t1", "t0,t1,t2"])
    ]


def test_an_empty_stream_ends_cleanly(host: Host, built: Built) -> None:
    run = host.run(built("full").library, open_params='{"count": 0}', fields=["full.counter"])
    assert (run.failure, run.events) == (None, [])
