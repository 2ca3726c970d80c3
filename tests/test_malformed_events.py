"""A malformed plugin event from the host is a clean failure ("malformed plugin
event"), never a crash or a read past the event."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from falco_plugin._internal.layout import HEADER, PLUGIN_EVENT
from falco_plugin_tools.host import Rc
from falco_plugin_tools.host.raw import Event, Library, State, ffi, plugin_event


def header(length: int, nparams: int = 2) -> bytes:
    return HEADER.pack(0, 0, length, PLUGIN_EVENT, nparams)


GOOD = plugin_event(b"full 1 t0")
MALFORMED = {
    "three-params": HEADER.pack(0, 0, 50, PLUGIN_EVENT, 3) + struct.pack("<III", 4, 4, 4) + bytes(12),
    "no-params": HEADER.pack(0, 0, 26, PLUGIN_EVENT, 0),
    "shorter-than-its-params": header(30) + struct.pack("<I", 4),
    "id-length-not-4": header(47) + struct.pack("<III", 8, 1, 0) + b"x",
    "payload-past-the-end": header(40) + struct.pack("<III", 4, 1000, 0) + b"ab",
    "huge-payload-length": header(40) + struct.pack("<III", 4, 0xFFFFFFFF, 0) + b"ab",
}


@pytest.fixture
def full(loaded: Callable[[str], Library]) -> State:
    st = loaded("full").init("")
    assert st.rc == Rc.SUCCESS, st.last_error
    return st


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_extracting_from_a_malformed_plugin_event_fails_cleanly(full: State, kind: str) -> None:
    bad = Event.from_bytes(MALFORMED[kind], num=1)
    assert full.extract(bad, "full.payload").rc == Rc.FAILURE
    assert full.last_error.startswith("extract_fields: ValueError: malformed plugin event (type 322, ")
    assert full.values(Event.from_bytes(GOOD, num=2), "full.payload") == [["full 1 t0"]]


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_rendering_a_malformed_plugin_event_fails_cleanly(full: State, kind: str) -> None:
    assert full.event_to_string(Event.from_bytes(MALFORMED[kind], num=1))[1] == ""
    assert full.last_error == "event_to_string: ValueError: malformed plugin event"


def test_a_missing_event_fails_cleanly(full: State) -> None:
    assert full.extract(Event(ffi.NULL, 1), "full.payload").rc == Rc.FAILURE
    assert full.last_error == "extract_fields: ValueError: no event given"


def test_a_malformed_event_after_a_good_one_with_the_same_number_is_still_rejected(full: State) -> None:
    good = Event.from_bytes(GOOD, num=5)
    bad = Event.from_bytes(MALFORMED["payload-past-the-end"], num=5)  # both alive: different addresses
    assert full.values(good, "full.payload") == [["full 1 t0"]]
    assert full.extract(bad, "full.payload").rc == Rc.FAILURE
