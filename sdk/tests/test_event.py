"""``Event`` as plugin code sees it, and ``@per_event`` caching."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import pytest
from falco_plugin import Event, per_event
from falco_plugin import event as event_module
from falco_plugin._internal.layout import (
    ASYNC_EVENT,
    ASYNC_EVENT_LENS,
    ASYNC_NAME_OFFSET,
    HEADER,
    NO_VALUE,
    PAYLOAD_OFFSET,
    PLUGIN_EVENT,
    PLUGIN_EVENT_HEADER,
    async_parts,
)
from falco_plugin_tools.host import PluginLibrary


def decoder_class() -> type[Any]:
    """A plugin-like class, its @per_event methods made by whichever
    implementation is installed when it is defined."""

    class Decoder:
        def __init__(self) -> None:
            self.calls = 0

        @per_event
        def decode(self, event: Event) -> list[bytes]:
            """The payload's words."""
            self.calls += 1
            return event.payload.split()

        @per_event
        def length(self, event: Event) -> int:
            self.calls += 1
            return len(event.payload)

        @per_event
        def nothing(self, event: Event) -> None:
            self.calls += 1

        @per_event
        def explode(self, event: Event) -> int:
            self.calls += 1
            raise ValueError("bad payload")

        @per_event
        def words(self, event: Event) -> int:
            """Cached, and reads another cached value while computing."""
            self.calls += 1
            return len(self.decode(event))

    return Decoder


@pytest.fixture(scope="session")
def c_factory(dummy_library: Path) -> Any:
    """The C @per_event a plugin library installs when it joins this interpreter."""
    saved = event_module._per_event_factory
    with PluginLibrary.load(dummy_library) as lib, lib.init():
        factory = event_module._per_event_factory
    event_module._per_event_factory = saved  # tests choose their implementation below
    assert factory is not None, "loading a plugin library did not install the C @per_event"
    return factory


@pytest.fixture(params=["python", "c"])
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A Decoder instance whose @per_event methods are the Python wrapper or the C one."""
    factory = request.getfixturevalue("c_factory") if request.param == "c" else None
    monkeypatch.setattr(event_module, "_per_event_factory", factory)
    cls = decoder_class()
    expected = "function" if factory is None else "per_event_method"
    assert type(cls.__dict__["decode"]).__name__ == expected
    return cls()


def test_per_event_runs_once_per_event(decoder: Any) -> None:
    event = Event(1, 0, b"a b")
    assert decoder.decode(event) == [b"a", b"b"]
    assert decoder.decode(event) is decoder.decode(event)
    assert decoder.calls == 1


def test_per_event_results_belong_to_one_event(decoder: Any) -> None:
    # (how the SDK re-targets its one Event object per host event is covered
    # by tests/test_event_caching.py on a built library)
    assert decoder.decode(Event(1, 0, b"a b")) == [b"a", b"b"]
    assert decoder.decode(Event(2, 0, b"c")) == [b"c"]
    assert decoder.calls == 2


def test_each_per_event_method_has_its_own_cache_entry(decoder: Any) -> None:
    event = Event(1, 0, b"a b")
    for _ in range(2):
        assert (decoder.decode(event), decoder.length(event), decoder.nothing(event)) == ([b"a", b"b"], 3, None)
    assert decoder.calls == 3


def test_a_method_may_read_another_cached_value(decoder: Any) -> None:
    event = Event(1, 0, b"a b c")
    assert (decoder.words(event), decoder.words(event), decoder.decode(event)) == (3, 3, [b"a", b"b", b"c"])
    assert decoder.calls == 2


def test_none_results_are_cached_too(decoder: Any) -> None:
    event = Event(1, 0, b"")
    decoder.nothing(event)
    decoder.nothing(event)
    assert decoder.calls == 1


def test_exceptions_are_not_cached(decoder: Any) -> None:
    event = Event(1, 0, b"")
    for _ in range(2):
        with pytest.raises(ValueError, match="bad payload"):
            decoder.explode(event)
    assert decoder.calls == 2


def test_per_event_keeps_the_method_name_and_doc(decoder: Any) -> None:
    method = type(decoder).decode
    assert (method.__name__, method.__doc__) == ("decode", "The payload's words.")
    assert method.__wrapped__.__name__ == "decode"


def test_a_cached_method_can_be_bound_and_called_through_the_class(decoder: Any) -> None:
    event = Event(1, 0, b"a b")
    bound = decoder.decode
    assert (bound(event), type(decoder).decode(decoder, event)) == ([b"a", b"b"], [b"a", b"b"])
    assert decoder.calls == 1


def test_anything_else_than_an_event_gets_the_python_wrapper(decoder: Any) -> None:
    class MyEvent(Event):
        __slots__ = ()

    event = MyEvent(1, 0, b"a b")
    assert decoder.decode(event) is decoder.decode(event)
    assert decoder.calls == 1
    with pytest.raises(AttributeError):
        decoder.decode(object())
    with pytest.raises(TypeError):
        decoder.decode()


def test_an_event_without_memory_reads_as_a_plugin_event_with_no_thread() -> None:
    event = Event(5, 123, b"payload")
    assert (event.num, event.ts, event.payload) == (5, 123, b"payload")
    assert (event.type, event.tid, event.source, event.plugin_id) == (PLUGIN_EVENT, NO_VALUE, None, 0)


def test_an_event_reads_header_fields_from_the_host_memory() -> None:
    payload = b"xyz"
    raw = PLUGIN_EVENT_HEADER.pack(77, 42, PAYLOAD_OFFSET + 3, PLUGIN_EVENT, 2, 4, 3, 1234) + payload
    buf = ctypes.create_string_buffer(raw, len(raw))
    src = ctypes.create_string_buffer(b"mysource")
    event = Event(9, 77, payload, ctypes.addressof(buf), ctypes.addressof(src))
    assert (event.type, event.tid, event.plugin_id, event.source) == (PLUGIN_EVENT, 42, 1234, "mysource")
    assert event.raw == raw


def test_a_non_plugin_event_has_no_plugin_id() -> None:
    raw = HEADER.pack(1, 2, HEADER.size, 293, 0)
    buf = ctypes.create_string_buffer(raw, len(raw))
    event = Event(1, 1, b"", ctypes.addressof(buf), 0)
    assert (event.type, event.plugin_id) == (293, 0)


def _async_event(name: bytes, payload: bytes) -> bytes:
    lens = ASYNC_EVENT_LENS.pack(4, len(name), len(payload))
    size = ASYNC_NAME_OFFSET + len(name) + len(payload)
    return HEADER.pack(5, 6, size, ASYNC_EVENT, 3) + lens + (77).to_bytes(4, "little") + name + payload


def test_an_async_event_has_its_name_and_emitted_payload() -> None:
    raw = _async_event(b"sample\0", b'{"x": 1}')
    buf = ctypes.create_string_buffer(raw, len(raw))
    event = Event(num=3, addr=ctypes.addressof(buf))
    assert (event.type, event.async_name) == (ASYNC_EVENT, "sample")
    assert async_parts(raw) == ("sample", b'{"x": 1}')


@pytest.mark.parametrize(
    "raw",
    [
        _async_event(b"", b"x"),  # no name
        _async_event(b"sample\0", b"x")[:-1],  # the payload runs past the event
        HEADER.pack(5, 6, 26, ASYNC_EVENT, 0),  # no parameters
    ],
)
def test_a_malformed_async_event_has_no_parts(raw: bytes) -> None:
    assert async_parts(raw) is None
