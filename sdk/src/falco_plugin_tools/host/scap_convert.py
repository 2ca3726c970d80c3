"""libscap's savefile converter: events of old captures rewritten to the current layouts.

Captures written by older drivers hold older versions of many events (fewer
parameters, older type codes) and enter events whose data the current exit
events carry. libscap rewrites each event it reads before libsinsp sees it,
following a table of rules (``CONVERSIONS`` in ``_internal/syscall_table.py``,
extracted from libscap's converter): keep an enter event for the matching
exit event and drop it, append parameters (empty, a default value, or taken
from the stored enter event), or rebuild the event as a newer type. This
module applies the same rules, so a capture reads as libsinsp sees it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from falco_plugin._internal import syscall_table as tbl
from falco_plugin._internal.layout import HEADER

__all__ = ["ConversionError", "Converter", "RawEvent", "verdict"]

MAX_CONVERSIONS = 50

# Fixed parameter sizes (libs' ppm_param_helpers.h); other types have no fixed size.
_FIXED_SIZE = {
    **dict.fromkeys((tbl.PT_INT8, tbl.PT_UINT8, tbl.PT_FLAGS8, tbl.PT_ENUMFLAGS8, tbl.PT_SIGTYPE), 1),
    **dict.fromkeys((tbl.PT_INT16, tbl.PT_UINT16, tbl.PT_FLAGS16, tbl.PT_ENUMFLAGS16, tbl.PT_SYSCALLID), 2),
    tbl.PT_PORT: 2,
    **dict.fromkeys(
        (tbl.PT_INT32, tbl.PT_UINT32, tbl.PT_FLAGS32, tbl.PT_ENUMFLAGS32, tbl.PT_UID, tbl.PT_GID, tbl.PT_MODE), 4
    ),
    **dict.fromkeys((tbl.PT_SIGSET, tbl.PT_FD32, tbl.PT_PID32, tbl.PT_IPV4ADDR), 4),
    **dict.fromkeys((tbl.PT_INT64, tbl.PT_UINT64, tbl.PT_RELTIME, tbl.PT_ABSTIME, tbl.PT_ERRNO), 8),
    tbl.PT_FD: 8,
    tbl.PT_PID: 8,
    tbl.PT_IPV6ADDR: 16,
}


class ConversionError(Exception):
    """libscap would fail this event (and not deliver it): the message says why."""


@dataclass
class RawEvent:
    """An event split into its header fields and parameter bytes."""

    ts: int
    tid: int
    type: int
    params: list[bytes]

    @classmethod
    def parse(cls, raw: bytes) -> RawEvent:
        ts, tid, length, code, nparams = HEADER.unpack_from(raw)
        large = code in tbl.EVENTS and tbl.EVENTS[code][2] & tbl.EF_LARGE_PAYLOAD
        lsize = 4 if large else 2
        if HEADER.size + lsize * nparams > min(length, len(raw)):
            raise ConversionError(f"event type {code}: {nparams} parameter lengths do not fit in the event")
        lens = struct.unpack_from(f"<{nparams}{'I' if large else 'H'}", raw, HEADER.size)
        pos = HEADER.size + lsize * nparams
        params = []
        for n in lens:
            params.append(raw[pos : pos + n])
            pos += n
        if pos != length or length > len(raw):
            raise ConversionError(f"event type {code}: parameter lengths do not add up to the event length")
        return cls(ts, tid, code, params)

    def encode(self) -> bytes:
        large = tbl.EVENTS[self.type][2] & tbl.EF_LARGE_PAYLOAD
        lens = struct.pack(f"<{len(self.params)}{'I' if large else 'H'}", *map(len, self.params))
        body = lens + b"".join(self.params)
        return HEADER.pack(self.ts, self.tid, HEADER.size + len(body), self.type, len(self.params)) + body


def verdict(code: int, nparams: int) -> str:
    """libscap's first question about an event: "PASS", "DROP" or "CONVERT" (the converter's README rules)."""
    entry = tbl.EVENTS.get(code)
    if entry is None:
        return "DROP"
    flags = entry[2]
    if flags & tbl.EF_UNUSED:
        return "DROP"
    if not flags & tbl.EF_CONVERTER_MANAGED:
        if not flags & tbl.EF_OLD_VERSION:
            return "PASS"
        # An old exit event the converter does not manage is a schema bug libscap fails on;
        # it cannot happen with the generated table (test_scap checks).
        return "DROP" if code % 2 == 0 else "CONVERT"
    if code % 2 == 0:
        return "CONVERT"
    if flags & tbl.EF_OLD_VERSION or nparams != len(entry[3]):
        return "CONVERT"
    return "PASS"


def _param_type(code: int, index: int) -> int:
    params = tbl.EVENTS[code][3]
    if index >= len(params):
        raise ConversionError(f"{tbl.EVENTS[code][0]} ({code}) has no parameter {index}")
    return params[index][1]


def _default(pt: int) -> bytes:
    size = _FIXED_SIZE.get(pt, 0)
    if pt in (tbl.PT_UID, tbl.PT_GID):
        return b"\xff" * 4
    return bytes(size)


def _cap(pt: int, data: bytes, large: bool) -> bytes:
    limit = _FIXED_SIZE.get(pt, 0xFFFFFFFF if large else 0xFFFF)
    return data[:limit]


def _container_json(old: RawEvent) -> bytes:
    # The one callback in libscap's table: an old container event (id, type, name, image)
    # becomes the JSON parameter of the newer container event.
    def text(i: int) -> str:
        b = old.params[i]
        if not b:
            raise ConversionError("empty string")
        return b[:-1].decode("utf-8", "surrogateescape")

    if len(old.params) < 4 or len(old.params[1]) != 4:
        raise ConversionError("not an old container event")
    (ctype,) = struct.unpack("<I", old.params[1])
    # Concatenated, as libscap does (no escaping), to give the same bytes.
    doc = '{"id":"' + text(0) + '","type":' + str(ctype) + ',"name":"' + text(2) + '","image":"' + text(3) + '"}'
    return doc.encode("utf-8", "surrogateescape") + b"\0"


class Converter:
    """Converts a capture's events in order (it keeps each thread's last enter event)."""

    def __init__(self) -> None:
        self._stored: dict[int, RawEvent] = {}

    def convert(self, raw: bytes) -> bytes | None:
        """The event as libscap delivers it, or None when libscap drops it; ConversionError when libscap fails."""
        _ts, _tid, _length, code, nparams = HEADER.unpack_from(raw)
        first = verdict(code, nparams)
        if first == "PASS":
            return raw
        if first == "DROP":
            return None
        ev = RawEvent.parse(raw)
        for _ in range(MAX_CONVERSIONS):
            rule = tbl.CONVERSIONS.get((ev.type, len(ev.params)))
            if rule is None:
                raise ConversionError(
                    f"{tbl.EVENTS[ev.type][0]} ({ev.type}) with {len(ev.params)} parameters: no conversion for it"
                )
            action, desired, instrs = rule
            if action == "STORE":
                self._stored[ev.tid] = ev
                return None
            if action == "PASS":
                return ev.encode()
            if action == "STORE_AND_PASS":
                self._stored[ev.tid] = ev
                return ev.encode()
            ev = self._apply(ev, action, desired, instrs)
            result = verdict(ev.type, len(ev.params))
            if result == "PASS":
                return ev.encode()
            if result == "DROP":
                return None
        raise ConversionError(f"event type {code}: no end after {MAX_CONVERSIONS} conversions")

    def _apply(self, old: RawEvent, action: str, desired: int, instrs: tuple[tuple[str, int, bool], ...]) -> RawEvent:
        if action == "ADD_PARAMS":
            new = RawEvent(old.ts, old.tid, old.type, list(old.params))
        elif action == "CHANGE_TYPE":
            new = RawEvent(old.ts, old.tid, desired, [])
        else:
            raise ConversionError(f"unknown conversion action {action}")
        large = bool(tbl.EVENTS[new.type][2] & tbl.EF_LARGE_PAYLOAD)
        used_enter = False
        for kind, num, fallback_empty in instrs:
            pt = _param_type(new.type, len(new.params))
            source: RawEvent | None = None
            if kind == "EMPTY":
                new.params.append(b"")
                continue
            if kind == "DEFAULT":
                new.params.append(_default(pt))
                continue
            if kind == "CALLBACK":
                try:
                    new.params.append(_container_json(old))
                except (ConversionError, UnicodeError, struct.error):
                    new.params.append(b"" if fallback_empty else _default(pt))
                continue
            if kind == "ENTER":
                source = self._stored.get(old.tid)
                if source is not None:
                    if source.type != old.type - 1:
                        raise ConversionError(
                            f"the enter event kept for {tbl.EVENTS[old.type][0]} ({old.type}) is of type {source.type}"
                        )
                    if len(source.params) <= num:
                        raise ConversionError(f"enter event {source.type} has no parameter {num}")
                    used_enter = True
            elif kind == "OLD":
                source = old
                if len(source.params) <= num:
                    raise ConversionError(f"event {old.type} has no parameter {num} to take")
            else:
                raise ConversionError(f"unknown conversion instruction {kind}")
            if source is None:
                new.params.append(b"" if fallback_empty else _default(pt))
            else:
                new.params.append(_cap(pt, source.params[num], large))
        if used_enter:
            del self._stored[old.tid]
        return new
