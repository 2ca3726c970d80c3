"""Fields returning :class:`Located` fill the host's ``value_offsets`` (plugin
API 3.12), but only in a plugin that requires 3.12: an older host has no such
member, so a plugin requiring less must never write it."""

from __future__ import annotations

from collections.abc import Callable

from falco_plugin._internal.layout import PAYLOAD_OFFSET
from falco_plugin_tools.host import Rc
from falco_plugin_tools.host.raw import Event, Library, ffi, plugin_event

EVENT = Event.from_bytes(plugin_event(b"prefix 1234 t0,t1"), num=1)


def offsets(got: object, n: int) -> list[tuple[int, int]]:
    vo = got.offsets  # type: ignore[attr-defined]
    return [(int(vo.start[i]), int(vo.length[i])) for i in range(n)]


def test_a_plugin_returning_located_values_requires_api_3_12(loaded: Callable[[str], Library]) -> None:
    assert loaded("full").required_api_version == "3.12.0"


def test_located_values_fill_value_offsets_relative_to_the_event_start(loaded: Callable[[str], Library]) -> None:
    st = loaded("full").init("")
    got = st.extract(EVENT, "full.prefix", "full.payload", "full.counter_at", "full.tags", offsets=True)
    assert got.rc == Rc.SUCCESS, st.last_error
    assert got.values == [["prefix"], ["prefix 1234 t0,t1"], [1234], ["t0", "t1"]]
    assert offsets(got, 4) == [(PAYLOAD_OFFSET, 6), (0, 0), (PAYLOAD_OFFSET + 7, 4), (0, 0)]


def test_value_offsets_are_optional_for_the_host(loaded: Callable[[str], Library]) -> None:
    st = loaded("full").init("")
    got = st.extract(EVENT, "full.prefix", "full.counter_at")
    assert got.rc == Rc.SUCCESS
    assert got.values == [["prefix"], [1234]]


def test_a_plugin_requiring_an_older_api_never_writes_value_offsets(loaded: Callable[[str], Library]) -> None:
    lib = loaded("legacy")
    assert lib.required_api_version == "3.4.0"
    st = lib.init("")
    got = st.extract(EVENT, "legacy.word", offsets=True)
    assert got.rc == Rc.SUCCESS, st.last_error
    assert got.values == [["1234 t0,t1"]]  # the Located value itself is used
    assert (got.offsets.start, got.offsets.length) == (ffi.NULL, ffi.NULL)
