"""``@per_event`` results live exactly as long as one event: the host asks for
one field per call, and the decoding is shared by every call about the same
event (same number at the same address), and only by those."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from falco_plugin_tools.host import Rc
from falco_plugin_tools.host.raw import Event, Library, State, ffi, plugin_event


@pytest.fixture
def full(loaded: Callable[[str], Library]) -> State:
    st = loaded("full").init("")
    assert st.rc == Rc.SUCCESS, st.last_error
    return st


def decodes(st: State, event: Event) -> int:
    return int(st.values(event, "full.decodes")[0][0])


def test_one_decode_per_event_across_separate_extract_calls(full: State) -> None:
    event = Event.from_bytes(plugin_event(b"full 5 t0,t1"), num=1)
    assert full.values(event, "full.counter") == [[5]]
    assert full.values(event, "full.tags") == [["t0", "t1"]]
    assert full.values(event, "full.prefix", "full.counter_at") == [["full"], [5]]
    assert decodes(full, event) == 1


def test_the_next_event_is_decoded_again(full: State) -> None:
    first = Event.from_bytes(plugin_event(b"full 1 t0"), num=1)
    second = Event.from_bytes(plugin_event(b"full 2 t0"), num=2)
    assert full.values(first, "full.counter") == [[1]]
    assert full.values(second, "full.counter") == [[2]]
    assert decodes(full, second) == 2


def test_a_reused_buffer_with_a_new_event_number_is_a_new_event(full: State) -> None:
    buf = ffi.new("char[]", plugin_event(b"full 1 t0"))
    ptr = ffi.cast("ss_plugin_event *", buf)
    assert full.values(Event(ptr, 1, keep=buf), "full.counter") == [[1]]
    ffi.memmove(buf, plugin_event(b"full 2 t0"), len(plugin_event(b"full 2 t0")))
    assert full.values(Event(ptr, 2, keep=buf), "full.counter") == [[2]]


def test_the_same_event_number_at_another_address_is_decoded_again(full: State) -> None:
    a = Event.from_bytes(plugin_event(b"full 1 t0"), num=7)
    b = Event.from_bytes(plugin_event(b"full 9 t0"), num=7)
    assert full.values(a, "full.counter") == [[1]]
    assert full.values(b, "full.counter") == [[9]]


def test_each_plugin_state_has_its_own_cache(loaded: Callable[[str], Library]) -> None:
    lib = loaded("full")
    one, two = lib.init(""), lib.init("")
    event = Event.from_bytes(plugin_event(b"full 3 t0"), num=1)
    one.values(event, "full.counter")
    two.values(event, "full.counter")
    assert (decodes(one, event), decodes(two, event)) == (1, 1)
