"""Events as the host holds them: bytes copied out of the plugin, plus the
checks libscap applies to every event a source plugin produces."""

from __future__ import annotations

import struct
import time
from typing import Any

from ._ffi import UINT64_MAX, ffi
from .errors import HostError

__all__ = ["HostEvent", "PLUGINEVENT_E", "HEADER_SIZE", "PAYLOAD_OFFSET", "check_source_event"]

# ts, tid, len, type, nparams; native order like the C struct, packed.
_HEADER = struct.Struct("=QQIHI")
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
HEADER_SIZE = _HEADER.size  # 26
PLUGINEVENT_E = 322
# A plugin event: header, two u32 parameter lengths, the u32 plugin id, the payload.
_LENS_OFFSET = HEADER_SIZE
_ID_OFFSET = HEADER_SIZE + 8
PAYLOAD_OFFSET = HEADER_SIZE + 12  # 38


class HostEvent:
    """One event, owned by the host (a copy: plugin memory only lives until its next call).

    ``num`` counts events from 1 per capture like libsinsp; ``source`` is the
    event source name extractors see as ``evtsrc``.
    """

    __slots__ = ("num", "raw", "source", "ts", "tid", "type", "nparams", "_input")

    def __init__(self, raw: bytes, num: int = 0, source: str = "syscall") -> None:
        if len(raw) < HEADER_SIZE:
            raise HostError(f"event of {len(raw)} bytes is shorter than an event header")
        self.raw = bytes(raw)
        self.num = num
        self.source = source
        self.ts, self.tid, _, self.type, self.nparams = _HEADER.unpack_from(self.raw)
        self._input: tuple[Any, ...] | None = None

    @classmethod
    def plugin_event(cls, payload: bytes, plugin_id: int, *, ts: int = 0, num: int = 0, source: str = "") -> HostEvent:
        """Encode a plugin event (type 322) the way a source plugin would."""
        length = PAYLOAD_OFFSET + len(payload)
        raw = _HEADER.pack(ts, UINT64_MAX, length, PLUGINEVENT_E, 2) + struct.pack("=III", 4, len(payload), plugin_id)
        return cls(raw + payload, num=num, source=source)

    @property
    def is_plugin_event(self) -> bool:
        return self.type == PLUGINEVENT_E and self.nparams == 2 and len(self.raw) >= PAYLOAD_OFFSET

    @property
    def plugin_id(self) -> int | None:
        """The id of the plugin that produced a plugin event (``None`` for other events)."""
        return _U32.unpack_from(self.raw, _ID_OFFSET)[0] if self.is_plugin_event else None

    @property
    def payload(self) -> bytes | None:
        """The data of a plugin event (``None`` for other events)."""
        if not self.is_plugin_event:
            return None
        size = _U32.unpack_from(self.raw, _LENS_OFFSET + 4)[0]
        return self.raw[PAYLOAD_OFFSET : PAYLOAD_OFFSET + size]

    def event_input(self) -> Any:
        """An ``ss_plugin_event_input *`` for this event; it stays valid as long as the event lives."""
        if self._input is None:
            buf = ffi.from_buffer("char[]", self.raw)
            src = ffi.new("char[]", self.source.encode())
            inp = ffi.new("ss_plugin_event_input *")
            inp.evt = ffi.cast("ss_plugin_event *", buf)
            inp.evtnum = self.num
            inp.evtsrc = src
            self._input = (inp, buf, src)
        return self._input[0]

    def __repr__(self) -> str:
        return f"HostEvent(num={self.num}, ts={self.ts}, type={self.type}, source={self.source!r}, len={len(self.raw)})"


def check_source_event(raw: bytearray, plugin: str, plugin_id: int) -> None:
    """libscap's checks on an event fresh from ``next_batch``; fixes it up in place.

    For a plugin with an id every event must be a plugin event; a zero
    plugin id is replaced by the plugin's own, another id is an error. Plugin
    events get no thread, and a timestamp of ``UINT64_MAX`` means "now".
    """
    if len(raw) < HEADER_SIZE:
        raise HostError(f"malformed plugin event produced by plugin: '{plugin}'")
    _, _, length, etype, nparams = _HEADER.unpack_from(raw)
    is_plugin_event = etype == PLUGINEVENT_E and nparams == 2 and length >= PAYLOAD_OFFSET
    if plugin_id != 0:
        if not is_plugin_event:
            raise HostError(f"malformed plugin event produced by plugin: '{plugin}'")
        actual = _U32.unpack_from(raw, _ID_OFFSET)[0]
        if actual == 0:
            _U32.pack_into(raw, _ID_OFFSET, plugin_id)
        elif actual != plugin_id:
            raise HostError(
                f"unexpected plugin ID in plugin event: plugin='{plugin}', expected_id={plugin_id}, actual_id={actual}"
            )
    if etype == PLUGINEVENT_E:
        if not is_plugin_event or _U32.unpack_from(raw, _ID_OFFSET)[0] == 0:
            raise HostError(f"malformed plugin event produced by plugin (no ID): '{plugin}'")
        _U64.pack_into(raw, 8, UINT64_MAX)
    if _U64.unpack_from(raw, 0)[0] == UINT64_MAX:
        _U64.pack_into(raw, 0, time.time_ns())
