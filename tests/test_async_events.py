"""Async events through the Python host, which checks every event as libsinsp does.

The ``async_events`` fixture plugin runs workers on demand (see its module
docs). The host's handler queues events in arrival order and counts any call
made after it was cleared (``late_calls``), which must never happen.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from falco_plugin_tools.host import HostError, PluginHandle, PluginLibrary
from falco_plugin_tools.host.async_events import ASYNCEVENT_E, AsyncEvent, AsyncEvents, decode_async_event
from harness import Built, RunChost

U64_MAX = 2**64 - 1


def config(**kw: object) -> str:
    return json.dumps(kw)


@pytest.fixture(scope="module")
def library_path(built: Built) -> Path:
    return built("async_events").library


@pytest.fixture
def lib(library_path: Path) -> Iterator[PluginLibrary]:
    with PluginLibrary.load(library_path) as lib:
        yield lib


def received(events: AsyncEvents, n: int, timeout: float = 30.0) -> list[AsyncEvent]:
    """Exactly the next ``n`` events (fails if they do not come in time)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        try:
            got.append(events.get(timeout=max(0.01, deadline - time.monotonic())))
        except queue.Empty:
            pytest.fail(f"only {len(got)} of {n} async events arrived")
    return got


def stats(handle: PluginHandle) -> list[str]:
    """The plugin's own counts, read through dump_state: delivered, dropped, refused, late."""
    last = handle.async_events.dump_state()[-1]
    return last.payload.decode().split(" ", 4)[1:]


def test_the_library_declares_async_events_and_nothing_it_does_not_have(lib: PluginLibrary) -> None:
    assert lib.info.capabilities == {"sourcing", "async"}
    assert lib.info.async_events == ("sample", "state")
    assert {"plugin_get_async_events", "plugin_set_async_event_handler", "plugin_dump_state"} <= lib.info.symbols
    assert "plugin_get_async_event_sources" not in lib.info.symbols  # none declared: any source
    assert lib.info.async_event_sources == {"fxt_async"}  # the host adds the plugin's own
    assert lib.info.required_api_version == "3.10.0"  # dump_state


def test_workers_start_with_the_handler_and_nothing_arrives_after_it_is_cleared(lib: PluginLibrary) -> None:
    with lib.init(config(workers=2, interval=0.001)) as handle:
        events = handle.async_events
        events.start()
        first = received(events, 50)
        events.stop()
        after_stop = events.drain()
        time.sleep(0.3)
        assert events.drain() == []
        assert events.late_calls == 0
        for e in first[:3]:
            assert (e.name, e.ts, e.tid, e.plugin_id) == ("sample", U64_MAX, U64_MAX, 0)
        delivered, dropped, refused, _late = stats(handle)
        assert int(delivered) == len(first) + len(after_stop)
        assert (dropped, refused) == ("1", "0")  # init's event, emitted before any handler


def test_events_from_several_threads_all_arrive_each_thread_in_order(lib: PluginLibrary) -> None:
    workers, count = 4, 2500
    with lib.init(config(workers=workers, count=count)) as handle:
        events = handle.async_events
        events.start()
        got = received(events, workers * count)
        time.sleep(0.2)
        assert events.drain() == []  # not one more
        events.stop()
        per_worker: dict[str, list[int]] = {}
        for e in got:
            worker, i = e.payload.decode().split()
            per_worker.setdefault(worker, []).append(int(i))
        assert per_worker == {f"w{k}": list(range(count)) for k in range(workers)}
        assert stats(handle)[:3] == [str(workers * count), "1", "0"]


def test_a_worker_that_ignores_the_stop_is_waited_for_a_bounded_time_and_then_dropped(lib: PluginLibrary) -> None:
    with lib.init(config(workers=0, stubborn=True)) as handle:
        events = handle.async_events
        events.start()
        started = time.monotonic()
        events.stop()
        assert time.monotonic() - started >= 0.9  # async_stop_timeout is 1 s; the worker sleeps 2 s
        assert any("still running" in r.message and "stubborn" in r.message for r in handle.logs), handle.logs
        # A new session starts before the stubborn worker of the first one wakes
        # up: its late event must not leak into the new session.
        _set_config(handle, config(workers=0))
        events.start()
        deadline = time.monotonic() + 30
        while stats(handle)[3] == "[]":
            assert time.monotonic() < deadline, "the stubborn worker never tried its late emit"
            time.sleep(0.05)
        assert stats(handle)[3] == "[False]"  # its late emit was dropped
        assert events.drain() == []
        events.stop()
        assert events.late_calls == 0
        assert stats(handle)[:3] == ["0", "2", "0"]  # init's event and the late one


def test_dump_state_emits_synchronously_and_its_emit_dies_with_the_call(lib: PluginLibrary) -> None:
    with lib.init(config(workers=0, dump=3)) as handle:
        dumped = handle.async_events.dump_state()
        assert [(e.name, e.payload, e.ts) for e in dumped[:3]] == [
            ("state", b"state 0 of 0", 1000),
            ("state", b"state 1 of 0", 1001),
            ("state", b"state 2 of 0", 1002),
        ]
        assert dumped[3].tid == 7 and dumped[3].ts == U64_MAX
        assert all(e.raw[16:20] == len(e.raw).to_bytes(4, "little") for e in dumped)


def test_destroy_without_clearing_the_handler_stops_the_workers_first(lib: PluginLibrary) -> None:
    handle = lib.init(config(workers=3))
    events = handle.async_events
    events.start()
    received(events, 30)
    handle._async = None  # what a host that forgets to clear the handler does: destroy it running
    handle.destroy()
    n = events.queue.qsize()
    time.sleep(0.3)
    assert events.queue.qsize() == n
    assert events.late_calls == 0


def test_a_thread_of_the_host_may_clear_the_handler_while_workers_flood_it(lib: PluginLibrary) -> None:
    with lib.init(config(workers=4)) as handle:
        events = handle.async_events
        for _ in range(3):  # start and stop again: each session's workers are joined
            events.start()
            received(events, 100)
            stopper = threading.Thread(target=events.stop)
            stopper.start()
            stopper.join(10)
            assert not stopper.is_alive()
            events.drain()
        time.sleep(0.2)
        assert events.drain() == [] and events.late_calls == 0


# -- errors: every entry point's exception becomes rc + message --------------------------


@pytest.mark.parametrize(
    ("fail", "message"),
    [
        ("start_async", "set_async_event_handler: RuntimeError: injected failure in start_async"),
        (
            "bad_name",
            "set_async_event_handler: ValueError: emit: 'nope' is not one of the plugin's async_events "
            '["sample", "state"]',
        ),
    ],
)
def test_a_failing_start_refuses_the_handler_and_the_next_start_works(
    lib: PluginLibrary, fail: str, message: str
) -> None:
    with lib.init(config(workers=2, fail=[fail])) as handle:
        events = handle.async_events
        with pytest.raises(HostError) as info:
            events.start()
        assert str(info.value) == f"can't set async event handler for plugin 'fxt_async' : {message}"
        assert not events.running
        _set_config(handle, config(workers=1, count=5))
        events.start()
        assert [e.payload for e in received(events, 5)] == [f"w0 {i}".encode() for i in range(5)]
        events.stop()


def test_a_failing_stop_reports_but_the_workers_are_stopped_anyway(lib: PluginLibrary) -> None:
    with lib.init(config(workers=2, fail=["stop_async"])) as handle:
        events = handle.async_events
        events.start()
        received(events, 10)
        with pytest.raises(HostError) as info:
            events.stop()
        assert str(info.value) == (
            "can't reset async event handler for plugin 'fxt_async' : "
            "set_async_event_handler: RuntimeError: injected failure in stop_async"
        )
        events.drain()
        time.sleep(0.3)
        assert events.drain() == [] and events.late_calls == 0


def test_a_failing_dump_state_is_a_failure_with_its_message(lib: PluginLibrary) -> None:
    with lib.init(config(workers=0, fail=["dump_state"])) as handle:
        with pytest.raises(HostError) as info:
            handle.async_events.dump_state()
        assert str(info.value) == (
            "dump error for plugin 'fxt_async' : dump_state: RuntimeError: injected failure in dump_state"
        )
        _set_config(handle, config(workers=0, dump=1))
        assert len(handle.async_events.dump_state()) == 2


def test_entry_points_survive_a_null_state_and_null_handlers(lib: PluginLibrary) -> None:
    from falco_plugin_tools.host._ffi import ffi

    set_handler = lib.symbol("set_async_event_handler")
    dump = lib.symbol("dump_state")
    assert set_handler(ffi.NULL, ffi.NULL, ffi.NULL) == 1
    assert dump(ffi.NULL, ffi.NULL, ffi.NULL) == 1
    with lib.init(config(workers=0)) as handle:
        state = handle._state_pointer()
        assert set_handler(state, ffi.NULL, ffi.NULL) == 0  # clearing when nothing runs is fine
        assert dump(state, ffi.NULL, ffi.NULL) == 1
        assert handle.last_error == "dump_state: the host passed no handler"


def test_the_decoder_refuses_malformed_async_events() -> None:
    good = AsyncEvent("x", b"p", 0, 0, 0, b"")
    assert good.name == "x"
    with pytest.raises(ValueError, match="too short"):
        decode_async_event(b"\0" * 10)
    header = (0).to_bytes(8, "little") * 2 + (44).to_bytes(4, "little") + ASYNCEVENT_E.to_bytes(2, "little")
    lens = (3).to_bytes(4, "little") + b"".join(n.to_bytes(4, "little") for n in (4, 2, 0))
    assert decode_async_event(header + lens + b"\0\0\0\0x\0").name == "x"
    with pytest.raises(ValueError, match="NUL-terminated"):
        decode_async_event(header + lens + b"\0\0\0\0xy")


def _set_config(handle: PluginHandle, text: str) -> None:
    from falco_plugin_tools.host._ffi import ffi

    keep = ffi.new("char[]", text.encode())
    inp = ffi.new("ss_plugin_set_config_input *", {"config": keep})
    assert handle.library.symbol("set_config")(handle._state_pointer(), inp) == 0, handle.last_error


# -- a plain C process (falco-plugin-chost) and falco-plugin run ---------------------------


def test_the_c_host_gets_async_events_from_python_threads_and_none_after_the_clear(
    library_path: Path, run_chost: RunChost
) -> None:
    proc = run_chost(library_path, "--config", config(workers=3, count=400), "--async-seconds", "2", "--dump-state")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    samples = [line for line in lines if line.startswith("async sample ")]
    assert sorted(samples) == sorted(f"async sample w{k} {i}" for k in range(3) for i in range(400))
    (summary,) = [line for line in lines if line.startswith("async events=")]
    assert summary.startswith("async events=1200 late=0 ")
    assert [line for line in lines if line.startswith("dump ")][:2] == [
        "dump state state 0 of 0",
        "dump state state 1 of 0",
    ]


def test_falco_plugin_run_prints_async_events(library_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from falco_plugin_tools.cli import main

    rc = main(
        [
            "run",
            str(library_path),
            "--init-config",
            config(workers=1, count=3),
            "--async",
            "-n",
            "1",
            "--idle-timeout",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert [line for line in out.splitlines() if line.startswith("@async")] == [
        f"@async sample payload=b'w0 {i}'" for i in range(3)
    ]


def test_the_host_may_clear_the_handler_from_inside_it(lib: PluginLibrary) -> None:
    with lib.init(config(workers=2)) as handle:
        events = handle.async_events
        cleared = threading.Event()

        class ClearOnFirst(queue.Queue[AsyncEvent]):
            def put(self, item: AsyncEvent, block: bool = True, timeout: float | None = None) -> None:
                super().put(item, block, timeout)
                if not cleared.is_set():
                    cleared.set()
                    events.stop()  # on the plugin's worker thread, inside the handler
                    returned.set()

        returned = threading.Event()
        events.queue = ClearOnFirst()
        events.start()
        assert cleared.wait(30)
        assert returned.wait(30), "clearing the handler from inside it never returned"
        n = events.queue.qsize()
        time.sleep(0.3)
        assert events.queue.qsize() == n and events.late_calls == 0


# -- SIGPIPE: a worker writing to a peer that has gone ----------------------------------


def test_workers_writing_to_a_closed_peer_do_not_kill_a_host_that_keeps_sigpipe_default(
    library_path: Path, run_chost: RunChost, closing_peer: str
) -> None:
    """The C host leaves SIGPIPE at its default action, as Falco does: a worker's write to a peer that
    closed (and stop_async shutting the socket under a sendall) must be an EPIPE error in that worker,
    not the end of the process, and the plugin must not have changed the host's disposition."""
    proc = run_chost(
        library_path,
        "--config",
        config(workers=0, sink=closing_peer),
        "--async-seconds",
        "0.05",
        "--async-cycles",
        "40",
    )
    assert proc.returncode == 0, f"rc {proc.returncode}: {proc.stderr}"
    lines = proc.stdout.splitlines()
    assert "signals: unchanged" in lines
    assert not any("CHANGED" in line for line in lines)
    (summary,) = [line for line in lines if line.startswith("async events=")]
    assert summary.endswith(" cycles=40")
    assert "async sample epipe" in lines  # the writes did meet a closed peer


# -- back-pressure: a host whose queue is full ----------------------------------------


def metric_values(stdout: str) -> dict[str, str]:
    """``metric <name> <type> <value_type> <value>`` lines of the C host -> name: value."""
    return {p[1]: p[4] for p in (line.split() for line in stdout.splitlines()) if p[:1] == ["metric"]}


def test_a_full_host_queue_slows_emit_down_and_loses_nothing(library_path: Path, run_chost: RunChost) -> None:
    """The C host's queue holds 50 events and drains 20,000 a second: a worker emitting 3,000 at once
    meets it full many times; emit waits and offers the event again, so every event arrives."""
    proc = run_chost(
        library_path,
        "--config",
        config(workers=1, count=3000),
        "--async-seconds",
        "2",
        "--async-queue",
        "50:20000",
        "--metrics",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    (summary,) = [line for line in proc.stdout.splitlines() if line.startswith("async events=")]
    assert summary.startswith("async events=3000 late=0 ")
    assert int(summary.split("queue_full=")[1]) > 0  # the queue did refuse events
    metrics = metric_values(proc.stdout)
    assert (metrics["emitted"], metrics["sdk.async.delivered"], metrics["sdk.async.refused"]) == ("3000", "3000", "0")


def test_an_event_still_refused_at_the_deadline_is_counted_logged_and_emit_returns_false(
    library_path: Path, run_chost: RunChost
) -> None:
    """A queue of 10 that never drains: the 3 events after it filled are offered for the fixture's
    async_emit_deadline (0.2 s) each, then emit returns False; the worker carries on."""
    proc = run_chost(
        library_path,
        "--config",
        config(workers=1, count=13),
        "--async-seconds",
        "2",
        "--async-queue",
        "10:0",
        "--metrics",
        "--quiet",
        env={"CHOST_LOG": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    metrics = metric_values(proc.stdout)
    assert (metrics["emitted"], metrics["sdk.async.delivered"], metrics["sdk.async.refused"]) == ("10", "10", "3")
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("log[4] fxt_async: ")]
    # The first refusal is logged at warning with the host's reason; the next two within 10 s are only counted.
    assert warnings == [
        "log[4] fxt_async: emit: the host did not take async event 'sample' within 0.2 s "
        "(async event queue is full); it is dropped"
    ]


def test_an_event_carries_the_ts_and_tid_its_emit_gave_each_in_its_own_header_field(lib: PluginLibrary) -> None:
    """ts and tid land in their own header fields; one not given is 2**64-1 ("the host fills it in")."""
    with lib.init(config(workers=1, count=8, stamp=True)) as handle:
        events = handle.async_events
        events.start()
        got = received(events, 8)
        events.stop()
    ts0 = 1_700_000_000_000_000_000
    expected = []
    for i in range(8):
        ts, tid = ts0 + i, 4_000 + i
        if i % 4 == 1:
            tid = U64_MAX
        elif i % 4 == 3:
            ts = U64_MAX
        expected.append((f"w0 {i}".encode(), ts, tid))
    assert [(e.payload, e.ts, e.tid) for e in got] == expected


def test_a_paced_plugin_never_fills_a_queue_that_drains_faster_than_its_rate(
    library_path: Path, run_chost: RunChost
) -> None:
    """libsinsp drops what its full queue cannot take and says nothing to the plugin: pacing is the
    only defence. The C host's queue holds 100 events and drains 4,000 a second; 1,000 events emitted
    at once but paced at 2,000 a second (bursts of 50) never find it full."""
    common = ["--async-seconds", "2", "--async-queue", "100:4000", "--metrics", "--quiet"]
    paced = run_chost(library_path, "--config", config(workers=1, count=1000, rate=2000, burst=50), *common)
    assert paced.returncode == 0, paced.stderr
    (summary,) = [line for line in paced.stdout.splitlines() if line.startswith("async events=")]
    assert summary.startswith("async events=1000 ") and summary.endswith(" queue_full=0")
    assert metric_values(paced.stdout)["sdk.async.delivered"] == "1000"
    unpaced = run_chost(library_path, "--config", config(workers=1, count=1000), *common)
    (summary,) = [line for line in unpaced.stdout.splitlines() if line.startswith("async events=")]
    assert not summary.endswith(" queue_full=0")  # the same burst unpaced does fill it


def test_an_event_without_a_turn_at_the_deadline_is_not_sent(library_path: Path, run_chost: RunChost) -> None:
    """Paced at 1 event a second (burst 1) with the fixture's 0.2 s deadline: the first of three
    events goes, the next two find no turn in time and are refused, not sent past the pacing."""
    proc = run_chost(
        library_path,
        "--config",
        config(workers=1, count=3, rate=1, burst=1),
        "--async-seconds",
        "1",
        "--metrics",
        "--quiet",
        env={"CHOST_LOG": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    metrics = metric_values(proc.stdout)
    assert (metrics["emitted"], metrics["sdk.async.delivered"], metrics["sdk.async.refused"]) == ("1", "1", "2")
    assert "left no room for it" in proc.stderr  # the reason, in the warning
