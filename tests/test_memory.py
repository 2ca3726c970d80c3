"""Memory the plugin returns stays valid and unchanged until the next call of
the same function: the host reads batches, field values and strings after
making other calls (and while Python collects garbage)."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest
from falco_plugin_tools.host import Rc
from falco_plugin_tools.host.raw import Event, Library, State, ffi, plugin_event


@pytest.fixture
def full(loaded: Callable[[str], Library]) -> State:
    st = loaded("full").init('{"batch": 6}')
    assert st.rc == Rc.SUCCESS, st.last_error
    return st


THIRTY = '{"count": 30}'


def churn() -> None:
    """Free and allocate many objects of every small size, so freed memory gets reused and overwritten."""
    gc.collect()
    junk_bytes = [("#" * (i % 300)).encode() + b"%d" % i for i in range(30_000)]
    junk_text = [chr(0x41 + i % 26) * (i % 120) for i in range(30_000)]
    del junk_bytes, junk_text
    gc.collect()


def test_batch_events_stay_intact_across_extractions_and_other_calls(full: State) -> None:
    inst = full.opened(THIRTY)
    rc, batch = inst.next_batch()
    assert rc == Rc.SUCCESS and len(batch) == 6
    pointers = [int(ffi.cast("uintptr_t", e.ptr)) for e in batch]
    before = [e.bytes() for e in batch]
    for e in batch:
        full.extract(e, "full.payload", "full.tags", "full.counter_at", offsets=True)
        full.event_to_string(e)
    inst.progress()
    full.list_open_params()
    churn()
    assert [int(ffi.cast("uintptr_t", e.ptr)) for e in batch] == pointers
    assert [e.bytes() for e in batch] == before


def test_field_strings_stay_intact_until_the_next_extraction(full: State) -> None:
    inst = full.opened(THIRTY)
    _rc, batch = inst.next_batch()
    got = full.extract(batch[2], "full.payload", "full.tags", "full.prefix")
    assert got.rc == Rc.SUCCESS
    expected = [["full 2 t0,t1,t2"], ["t0", "t1", "t2"], ["full"]]
    assert got.values == expected
    # Calls of other functions, a new batch and garbage collection in between.
    inst.next_batch()
    full.event_to_string(batch[0])
    inst.progress()
    churn()
    assert [full.decode(f) for f in got.fields] == expected


def test_values_of_a_large_multi_field_call_are_all_valid(loaded: Callable[[str], Library]) -> None:
    st = loaded("extract_only").init('{"name": "m"}')
    event = Event.from_bytes(plugin_event(b" ".join(b"w%d" % i for i in range(50))), num=1)
    specs = ["xo.words", "xo.lengths", "xo.payload", "xo.len", "xo.even", "xo.ipv6"] * 12
    got = st.extract(event, *specs)
    assert got.rc == Rc.SUCCESS, st.last_error
    churn()
    words = [f"w{i}" for i in range(50)]
    for f, values in zip(got.fields, got.values, strict=True):
        assert st.decode(f) == values
    assert got.values[:4] == [words, [len(w) for w in words], [" ".join(words)], [len(" ".join(words))]]


def test_event_to_string_text_stays_intact_until_its_next_call(full: State) -> None:
    inst = full.opened(THIRTY)
    _rc, batch = inst.next_batch()
    ptr, text = full.event_to_string(batch[1])
    full.extract(batch[1], "full.payload", "full.tags")
    inst.next_batch()
    churn()
    assert ffi.string(ptr).decode() == text == "fxt_full #2: full 1 t0,t1"


def test_progress_and_open_params_texts_stay_intact_until_their_next_call(full: State) -> None:
    inst = full.opened(THIRTY)
    inst.next_batch()
    pct = ffi.new("uint32_t *")
    progress: Any = full.lib.plugin_get_progress(full.state, inst.handle, pct)
    rc = ffi.new("ss_plugin_rc *")
    params: Any = full.lib.plugin_list_open_params(full.state, rc)
    listed = ffi.string(params).decode()
    inst.next_batch()
    full.extract(Event.from_bytes(plugin_event(b"full 1 t0"), 99), "full.payload")
    churn()
    assert ffi.string(progress).decode() == "6/30"
    assert ffi.string(params).decode() == listed


def test_metadata_strings_are_constants(loaded: Callable[[str], Library]) -> None:
    lib = loaded("full").lib
    for getter in ("plugin_get_name", "plugin_get_fields", "plugin_get_event_source", "plugin_get_version"):
        first = getattr(lib, getter)()
        assert getattr(lib, getter)() == first  # the same pointer every time
