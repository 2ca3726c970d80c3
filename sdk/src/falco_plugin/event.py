"""Events as a plugin sees them: the layout the SDK writes, and a read-only view.

Every event is a packed 26-byte header (timestamp, thread id, total length,
type, parameter count), then one length per parameter, then the parameter
bytes. A plugin's own events (type 322) carry two parameters with 4-byte
lengths: the plugin id and the payload. The SDK writes these headers (their
layout is in ``_internal/layout.py``); plugin code only ever produces and
consumes payloads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .params import Params

from ._internal.layout import (
    ASYNC_EVENT,
    HEADER,
    NO_VALUE,
    PAYLOAD_OFFSET,
    PLUGIN_EVENT,
    PLUGIN_EVENT_HEADER,
    PLUGIN_EVENT_NPARAMS,
    async_parts,
    pack_plugin_event,
)

__all__ = ["Event", "per_event", "PLUGIN_EVENT", "ASYNC_EVENT"]


def _first_string_at(addr: int, size: int) -> bytes:
    # ctypes is imported when an event is first read by address: that is
    # rare, and importing it is ~2 ms of every plugin library's start-up.
    global _string_at
    from ctypes import string_at

    _string_at = string_at
    return string_at(addr, size)


_string_at: Callable[[int, int], bytes] = _first_string_at
"""``ctypes.string_at`` (size -1: up to the NUL), once one call imported it."""


class Event:
    """One event handed to extraction or parsing.

    The SDK reuses one ``Event`` object per plugin state: read what you need
    during the call, do not keep the object. ``payload`` is the plugin
    payload for plugin events (type 322), the emitted payload for async
    events (type 402, whose name is :attr:`async_name`) and empty for other
    types.
    """

    __slots__ = ("payload", "tid", "_key", "_value", "_cache", "_cur", "_num", "_ts", "_addr", "_src")

    payload: bytes
    tid: int
    """Thread id, or 2**64-1 when the event has none. A plain attribute the
    glue sets with each event: parsers look it up in the threads table on
    every event, and a property would cost more than the lookup."""

    def __init__(self, num: int = 0, ts: int = 0, payload: bytes = b"", addr: int = 0, src: int = 0) -> None:
        self._num = num
        self.payload = payload
        # The @per_event values of this event: the first in _key/_value, the others in _cache.
        self._key: object = None
        self._value: Any = None
        self._cache: dict[object, Any] | None = None
        # In a plugin library the C glue sets payload/tid and resets the
        # @per_event slots directly, and points _cur at the host's event
        # (its number included), so the rest is only read when asked.
        self._cur: Any = None
        self._ts = ts
        self._addr = addr
        self._src = src
        self.tid = self._header()[1]

    def _header(self) -> tuple[int, int, int, int, int]:
        cur = self._cur
        if cur is not None:
            evt = cur.evt
            return evt.ts, evt.tid, evt.len, evt.type, evt.nparams
        if not self._addr:
            return self._ts, NO_VALUE, PAYLOAD_OFFSET + len(self.payload), PLUGIN_EVENT, PLUGIN_EVENT_NPARAMS
        header: tuple[int, int, int, int, int] = HEADER.unpack(_string_at(self._addr, HEADER.size))
        return header

    @property
    def num(self) -> int:
        """Event number assigned by the host (increasing, possibly with gaps)."""
        cur = self._cur  # the glue keeps it in C: most events never have it read
        return int(cur.num) if cur is not None else self._num

    @property
    def ts(self) -> int:
        """Timestamp in nanoseconds since the epoch."""
        cur = self._cur
        return int(cur.evt.ts) if cur is not None else self._header()[0]

    @property
    def raw(self) -> bytes:
        """The whole event, header included."""
        cur = self._cur
        if cur is not None:
            return bytes(_string_at(int(cur.addr), int(cur.evt.len)))
        if not self._addr:
            return pack_plugin_event(self.payload, ts=self._ts)
        return _string_at(self._addr, self._header()[2])

    @property
    def type(self) -> int:
        """Event type code (322 for plugin events)."""
        return self._header()[3]

    @property
    def source(self) -> str | None:
        """Name of the event source the event comes from, when the host says."""
        cur = self._cur
        addr = int(cur.src) if cur is not None else self._src
        return _string_at(addr, -1).decode() if addr else None

    @property
    def params(self) -> Params:
        """The parameters of a syscall event, by name (``event.params["exe"]``,
        ``event.params.res``), decoded on first read; see :mod:`falco_plugin.params`.

        Decoded from a copy of the event, so the value may be kept after the call."""
        from .params import decode_params  # the event table loads only for plugins that read syscall events

        return decode_params(self.raw)

    @property
    def async_name(self) -> str | None:
        """The name of an async event (type 402, one of those a plugin declares), else None.

        For an async event ``payload`` is the payload its plugin emitted."""
        if self.type != ASYNC_EVENT:
            return None
        parts = async_parts(self.raw)
        return parts[0] if parts else None

    @property
    def plugin_id(self) -> int:
        """The plugin id carried by a plugin event (0 for other types)."""
        raw = self.raw
        if len(raw) < PAYLOAD_OFFSET or self.type != PLUGIN_EVENT:
            return 0
        plugin_id: int = PLUGIN_EVENT_HEADER.unpack_from(raw)[7]
        return plugin_id


S = TypeVar("S")
R = TypeVar("R")


def per_event(method: Callable[[S, Event], R]) -> Callable[[S, Event], R]:
    """Cache a method's result for the duration of one event.

    The host asks for one field per call, so a plugin that decodes its
    payload (JSON, protobuf...) in every field function would decode the same
    bytes again for each field a rule uses. Decorate the decoding method
    instead; the first field to need it pays, the others reuse the result::

        @per_event
        def record(self, event: Event) -> dict[str, Any]:
            return json.loads(event.payload)
    """
    key = object()

    # The same protocol as the C wrapper in build/glue/per_event.c, which a plugin
    # library installs: the first value of an event in two slots (a plugin
    # mostly has one @per_event method), the others in a dict.
    @functools.wraps(method)
    def cached(self: S, event: Event) -> R:
        first = event._key
        if first is key:
            return event._value  # type: ignore[no-any-return]
        cache = event._cache
        if cache is not None and key in cache:
            return cache[key]  # type: ignore[no-any-return]
        value = method(self, event)
        if event._key is None:  # read again: the method may have cached values of its own
            event._key = key
            event._value = value
        elif event._cache is None:
            event._cache = {key: value}
        else:
            event._cache[key] = value
        return value

    factory = _per_event_factory
    if factory is None:
        return cached
    fast: Callable[[S, Event], R] = functools.update_wrapper(factory(method, cached, key), method)
    return fast


_per_event_factory: Callable[[Callable[..., Any], Callable[..., Any], object], Any] | None = None
"""Set by a plugin library's glue before it imports the plugin: makes the C
wrapper (same cache protocol, no Python frame). Python hosts and tests that
import a plugin without its library get the Python one."""
