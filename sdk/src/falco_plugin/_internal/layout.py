"""The event layout, defined once: the runtime, the hosts and the tests read it from here.

Every event is a packed 26-byte header (timestamp, thread id, total length,
type, parameter count), then one length per parameter, then the parameter
bytes. A plugin's own events (type 322) carry two parameters with 4-byte
lengths: the plugin id and the payload.
"""

from __future__ import annotations

import struct

PLUGIN_EVENT = 322
"""Type code of events produced by a source plugin."""
ASYNC_EVENT = 402
"""Type code of asynchronous events."""

HEADER = struct.Struct("<QQIHI")
"""ts, tid, len, type, nparams (26 bytes, packed)."""
HEADER_SIZE = HEADER.size  # 26
TS_OFFSET, TID_OFFSET, LEN_OFFSET = 0, 8, 16
"""Where the header's timestamp, thread id and total length are."""
PLUGIN_EVENT_HEADER = struct.Struct("<QQIHIIII")
"""Header of a plugin event: header, two u32 lengths, the u32 plugin id."""
PARAM_LENS_OFFSET = HEADER_SIZE
"""A plugin event's two u32 parameter lengths: 4 (the id), then the payload's."""
PAYLOAD_LEN_OFFSET = HEADER_SIZE + 4
PLUGIN_ID_OFFSET = HEADER_SIZE + 8
PAYLOAD_OFFSET = PLUGIN_EVENT_HEADER.size  # 38
PLUGIN_EVENT_NPARAMS = 2
ASYNC_EVENT_LENS = struct.Struct("<III")
"""An async event's three u32 parameter lengths, after the header: plugin id (4), name, payload."""
ASYNC_EVENT_NPARAMS = 3
ASYNC_NAME_OFFSET = HEADER_SIZE + ASYNC_EVENT_LENS.size + 4
"""Where an async event's NUL-terminated name starts (its payload follows the name)."""
NO_VALUE = 0xFFFF_FFFF_FFFF_FFFF
"""Timestamp or thread id left for the host to fill in (also "no thread")."""


def pack_plugin_event(payload: bytes, *, plugin_id: int = 0, ts: int = NO_VALUE, tid: int = NO_VALUE) -> bytes:
    """The bytes of a well-formed plugin event (type 322) carrying ``payload``."""
    size = PAYLOAD_OFFSET + len(payload)
    header = PLUGIN_EVENT_HEADER.pack(ts, tid, size, PLUGIN_EVENT, PLUGIN_EVENT_NPARAMS, 4, len(payload), plugin_id)
    return header + bytes(payload)


def async_parts(raw: bytes | memoryview) -> tuple[str, bytes] | None:
    """(name, payload) of the bytes of an async event (type 402), or None when they are not a
    well-formed one (every length checked against the event's own)."""
    if len(raw) < ASYNC_NAME_OFFSET:
        return None
    _, _, _, etype, nparams = HEADER.unpack_from(raw)
    l0, l1, l2 = ASYNC_EVENT_LENS.unpack_from(raw, HEADER_SIZE)
    end = ASYNC_NAME_OFFSET + l1 + l2
    if etype != ASYNC_EVENT or nparams != ASYNC_EVENT_NPARAMS or l0 != 4 or l1 == 0 or end > len(raw):
        return None
    name = bytes(raw[ASYNC_NAME_OFFSET : ASYNC_NAME_OFFSET + l1]).rstrip(b"\0").decode("utf-8", "replace")
    return name, bytes(raw[ASYNC_NAME_OFFSET + l1 : end])
