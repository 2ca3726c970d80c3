"""Events as the host holds them: bytes copied out of the plugin, plus the
checks libscap applies to every event a source plugin produces."""

from __future__ import annotations

import struct
import time
from typing import Any

from falco_plugin._internal.layout import (
    HEADER,
    HEADER_SIZE,
    NO_VALUE,
    PAYLOAD_LEN_OFFSET,
    PAYLOAD_OFFSET,
    PLUGIN_EVENT,
    PLUGIN_EVENT_NPARAMS,
    PLUGIN_ID_OFFSET,
    TID_OFFSET,
    TS_OFFSET,
    pack_plugin_event,
)
from falco_plugin_tools.host.errors import HostError
from falco_plugin_tools.host.raw import Event as RawEvent

__all__ = ["HostEvent", "check_source_event"]

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class HostEvent:
    """One event, owned by the host (a copy: plugin memory only lives until its next call).

    ``num`` counts events from 1 per capture like libsinsp; ``source`` is the
    event source name extractors see as ``evtsrc``, None for an event of no
    known source (a capture's plugin event whose plugin is not loaded), which
    no plugin parses or extracts from, as in libsinsp.
    """

    __slots__ = ("num", "raw", "source", "ts", "tid", "type", "nparams", "_input")

    def __init__(self, raw: bytes, num: int = 0, source: str | None = "syscall") -> None:
        if len(raw) < HEADER_SIZE:
            raise HostError(f"event of {len(raw)} bytes is shorter than an event header")
        self.raw = bytes(raw)
        self.num = num
        self.source = source
        self.ts, self.tid, _, self.type, self.nparams = HEADER.unpack_from(self.raw)
        self._input: RawEvent | None = None

    @classmethod
    def plugin_event(cls, payload: bytes, plugin_id: int, *, ts: int = 0, num: int = 0, source: str = "") -> HostEvent:
        """Encode a plugin event (type 322) the way a source plugin would."""
        return cls(pack_plugin_event(payload, plugin_id=plugin_id, ts=ts), num=num, source=source)

    @property
    def is_plugin_event(self) -> bool:
        return self.type == PLUGIN_EVENT and self.nparams == PLUGIN_EVENT_NPARAMS and len(self.raw) >= PAYLOAD_OFFSET

    @property
    def plugin_id(self) -> int | None:
        """The id of the plugin that produced a plugin event (``None`` for other events)."""
        return _U32.unpack_from(self.raw, PLUGIN_ID_OFFSET)[0] if self.is_plugin_event else None

    @property
    def payload(self) -> bytes | None:
        """The data of a plugin event (``None`` for other events)."""
        if not self.is_plugin_event:
            return None
        size = _U32.unpack_from(self.raw, PAYLOAD_LEN_OFFSET)[0]
        return self.raw[PAYLOAD_OFFSET : PAYLOAD_OFFSET + size]

    def raw_event(self) -> RawEvent:
        """This event for the raw layer (reading :attr:`raw` in place); made once, lives as long as the event."""
        if self._input is None:
            self._input = RawEvent.over(self.raw, self.num, self.source)
        return self._input

    def event_input(self) -> Any:
        """An ``ss_plugin_event_input *`` for this event; it stays valid as long as the event lives."""
        return self.raw_event().input

    def __repr__(self) -> str:
        return f"HostEvent(num={self.num}, ts={self.ts}, type={self.type}, source={self.source!r}, len={len(self.raw)})"


def check_source_event(raw: bytearray, plugin: str, plugin_id: int) -> None:
    """libscap's checks on an event fresh from ``next_batch``; fixes it up in place.

    For a plugin with an id every event must be a plugin event; a zero
    plugin id is replaced by the plugin's own, another id is an error. Plugin
    events get no thread, and a timestamp of ``NO_VALUE`` means "now".
    """
    if len(raw) < HEADER_SIZE:
        raise HostError(f"malformed plugin event produced by plugin: '{plugin}'")
    _, _, length, etype, nparams = HEADER.unpack_from(raw)
    is_plugin_event = etype == PLUGIN_EVENT and nparams == PLUGIN_EVENT_NPARAMS and length >= PAYLOAD_OFFSET
    if plugin_id != 0:
        if not is_plugin_event:
            raise HostError(f"malformed plugin event produced by plugin: '{plugin}'")
        actual = _U32.unpack_from(raw, PLUGIN_ID_OFFSET)[0]
        if actual == 0:
            _U32.pack_into(raw, PLUGIN_ID_OFFSET, plugin_id)
        elif actual != plugin_id:
            raise HostError(
                f"unexpected plugin ID in plugin event: plugin='{plugin}', expected_id={plugin_id}, actual_id={actual}"
            )
    if etype == PLUGIN_EVENT:
        if not is_plugin_event or _U32.unpack_from(raw, PLUGIN_ID_OFFSET)[0] == 0:
            raise HostError(f"malformed plugin event produced by plugin (no ID): '{plugin}'")
        _U64.pack_into(raw, TID_OFFSET, NO_VALUE)
    if _U64.unpack_from(raw, TS_OFFSET)[0] == NO_VALUE:
        _U64.pack_into(raw, TS_OFFSET, time.time_ns())
