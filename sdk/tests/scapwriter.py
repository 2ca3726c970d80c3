"""Write .scap captures and events from Python values, for the reader and decoder tests.

The inverse of ``falco_plugin.params`` (``encode_value``/``build_event``) and
of ``falco_plugin_tools.host.scap`` (``ScapWriter``): section header, machine
info, process lists (versions 1..9), unknown blocks, event blocks of every
kind (EV/EVF, v1 headers without the parameter count, v2, large).
"""

from __future__ import annotations

import gzip
import io
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from falco_plugin._internal import syscall_table as tbl
from falco_plugin.params import SockAddr, SockTuple
from falco_plugin_tools.host.scap import FdEntry, ProcEntry

HEADER = struct.Struct("<QQIHI")
SHB_BLOCK_TYPE = 0x0A0D0D0A

_INT_FORMATS = {
    tbl.PT_INT8: "<b", tbl.PT_INT16: "<h", tbl.PT_INT32: "<i", tbl.PT_INT64: "<q",
    tbl.PT_ERRNO: "<q", tbl.PT_FD: "<q", tbl.PT_PID: "<q", tbl.PT_FD32: "<i", tbl.PT_PID32: "<i",
    tbl.PT_UINT8: "<B", tbl.PT_UINT16: "<H", tbl.PT_UINT32: "<I", tbl.PT_UINT64: "<Q",
    tbl.PT_FLAGS8: "<B", tbl.PT_FLAGS16: "<H", tbl.PT_FLAGS32: "<I",
    tbl.PT_ENUMFLAGS8: "<B", tbl.PT_ENUMFLAGS16: "<H", tbl.PT_ENUMFLAGS32: "<I",
    tbl.PT_UID: "<I", tbl.PT_GID: "<I", tbl.PT_MODE: "<I", tbl.PT_SIGSET: "<I",
    tbl.PT_SYSCALLID: "<H", tbl.PT_SIGTYPE: "<B", tbl.PT_PORT: "<H", tbl.PT_L4PROTO: "<B",
    tbl.PT_SOCKFAMILY: "<B", tbl.PT_RELTIME: "<Q", tbl.PT_ABSTIME: "<Q", tbl.PT_DOUBLE: "<d",
}  # fmt: skip


@dataclass
class Dyn:
    """A PT_DYN value: the index of its alternative, and the value."""

    index: int
    value: Any


def _ip(addr: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)


def _cstr(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape") + b"\0"


def encode_value(pt: int, value: Any, extra: str = "") -> bytes:
    """The bytes of one parameter; ``None`` is the empty (zero-length) parameter."""
    if value is None:
        return b""
    if pt == tbl.PT_DYN:
        alternatives = tbl.DYNAMIC[extra]
        return bytes([value.index]) + encode_value(alternatives[value.index], value.value)
    if pt in _INT_FORMATS:
        return struct.pack(_INT_FORMATS[pt], value)
    if pt in (tbl.PT_CHARBUF, tbl.PT_FSPATH, tbl.PT_FSRELPATH):
        return _cstr(value)
    if pt == tbl.PT_BYTEBUF and extra != "nul-list":
        return bytes(value)
    if pt in (tbl.PT_BYTEBUF, tbl.PT_CHARBUFARRAY):
        return b"".join(_cstr(s) for s in value)
    if pt == tbl.PT_CHARBUF_PAIR_ARRAY:
        return b"".join(_cstr(k) + _cstr(v) for k, v in value)
    if pt == tbl.PT_BOOL:
        return struct.pack("<I", 1 if value else 0)
    if pt == tbl.PT_SOCKADDR:
        a = SockAddr(*value)
        if a.family == 1:
            return b"\x01" + _cstr(a.addr or "")
        if a.family in (2, 10):
            return bytes([a.family]) + _ip(a.addr or "") + struct.pack("<H", a.port)
        return bytes([a.family])
    if pt == tbl.PT_SOCKTUPLE:
        t = SockTuple(*value)
        if t.family == 1:
            return b"\x01" + struct.pack("<QQ", int(t.saddr or "0", 16), int(t.daddr or "0", 16)) + _cstr(t.path or "")
        if t.family in (2, 10):
            return (
                bytes([t.family])
                + _ip(t.saddr or "")
                + struct.pack("<H", t.sport)
                + _ip(t.daddr or "")
                + struct.pack("<H", t.dport)
            )
        return bytes([t.family])
    if pt == tbl.PT_FDLIST:
        return struct.pack("<H", len(value)) + b"".join(struct.pack("<qH", fd, fl) for fd, fl in value)
    if pt in (tbl.PT_IPV4ADDR, tbl.PT_IPV6ADDR, tbl.PT_IPADDR):
        return _ip(value)
    if pt in (tbl.PT_IPV4NET, tbl.PT_IPV6NET, tbl.PT_IPNET):
        return _ip(value[0]) + _ip(value[1])
    if pt == tbl.PT_NONE:
        return bytes(value)
    raise ValueError(f"cannot encode type {pt}")


def build_event(
    code: int,
    values: dict[str, Any] | Sequence[Any] = (),
    *,
    ts: int = 1,
    tid: int = 1,
    raw_params: Sequence[bytes] | None = None,
) -> bytes:
    """One event in the current layout (header with nparams, u16 or u32 lengths as the type says).

    ``values`` by name (absent names are not written: give a prefix of the
    layout) or by position; ``raw_params`` gives the parameter bytes as is.
    """
    _name, _cat, flags, params = tbl.EVENTS[code]
    if raw_params is None:
        if isinstance(values, dict):
            unknown = set(values) - {p[0] for p in params}
            if unknown:
                raise KeyError(f"{code}: no parameters {sorted(unknown)}")
            n = max((i + 1 for i, p in enumerate(params) if p[0] in values), default=0)
            seq = [values.get(p[0]) for p in params[:n]]
        else:
            seq = list(values)
        raw_params = [encode_value(p[1], v, p[2]) for p, v in zip(params, seq, strict=False)]
    lfmt = "<I" if flags & tbl.EF_LARGE_PAYLOAD else "<H"
    body = b"".join(struct.pack(lfmt, len(b)) for b in raw_params) + b"".join(raw_params)
    return HEADER.pack(ts, tid, HEADER.size + len(body), code, len(raw_params)) + body


def _pad(body: bytes) -> bytes:
    return body + b"\0" * (-len(body) % 4)


def block(btype: int, body: bytes) -> bytes:
    body = _pad(body)
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


PL_TYPES = {1: 0x202, 2: 0x207, 3: 0x209, 4: 0x210, 5: 0x211, 6: 0x212, 7: 0x213, 8: 0x214, 9: 0x215}


def _s(s: str) -> bytes:
    b = s.encode("utf-8", "surrogateescape")
    return struct.pack("<H", len(b)) + b


def _sl(items: list[str]) -> bytes:
    b = b"".join(x.encode("utf-8", "surrogateescape") + b"\0" for x in items)
    return struct.pack("<H", len(b)) + b


def proc_entry(e: ProcEntry, version: int) -> bytes:
    """One process-list entry of block version ``version``, laid out as libscap writes it."""
    out = struct.pack("<qqq", e.tid, e.pid, e.ptid)
    if version >= 6:
        out += struct.pack("<q", e.sid)
    if version >= 8:
        out += struct.pack("<q", e.vpgid)
    out += _s(e.comm) + _s(e.exe)
    if version >= 7:
        out += _s(e.exe_path)
    out += _sl(e.args) + _s(e.cwd)
    out += struct.pack("<QIII", e.fdlimit, e.flags, e.uid, e.gid)
    if version >= 2:
        out += struct.pack("<IIIQQ", e.vmsize_kb, e.vmrss_kb, e.vmswap_kb, e.pfmajor, e.pfminor)
        if version >= 3:
            out += _sl(e.env)
        if version >= 4:
            out += struct.pack("<qq", e.vtid, e.vpid) + _sl(e.cgroups)
            if version >= 5:
                out += _s(e.root)
    if version >= 9:
        out += struct.pack("<QI", e.pidns_init_start_ts, e.tty)
        out += struct.pack("<IB", e.loginuid, e.exe_writable)
        out += struct.pack("<QQQ", e.cap_inheritable, e.cap_permitted, e.cap_effective)
        out += struct.pack("<BQQQ", e.exe_upper_layer, e.exe_ino, e.exe_ino_ctime, e.exe_ino_mtime)
        out += struct.pack("<BBq", e.exe_from_memfd, e.exe_lower_layer, e.pgid)
        out = struct.pack("<I", len(out) + 4) + out
    return out


def fd_entry(e: FdEntry, v2: bool) -> bytes:
    """One fd-list entry, laid out as libscap writes it (v2 entries start with their length)."""
    out = struct.pack("<qQB", e.fd, e.ino, e.type)
    if e.type in (3, 4):
        out += _ip(e.sip or "") + _ip(e.dip or "") + struct.pack("<HHB", e.sport or 0, e.dport or 0, e.l4proto)
    elif e.type in (5, 6):
        out += _ip(e.sip or "") + struct.pack("<HB", e.sport or 0, e.l4proto)
    elif e.type == 8:
        out += struct.pack("<QQ", e.unix_source, e.unix_dest) + _s(e.name)
    elif e.type == 16:
        out += struct.pack("<I", e.open_flags) + _s(e.name) + (struct.pack("<I", e.dev) if v2 else b"")
    else:
        out += _s(e.name)
    return struct.pack("<I", len(out) + 4) + out if v2 else out


class ScapWriter:
    """Builds a capture in memory; :meth:`bytes` or :meth:`save` it (optionally gzip-compressed)."""

    def __init__(self, major: int = 1, minor: int = 2) -> None:
        self._out = io.BytesIO()
        self.section(major, minor)

    def section(self, major: int = 1, minor: int = 2) -> ScapWriter:
        self._out.write(block(SHB_BLOCK_TYPE, struct.pack("<IHHq", 0x1A2B3C4D, major, minor, -1)))
        return self

    def raw_block(self, btype: int, body: bytes) -> ScapWriter:
        self._out.write(block(btype, body))
        return self

    def machine_info(self) -> ScapWriter:
        # num_cpus, memory, max_chars, hostname[256], boot ts, flags, ...: opaque to the reader.
        return self.raw_block(0x201, struct.pack("<IQI", 2, 1 << 30, 0) + b"host".ljust(256, b"\0") + bytes(24))

    def proclist(self, entries: Sequence[ProcEntry], version: int = 9) -> ScapWriter:
        return self.raw_block(PL_TYPES[version], b"".join(proc_entry(e, version) for e in entries))

    def fdlist(self, tid: int, entries: Sequence[FdEntry], v2: bool = True) -> ScapWriter:
        body = struct.pack("<Q", tid) + b"".join(fd_entry(e, v2) for e in entries)
        return self.raw_block(0x218 if v2 else 0x203, body)

    def event(self, raw: bytes, cpu: int = 0, flags: int | None = None, large: bool = False) -> ScapWriter:
        """An event block: EVF when ``flags`` is given, EV otherwise; v2 headers."""
        if flags is None:
            return self.raw_block(0x221 if large else 0x216, struct.pack("<H", cpu) + raw)
        return self.raw_block(0x222 if large else 0x217, struct.pack("<HI", cpu, flags) + raw)

    def event_v1(self, raw: bytes, cpu: int = 0, flags: int | None = None) -> ScapWriter:
        """An old-layout event block: the header without its parameter count (u16 lengths only)."""
        ts, tid, length, code, _ = HEADER.unpack_from(raw)
        old = struct.pack("<QQIH", ts, tid, length - 4, code) + raw[HEADER.size :]
        if flags is None:
            return self.raw_block(0x204, struct.pack("<H", cpu) + old)
        return self.raw_block(0x208, struct.pack("<HI", cpu, flags) + old)

    def bytes(self, compress: bool = False) -> bytes:
        data = self._out.getvalue()
        return gzip.compress(data) if compress else data

    def save(self, path: Path, compress: bool = False) -> Path:
        path.write_bytes(self.bytes(compress))
        return path


def sample_value(pt: int, extra: str, i: int) -> tuple[Any, Any]:
    """(value to encode, value decoding must give) for a parameter of type ``pt``; ``i`` varies it."""
    v: Any
    choices: list[Any]
    signed = {tbl.PT_INT8: 8, tbl.PT_INT16: 16, tbl.PT_INT32: 32, tbl.PT_INT64: 64, tbl.PT_ERRNO: 64}
    signed |= {tbl.PT_FD: 64, tbl.PT_PID: 64, tbl.PT_FD32: 32, tbl.PT_PID32: 32}
    unsigned = {tbl.PT_UINT8: 8, tbl.PT_UINT16: 16, tbl.PT_UINT32: 32, tbl.PT_UINT64: 64}
    unsigned |= {tbl.PT_FLAGS8: 8, tbl.PT_FLAGS16: 16, tbl.PT_FLAGS32: 32, tbl.PT_ENUMFLAGS8: 8}
    unsigned |= {tbl.PT_ENUMFLAGS16: 16, tbl.PT_ENUMFLAGS32: 32, tbl.PT_UID: 32, tbl.PT_GID: 32}
    unsigned |= {tbl.PT_MODE: 32, tbl.PT_SIGSET: 32, tbl.PT_SYSCALLID: 16, tbl.PT_SIGTYPE: 8, tbl.PT_PORT: 16}
    unsigned |= {tbl.PT_L4PROTO: 8, tbl.PT_SOCKFAMILY: 8, tbl.PT_RELTIME: 64, tbl.PT_ABSTIME: 64}
    if pt in signed:
        v = -(1 << (signed[pt] - 1)) + i  # near the minimum: sign and width both matter
        return v, v
    if pt in unsigned:
        v = (1 << unsigned[pt]) - 1 - i  # near the maximum
        return v, v
    if pt == tbl.PT_DYN:
        alternatives = tbl.DYNAMIC[extra]
        k = i % len(alternatives)
        v, expected = sample_value(alternatives[k], "", i)
        return Dyn(k, v), expected
    strings = {
        tbl.PT_CHARBUF: f"comm-{i} é",
        tbl.PT_FSPATH: f"/tmp/ü/{i}",
        tbl.PT_FSRELPATH: f"rel/{i}",
        tbl.PT_BOOL: i % 2 == 0,
        tbl.PT_DOUBLE: i + 0.25,
        tbl.PT_CHARBUFARRAY: ["tag", f"t{i}"],
        tbl.PT_CHARBUF_PAIR_ARRAY: [("k", f"v{i}"), ("k2", "")],
        tbl.PT_FDLIST: [(3, 1), (-1, 0xFFFF), (i, 4)],
        tbl.PT_IPV4ADDR: f"10.0.0.{i % 256}",
        tbl.PT_IPV6ADDR: f"fe80::{i:x}",
        tbl.PT_IPADDR: "192.168.1.1" if i % 2 else "2001:db8::1",
        tbl.PT_IPV4NET: ("10.1.0.0", "255.255.0.0"),
        tbl.PT_IPV6NET: ("2001:db8::", "ffff:ffff::"),
        tbl.PT_IPNET: ("10.1.0.0", "255.255.0.0"),
        tbl.PT_NONE: b"\x01\x02",
    }
    if pt in strings:
        v = strings[pt]
        return v, v
    if pt == tbl.PT_BYTEBUF:
        if extra == "nul-list":
            v = [f"a{i}", "b c", "", "x=y"]
            return v, v
        b = bytes([i % 256, 0, 255, 10])
        return b, b
    if pt == tbl.PT_SOCKADDR:
        choices = [SockAddr(2, "127.0.0.1", 8080), SockAddr(10, "::1", 443), SockAddr(1, "/run/x.sock", None)]
        v = choices[i % 3]
        return v, v
    if pt == tbl.PT_SOCKTUPLE:
        choices = [
            SockTuple(2, "10.0.0.1", 40000, "10.0.0.2", 80),
            SockTuple(10, "2001:db8::1", 1, "2001:db8::2", 65535),
            SockTuple(1, "ffff8880aa", None, "0", None, "/var/run/nscd/socket"),
        ]
        v = choices[i % 3]
        return v, v
    raise AssertionError(f"no sample for type {pt}")


def sample_event(code: int, ts: int = 123, tid: int = 456) -> tuple[bytes, dict[str, Any]]:
    """An event of type ``code`` with a value in every parameter, and the values decoding must give."""
    encoded, expected = {}, {}
    for i, (pname, pt, extra) in enumerate(tbl.EVENTS[code][3]):
        encoded[pname], expected[pname] = sample_value(pt, extra, (i + code) % 100)
    return build_event(code, encoded, ts=ts, tid=tid), expected
