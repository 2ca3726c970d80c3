"""Parameters of syscall (and other libscap) events as Python values.

``decode_params(raw)`` takes one whole event (header, lengths, values, as
libscap lays it out) and returns a :class:`Params`: a read-only mapping from
parameter name to value that decodes a parameter only when it is read::

    p = decode_params(event_bytes)
    p.evt_name, p.is_enter        # "execve", False
    p["exe"], p.res, p.args       # "/usr/bin/curl", 0, ["curl", "-6", "..."]

The layouts come from libs' event table (``_internal/syscall_table.py``).
Keys are the parameter names of the event type's current layout; what a
value is depends on the parameter's type:

================================================  ==============================================
PT type                                           value
================================================  ==============================================
INT8..INT64, ERRNO, FD, PID, FD32, PID32          ``int``, signed (errno values are negative)
UINT8..UINT64, FLAGS*, ENUMFLAGS*, UID, GID,      ``int``, unsigned, of the type's width
MODE, SIGSET, SYSCALLID, SIGTYPE, PORT, L4PROTO,
SOCKFAMILY, RELTIME, ABSTIME
BOOL                                              ``bool``
DOUBLE                                            ``float``
CHARBUF, FSPATH, FSRELPATH                        ``str`` (UTF-8; undecodable bytes are kept as
                                                  surrogate escapes, like ``os.fsdecode``)
BYTEBUF                                           ``bytes``; but ``list[str]`` for the NUL-separated
                                                  ``args``, ``env`` and ``cgroups`` of process
                                                  events (the table marks them ``nul-list``)
CHARBUFARRAY                                      ``list[str]`` (NUL-separated strings)
CHARBUF_PAIR_ARRAY                                ``list[tuple[str, str]]`` (alternating key, value
                                                  NUL-separated strings); cgroups are not this type
                                                  but ``nul-list`` strings ``"subsys=path"``
SOCKADDR                                          :class:`SockAddr` ``(family, addr, port)``
SOCKTUPLE                                         :class:`SockTuple`
FDLIST                                            ``list[tuple[int, int]]``: (fd, flags)
IPV4ADDR, IPV6ADDR, IPADDR                        ``str``
IPV4NET, IPV6NET, IPNET                           ``(address str, netmask str)``
DYN                                               the value of the alternative its first byte picks
================================================  ==============================================

A zero-length parameter means "no value" (the drivers and libscap's
converter write those) and reads as ``None``, as does a string parameter
holding old drivers' ``"(NULL)"``; so does a parameter of the
current layout that an older event simply does not carry. Bad input never
crashes: an unknown type code, an unknown name, or a value whose length does
not fit its type raises a :class:`ParamError` naming the event and the
parameter.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from ._internal import layout as _layout
from ._internal import syscall_table as tbl
from .errors import PluginError

__all__ = [
    "ParamError",
    "UnknownEventError",
    "UnknownParamError",
    "MalformedParamError",
    "MalformedEventError",
    "Params",
    "SockAddr",
    "SockTuple",
    "decode_params",
    "event_layout",
    "EventLayout",
]

HEADER = _layout.HEADER
PPME_GENERIC_X = 1
PPME_ASYNCEVENT_E = 402
PPM_AF_UNSPEC, PPM_AF_UNIX, PPM_AF_INET, PPM_AF_INET6 = 0, 1, 2, 10


class ParamError(PluginError):
    """An event's parameters cannot be read as its type's layout says."""


class UnknownEventError(ParamError):
    """The event type code is not in the schema."""


class MalformedEventError(ParamError):
    """The header or the parameter lengths do not add up."""


class MalformedParamError(ParamError):
    """One parameter's bytes do not fit its type (truncated or oversized)."""


class UnknownParamError(ParamError, KeyError):
    """The event type has no parameter of that name.

    Also a ``KeyError``, so ``Params`` behaves as a ``Mapping`` (``get``,
    ``in``) should.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class SockAddr(NamedTuple):
    """A socket address: ``(2, "10.0.0.1", 80)``, ``(10, "::1", 443)``, ``(1, "/run/x.sock", None)``.

    ``addr`` and ``port`` are ``None`` for families other than INET, INET6
    and UNIX (and for an AF_UNSPEC address).
    """

    family: int
    addr: str | None
    port: int | None


class SockTuple(NamedTuple):
    """Both ends of a connection.

    INET/INET6: addresses and ports, ``path`` None. UNIX: ``saddr``/``daddr``
    are the kernel socket pointers in hex (as libsinsp prints them), ports
    None and ``path`` the socket path.
    """

    family: int
    saddr: str | None
    sport: int | None
    daddr: str | None
    dport: int | None
    path: str | None = None


# Fixed-width types: PT code -> struct format.
_FIXED: dict[int, str] = {
    tbl.PT_INT8: "<b",
    tbl.PT_INT16: "<h",
    tbl.PT_INT32: "<i",
    tbl.PT_INT64: "<q",
    tbl.PT_ERRNO: "<q",
    tbl.PT_FD: "<q",
    tbl.PT_PID: "<q",
    tbl.PT_FD32: "<i",
    tbl.PT_PID32: "<i",
    tbl.PT_UINT8: "<B",
    tbl.PT_UINT16: "<H",
    tbl.PT_UINT32: "<I",
    tbl.PT_UINT64: "<Q",
    tbl.PT_FLAGS8: "<B",
    tbl.PT_FLAGS16: "<H",
    tbl.PT_FLAGS32: "<I",
    tbl.PT_ENUMFLAGS8: "<B",
    tbl.PT_ENUMFLAGS16: "<H",
    tbl.PT_ENUMFLAGS32: "<I",
    tbl.PT_UID: "<I",
    tbl.PT_GID: "<I",
    tbl.PT_MODE: "<I",
    tbl.PT_SIGSET: "<I",
    tbl.PT_SYSCALLID: "<H",
    tbl.PT_SIGTYPE: "<B",
    tbl.PT_PORT: "<H",
    tbl.PT_L4PROTO: "<B",
    tbl.PT_SOCKFAMILY: "<B",
    tbl.PT_RELTIME: "<Q",
    tbl.PT_ABSTIME: "<Q",
    tbl.PT_DOUBLE: "<d",
}
_FIXED_STRUCTS = {pt: struct.Struct(fmt) for pt, fmt in _FIXED.items()}
_STRINGS = frozenset({tbl.PT_CHARBUF, tbl.PT_FSPATH, tbl.PT_FSRELPATH})


class EventLayout:
    """The schema of one event type, precomputed for decoding."""

    __slots__ = ("code", "name", "category", "flags", "is_enter", "len_size", "names", "types", "extras", "index")

    def __init__(self, code: int) -> None:
        name, category, flags, params = tbl.EVENTS[code]
        self.code = code
        self.name = name
        self.category = category
        self.flags = flags
        self.is_enter = code % 2 == 0
        self.len_size = 4 if flags & tbl.EF_LARGE_PAYLOAD else 2
        self.names: tuple[str, ...] = tuple(p[0] for p in params)
        self.types: tuple[int, ...] = tuple(p[1] for p in params)
        self.extras: tuple[str, ...] = tuple(p[2] for p in params)
        self.index = {n: i for i, n in enumerate(self.names)}

    def __repr__(self) -> str:
        return f"EventLayout({self.code}, {self.name!r}, {'enter' if self.is_enter else 'exit'})"


_LAYOUTS: dict[int, EventLayout] = {}


def event_layout(code: int) -> EventLayout:
    """The layout of event type ``code``; :class:`UnknownEventError` if there is none."""
    layout = _LAYOUTS.get(code)
    if layout is None:
        if code not in tbl.EVENTS:
            raise UnknownEventError(f"event type {code}: not in the event schema {tbl.SCHEMA_VERSION}")
        layout = _LAYOUTS[code] = EventLayout(code)
    return layout


def describe(code: int) -> str:
    """``"execve exit (293)"``: how errors name an event type."""
    layout = event_layout(code)
    return f"{layout.name} {'enter' if layout.is_enter else 'exit'} ({code})"


class Params(Mapping[str, Any]):
    """The parameters of one event, decoded on first read and cached.

    Keys are the parameter names of the event type (:attr:`keys` order is
    the schema's). Attribute access works for every name that is a Python
    identifier and not one of the attributes below: ``params.res``.
    The object keeps a reference to the event bytes: copy the bytes first if
    they live in a buffer the host reuses.
    """

    __slots__ = ("_buf", "_layout", "_offsets", "_values", "evt_ts", "evt_tid", "evt_num_params")

    evt_ts: int
    """Header timestamp (ns since the epoch)."""
    evt_tid: int
    """Header thread id."""
    evt_num_params: int
    """How many parameters the event actually carries (older layouts carry fewer)."""

    def __init__(self, raw: bytes | bytearray | memoryview) -> None:
        buf = memoryview(raw).cast("B") if isinstance(raw, memoryview) else memoryview(raw)
        if len(buf) < HEADER.size:
            raise MalformedEventError(f"event of {len(buf)} bytes: shorter than the {HEADER.size}-byte header")
        ts, tid, length, code, nparams = HEADER.unpack_from(buf)
        layout = event_layout(code)
        what = describe(code)
        if length < HEADER.size or length > len(buf):
            raise MalformedEventError(f"{what}: header length {length}, but {len(buf)} bytes are there")
        if nparams > len(layout.names):
            raise MalformedEventError(f"{what}: {nparams} parameters, the schema has {len(layout.names)}")
        lsize = layout.len_size
        pos = HEADER.size + nparams * lsize
        if pos > length:
            raise MalformedEventError(f"{what}: {nparams} parameter lengths do not fit in {length} bytes")
        lens = struct.unpack_from(f"<{nparams}{'I' if lsize == 4 else 'H'}", buf, HEADER.size)
        offsets = [pos]
        for n in lens:
            pos += n
            offsets.append(pos)
        if pos != length:
            raise MalformedEventError(
                f"{what}: parameters add up to {pos - offsets[0]} bytes, the event has {length - offsets[0]}"
            )
        self._buf = buf[:length]
        self._layout = layout
        self._offsets = offsets
        self._values: dict[int, Any] = {}
        self.evt_ts, self.evt_tid, self.evt_num_params = ts, tid, nparams

    # -- what event this is -------------------------------------------------
    @property
    def evt_type(self) -> int:
        """Event type code (``PPME_*``)."""
        return self._layout.code

    @property
    def evt_name(self) -> str:
        """Event name as libsinsp's ``evt.type`` shows it (``"execve"``)."""
        return self._layout.name

    @property
    def evt_type_name(self) -> str:
        """What libsinsp's ``evt.type`` field shows.

        The schema name, except for generic syscall exits (the name of the
        syscall their ``ID`` parameter gives, like ``"mprotect"``) and async
        events (their ``name`` parameter). libsinsp's fallback from an unknown
        ID to the native syscall number is not reproduced (it depends on the
        architecture of the machine that replays the capture).
        """
        code = self._layout.code
        if code == PPME_GENERIC_X and self.evt_num_params:
            sc = self[self._layout.names[0]]
            if sc is not None:
                return tbl.SYSCALLS.get(sc, "")
        elif code == PPME_ASYNCEVENT_E and self.evt_num_params > 1:
            name = self[self._layout.names[1]]
            if name is not None:
                return str(name)
        return self._layout.name

    @property
    def is_enter(self) -> bool:
        """True for an enter event (even type code), False for an exit event."""
        return self._layout.is_enter

    @property
    def layout(self) -> EventLayout:
        return self._layout

    # -- Mapping -------------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        i = self._layout.index.get(name)
        if i is None:
            raise UnknownParamError(f"{describe(self._layout.code)}: no parameter {name!r}")
        try:
            return self._values[i]
        except KeyError:
            value = self._values[i] = self._decode(i)
            return value

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not real attributes; private names
        # are never parameters (and copy/pickle probe them before __init__).
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except UnknownParamError as e:
            raise AttributeError(str(e)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._layout.names)

    def __len__(self) -> int:
        return len(self._layout.names)

    def __contains__(self, name: object) -> bool:
        return name in self._layout.index

    def __repr__(self) -> str:
        return f"<Params {describe(self._layout.code)}: {len(self)} params>"

    def raw(self, name: str) -> memoryview | None:
        """The undecoded bytes of parameter ``name`` (None when the event does not carry it)."""
        i = self._layout.index.get(name)
        if i is None:
            raise UnknownParamError(f"{describe(self._layout.code)}: no parameter {name!r}")
        if i >= self.evt_num_params:
            return None
        return self._buf[self._offsets[i] : self._offsets[i + 1]]

    def to_dict(self) -> dict[str, Any]:
        """Every parameter decoded (for printing and tests)."""
        return {n: self[n] for n in self._layout.names}

    # -- decoding ------------------------------------------------------------
    def _decode(self, i: int) -> Any:
        if i >= self.evt_num_params:
            return None
        data = self._buf[self._offsets[i] : self._offsets[i + 1]]
        if not data:
            return None
        layout = self._layout
        pt, extra = layout.types[i], layout.extras[i]
        if pt in _STRINGS and len(data) == 7 and bytes(data) == b"(NULL)\0":
            return None  # old drivers' way of saying "no value", which libsinsp honours
        try:
            if pt == tbl.PT_DYN:
                alternatives = tbl.DYNAMIC[extra]
                idx = data[0]
                if idx >= len(alternatives):
                    raise ValueError(f"dynamic type index {idx}, only {len(alternatives)} alternatives")
                return decode_value(alternatives[idx], "", data[1:])
            return decode_value(pt, extra, data)
        except (ValueError, struct.error, UnicodeDecodeError) as e:
            raise MalformedParamError(
                f"{describe(layout.code)}: parameter {layout.names[i]!r} "
                f"({tbl.PT_NAMES.get(pt, pt)}, {len(data)} bytes): {e}"
            ) from None


def decode_params(raw: bytes | bytearray | memoryview) -> Params:
    """The parameters of one whole event (header included)."""
    return Params(raw)


def _str(data: memoryview | bytes) -> str:
    b = bytes(data)
    nul = b.find(b"\0")
    return (b if nul < 0 else b[:nul]).decode("utf-8", "surrogateescape")


def _strlist(data: memoryview | bytes) -> list[str]:
    # As libsinsp reads them: one trailing NUL dropped, then split ("" is no strings).
    b = bytes(data)
    if b.endswith(b"\0"):
        b = b[:-1]
    return [s.decode("utf-8", "surrogateescape") for s in b.split(b"\0")] if b else []


def _ip(data: memoryview | bytes) -> str:
    b = bytes(data)
    if len(b) == 4:
        return socket.inet_ntop(socket.AF_INET, b)
    if len(b) == 16:
        return socket.inet_ntop(socket.AF_INET6, b)
    raise ValueError(f"an IP address has 4 or 16 bytes, not {len(b)}")


def _need(data: memoryview | bytes, n: int, what: str) -> None:
    if len(data) != n:
        raise ValueError(f"{what} needs {n} bytes")


def decode_value(pt: int, extra: str, data: memoryview | bytes) -> Any:
    """One non-empty parameter value of type ``pt``; ValueError when the bytes do not fit."""
    st = _FIXED_STRUCTS.get(pt)
    if st is not None:
        _need(data, st.size, tbl.PT_NAMES[pt])
        return st.unpack_from(data)[0]
    if pt in _STRINGS:
        return _str(data)
    if pt == tbl.PT_BYTEBUF:
        return _strlist(data) if extra == "nul-list" else bytes(data)
    if pt == tbl.PT_BOOL:
        _need(data, 4, "BOOL")
        return struct.unpack_from("<I", data)[0] != 0
    if pt == tbl.PT_CHARBUFARRAY:
        return _strlist(data)
    if pt == tbl.PT_CHARBUF_PAIR_ARRAY:
        items = _strlist(data)
        if len(items) % 2:
            raise ValueError(f"{len(items)} strings cannot be key/value pairs")
        return list(zip(items[::2], items[1::2], strict=True))
    if pt == tbl.PT_SOCKADDR:
        return _sockaddr(data)
    if pt == tbl.PT_SOCKTUPLE:
        return _socktuple(data)
    if pt == tbl.PT_FDLIST:
        if len(data) < 2:
            raise ValueError("FDLIST needs a 2-byte count")
        (count,) = struct.unpack_from("<H", data)
        _need(data, 2 + 10 * count, f"FDLIST of {count} fds")
        return [struct.unpack_from("<qH", data, 2 + 10 * k) for k in range(count)]
    if pt == tbl.PT_IPV4ADDR:
        _need(data, 4, "IPV4ADDR")
        return _ip(data)
    if pt == tbl.PT_IPV6ADDR:
        _need(data, 16, "IPV6ADDR")
        return _ip(data)
    if pt == tbl.PT_IPADDR:
        return _ip(data)
    if pt in (tbl.PT_IPV4NET, tbl.PT_IPV6NET, tbl.PT_IPNET):
        size = {tbl.PT_IPV4NET: 8, tbl.PT_IPV6NET: 32}.get(pt, len(data))
        if size not in (8, 32):
            raise ValueError(f"an IP network has 8 or 32 bytes, not {len(data)}")
        _need(data, size, tbl.PT_NAMES[pt])
        half = size // 2
        return (_ip(data[:half]), _ip(data[half:]))
    if pt == tbl.PT_NONE:
        return bytes(data)
    raise ValueError(f"no decoder for parameter type {pt}")


def _sockaddr(data: memoryview | bytes) -> SockAddr:
    family = data[0]
    if family == PPM_AF_INET:
        _need(data, 7, "an INET SOCKADDR")
        return SockAddr(family, _ip(data[1:5]), struct.unpack_from("<H", data, 5)[0])
    if family == PPM_AF_INET6:
        _need(data, 19, "an INET6 SOCKADDR")
        return SockAddr(family, _ip(data[1:17]), struct.unpack_from("<H", data, 17)[0])
    if family == PPM_AF_UNIX:
        return SockAddr(family, _str(data[1:]), None)
    return SockAddr(family, None, None)


def _socktuple(data: memoryview | bytes) -> SockTuple:
    family = data[0]
    if family == PPM_AF_INET:
        _need(data, 13, "an INET SOCKTUPLE")
        sport, dport = struct.unpack_from("<H", data, 5)[0], struct.unpack_from("<H", data, 11)[0]
        return SockTuple(family, _ip(data[1:5]), sport, _ip(data[7:11]), dport)
    if family == PPM_AF_INET6:
        _need(data, 37, "an INET6 SOCKTUPLE")
        sport, dport = struct.unpack_from("<H", data, 17)[0], struct.unpack_from("<H", data, 35)[0]
        return SockTuple(family, _ip(data[1:17]), sport, _ip(data[19:35]), dport)
    if family == PPM_AF_UNIX:
        if len(data) < 17:
            raise ValueError("a UNIX SOCKTUPLE needs at least 17 bytes")
        src, dst = struct.unpack_from("<QQ", data, 1)
        return SockTuple(family, f"{src:x}", None, f"{dst:x}", None, _str(data[17:]))
    return SockTuple(family, None, None, None, None)
