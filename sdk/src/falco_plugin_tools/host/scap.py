"""Read ``.scap`` capture files the way libscap's savefile engine does.

A capture is a pcapng-like sequence of blocks (type, total length, body,
padding to 4 bytes, total length again): a section header, metadata blocks
(machine info, process list, fd lists, interface and user lists), then event
blocks. Files may be gzip-compressed (recognised by the gzip magic, as
libscap's reader does).

:class:`ScapReader` gives the process-list entries (:class:`ProcEntry`) and
the events (:class:`ScapEvent`), numbered as libsinsp numbers them: libscap's
converter drops some events of old captures (enter events whose data it keeps
for the matching exit event, unused and obsolete types) before libsinsp
counts them, so those get no number. libsinsp then numbers every other event
from 1, including a few that it uses for state only and does not show to its
consumers (:attr:`ScapEvent.shown` says which): some enter events, events
flagged state-only, and the state events a capture starts with (async events
such as the plugins' dump_state output, users, groups, containers).

Events are given as libsinsp sees them: blocks of the old layout (without
the parameter count in the header) get the current header, and events of old
versions are rewritten to the current layouts by the same rules as libscap's
converter (:mod:`.scap_convert`); ``convert=False`` keeps them as stored
(:attr:`ScapEvent.stored` always has the stored form).
"""

from __future__ import annotations

import gzip
import io
import socket
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from falco_plugin._internal import syscall_table as tbl
from falco_plugin._internal.layout import HEADER as EVT_HEADER
from falco_plugin.event import ASYNC_EVENT
from falco_plugin.params import Params, decode_params
from falco_plugin_tools.host.errors import HostError
from falco_plugin_tools.host.scap_convert import ConversionError, Converter, verdict

__all__ = ["ScapError", "ScapReader", "ProcEntry", "FdEntry", "ScapEvent", "read_scap", "sinsp_verdict"]

SHB_BLOCK_TYPE = 0x0A0D0D0A
SHB_MAGIC = 0x1A2B3C4D
MAX_MAJOR_VERSION = 1
MI_BLOCK_TYPES = {0x201, 0x8002ABCD}
# Process list versions: block type -> version number.
PL_BLOCK_TYPES = {
    0x202: 1, 0x8000ABCD: 1, 0x207: 2, 0x8013ABCD: 2, 0x209: 3, 0x8014ABCD: 3,
    0x210: 4, 0x211: 5, 0x212: 6, 0x213: 7, 0x214: 8, 0x215: 9,
}  # fmt: skip
FDL_BLOCK_TYPES = {0x203, 0x8001ABCD, 0x218}
IL_BLOCK_TYPES = {0x205, 0x8011ABCD, 0x219}
UL_BLOCK_TYPES = {0x206, 0x8012ABCD, 0x220}
# Event blocks: block type -> (has flags, header has nparams (v2), 4-byte lengths allowed).
EV_BLOCK_TYPES = {
    0x204: (False, False), 0x8010ABCD: (False, False), 0x216: (False, True), 0x221: (False, True),
    0x208: (True, False), 0x217: (True, True), 0x222: (True, True),
}  # fmt: skip
LARGE_EV_BLOCK_TYPES = {0x221, 0x222}
READER_BUF_SIZE = 1 << 16
SCAP_DF_STATE_ONLY = 1
MAX_CONVERSION_BOUNDARY = 50
EVT_HEADER_V1 = struct.Struct("<QQIH")
PPME_GENERIC_X = 1
PPME_ASYNCEVENT_E = ASYNC_EVENT
PPME_NOTIFICATION_E = 218
PPME_INFRASTRUCTURE_EVENT_E = 260

# Enter events libsinsp parses and then hides from its consumers (sinsp.cpp's
# event filter): open/openat/openat2/creat/connect (TOCTOU) and execve/execveat
# (fallback for empty exit parameters).
_HIDDEN_AFTER_PARSE = frozenset(
    code
    for code, name in tbl.CODES.items()
    if name
    in (
        "PPME_SYSCALL_OPEN_E",
        "PPME_SYSCALL_OPENAT_2_E",
        "PPME_SYSCALL_OPENAT2_E",
        "PPME_SYSCALL_CREAT_E",
        "PPME_SOCKET_CONNECT_E",
        "PPME_SYSCALL_EXECVE_19_E",
        "PPME_SYSCALL_EXECVEAT_E",
    )
)


# Events libsinsp takes as initial state when a capture starts with them
# (consume_initialstate_events): it numbers and parses every one of them up
# to the first event of another type, and shows none of those to its
# consumers. Async events are among them: a capture Falco writes starts with
# the plugins' dump_state events.
_INITIAL_STATE = frozenset(
    code
    for code, name in tbl.CODES.items()
    if name
    in (
        "PPME_CONTAINER_E",
        "PPME_CONTAINER_JSON_E",
        "PPME_CONTAINER_JSON_2_E",
        "PPME_USER_ADDED_E",
        "PPME_USER_DELETED_E",
        "PPME_GROUP_ADDED_E",
        "PPME_GROUP_DELETED_E",
        "PPME_ASYNCEVENT_E",
    )
)


class ScapError(HostError):
    """The capture file is not readable as a scap file; the message says where."""


@dataclass
class ProcEntry:
    """One thread of the capture's process list (fields the block version lacks keep their defaults)."""

    tid: int
    pid: int
    ptid: int
    comm: str
    exe: str
    exe_path: str
    args: list[str]
    cwd: str
    fdlimit: int
    flags: int
    uid: int
    gid: int
    sid: int = -1
    vpgid: int = -1
    vmsize_kb: int = 0
    vmrss_kb: int = 0
    vmswap_kb: int = 0
    pfmajor: int = 0
    pfminor: int = 0
    env: list[str] = field(default_factory=list)
    vtid: int = -1
    vpid: int = -1
    cgroups: list[str] = field(default_factory=list)
    root: str = ""
    pidns_init_start_ts: int = 0
    tty: int = 0
    loginuid: int = 0xFFFFFFFF
    exe_writable: bool = False
    cap_inheritable: int = 0
    cap_permitted: int = 0
    cap_effective: int = 0
    exe_upper_layer: bool = False
    exe_ino: int = 0
    exe_ino_ctime: int = 0
    exe_ino_mtime: int = 0
    exe_from_memfd: bool = False
    exe_lower_layer: bool = False
    pgid: int = -1
    version: int = 0
    """Process list block version (1..9)."""


# scap_fd_type values (libscap scap.h) and how each is stored in an fd list entry.
SCAP_FD_FILE, SCAP_FD_IPV4_SOCK, SCAP_FD_IPV6_SOCK, SCAP_FD_IPV4_SERVSOCK = 1, 3, 4, 5
SCAP_FD_IPV6_SERVSOCK, SCAP_FD_UNIX_SOCK, SCAP_FD_UNSUPPORTED, SCAP_FD_FILE_V2 = 6, 8, 10, 16
_FD_NAME_ONLY = frozenset({1, 2, 7, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19, 20, 21})


@dataclass
class FdEntry:
    """One open file descriptor of a thread, from an fd list block.

    ``name`` is the path (files, directories, pipes, unix sockets...); socket
    entries carry addresses instead (server sockets only the local one).
    """

    tid: int
    fd: int
    ino: int
    type: int
    """libscap's fd type (``SCAP_FD_*``: 1 file, 2 directory, 3/4 IPv4/IPv6 socket, 5/6 server socket, 8 unix...)."""
    name: str = ""
    open_flags: int = 0
    dev: int = 0
    sip: str | None = None
    sport: int | None = None
    dip: str | None = None
    dport: int | None = None
    l4proto: int = 0
    unix_source: int = 0
    unix_dest: int = 0


@dataclass
class ScapEvent:
    """One event as read from the file."""

    raw: bytes
    """The whole event (header with parameter count, lengths, values) as libsinsp sees it."""
    cpu: int
    flags: int
    """Block flags (EVF blocks): ``1`` is SCAP_DF_STATE_ONLY."""
    num: int | None
    """libsinsp's ``evt.num``; None for events libscap's converter drops."""
    shown: bool
    """Whether libsinsp hands the event to its consumers (sinsp-example, Falco rules)."""
    offset: int
    """Offset of the event's block in the (decompressed) file."""
    stored: bytes = b""
    """The event as the file holds it (in the current header layout); ``raw`` is the same
    unless the reader converted it (``convert=True``, the default)."""

    @property
    def ts(self) -> int:
        return int(EVT_HEADER.unpack_from(self.raw)[0])

    @property
    def tid(self) -> int:
        return int(EVT_HEADER.unpack_from(self.raw)[1])

    @property
    def type(self) -> int:
        return int(EVT_HEADER.unpack_from(self.raw)[3])

    @property
    def nparams(self) -> int:
        return int(EVT_HEADER.unpack_from(self.raw)[4])

    @property
    def name(self) -> str:
        """Event name (``evt.type``): the same for every version of an event."""
        return tbl.EVENTS[self.type][0]

    @property
    def type_name(self) -> str:
        """What libsinsp's ``evt.type`` shows (the syscall's name for generic events)."""
        if self.type in (PPME_GENERIC_X, PPME_ASYNCEVENT_E):
            return self.params().evt_type_name
        return self.name

    @property
    def is_enter(self) -> bool:
        return self.type % 2 == 0

    def params(self) -> Params:
        return decode_params(self.raw)


def sinsp_verdict(code: int, nparams: int) -> tuple[int, int] | None:
    """What libscap's converter makes of an event, from its type and parameter count alone.

    Its final (type, nparams), or None when libscap drops it (or fails it:
    a conversion the table has no rule for). :class:`ScapReader` with
    ``convert=True`` does the real conversion; this is for callers holding
    events as stored.
    """
    for _ in range(MAX_CONVERSION_BOUNDARY):
        first = verdict(code, nparams)
        if first != "CONVERT":
            return (code, nparams) if first == "PASS" else None
        rule = tbl.CONVERSIONS.get((code, nparams))
        if rule is None:
            return None
        action, desired, instrs = rule
        if action == "STORE":
            return None
        if action in ("PASS", "STORE_AND_PASS"):
            return code, nparams
        if action == "ADD_PARAMS":
            nparams += len(instrs)
        else:
            code, nparams = desired, len(instrs)
    return None


class ScapReader:
    """Reads one capture; iterate :meth:`events` once (the process list is read first).

    ``source`` is a path or a binary file object (plain or gzip-compressed).
    """

    def __init__(self, source: str | Path | BinaryIO, convert: bool = True) -> None:
        if isinstance(source, str | Path):
            self._name = str(source)
            raw: BinaryIO = open(source, "rb")
        else:
            self._name = getattr(source, "name", "<stream>")
            raw = source
        head = raw.read(2)
        raw.seek(0)
        self._file: BinaryIO = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw  # type: ignore[assignment]
        self._raw = raw
        self._pos = 0
        self._pending: tuple[int, int, bytes] | None = None
        self.processes: list[ProcEntry] = []
        """Process-list entries of every section read so far."""
        self.fds: list[FdEntry] = []
        """File descriptors of the fd list blocks read so far."""
        self.skipped_blocks: list[int] = []
        """Types of the blocks skipped as unknown."""
        self.machine_info: bytes = b""
        self.version: tuple[int, int] = (0, 0)
        self._num = 0
        self._initial_state = True
        """Still in the events a capture starts with that libsinsp consumes as initial state."""
        self._converter = Converter() if convert else None
        self.errors: list[str] = []
        """Events libscap would fail to convert (and not deliver), with their offsets."""
        self._read_section()

    def __enter__(self) -> ScapReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()
        self._raw.close()

    # -- blocks ------------------------------------------------------------------
    def _read(self, n: int) -> bytes:
        try:
            data = self._file.read(n)
        except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
            raise ScapError(f"{self._name}: offset {self._pos}: {e}") from None
        self._pos += len(data)
        return data

    def _block(self) -> tuple[int, int, bytes] | None:
        """The next block: (type, offset, body without the trailer); None at the end of the file."""
        if self._pending is not None:
            block, self._pending = self._pending, None
            return block
        offset = self._pos
        head = self._read(8)
        if not head:
            return None
        if len(head) < 8:
            raise ScapError(f"{self._name}: offset {offset}: truncated block header")
        btype, total = struct.unpack("<II", head)
        if offset == 0 and btype != SHB_BLOCK_TYPE:
            raise ScapError(f"{self._name}: not a scap file (first block type {btype:#x})")
        if total < 12 or total % 4:
            raise ScapError(f"{self._name}: offset {offset}: block {btype:#x} has invalid length {total}")
        body = self._read(total - 8)
        if len(body) < total - 8:
            raise ScapError(f"{self._name}: offset {offset}: block {btype:#x} truncated")
        (trailer,) = struct.unpack_from("<I", body, len(body) - 4)
        if trailer != total:
            raise ScapError(f"{self._name}: offset {offset}: block {btype:#x}: length {total} but trailer {trailer}")
        return btype, offset, body[:-4]

    def _read_section(self) -> None:
        block = self._block()
        if block is None:
            raise ScapError(f"{self._name}: empty file")
        btype, offset, body = block
        if btype != SHB_BLOCK_TYPE:
            raise ScapError(f"{self._name}: not a scap file (first block type {btype:#x})")
        if len(body) < 16:
            raise ScapError(f"{self._name}: section header too short")
        magic, major, minor, _ = struct.unpack_from("<IHHQ", body)
        if magic != SHB_MAGIC:
            raise ScapError(f"{self._name}: invalid section header magic {magic:#x}")
        if major > MAX_MAJOR_VERSION:
            raise ScapError(f"{self._name}: scap format {major}.{minor} is newer than this reader")
        self.version = (major, minor)
        while True:
            block = self._block()
            if block is None:
                return
            btype, offset, body = block
            if btype in EV_BLOCK_TYPES:
                self._pending = block
                return
            if btype in MI_BLOCK_TYPES:
                self.machine_info = body
            elif btype in PL_BLOCK_TYPES:
                self.processes.extend(self._proclist(PL_BLOCK_TYPES[btype], offset, body))
            elif btype in FDL_BLOCK_TYPES:
                self.fds.extend(self._fdlist(btype == 0x218, offset, body))
            elif btype in IL_BLOCK_TYPES or btype in UL_BLOCK_TYPES:
                pass  # interfaces and users: not needed by this reader's users yet
            else:
                self.skipped_blocks.append(btype)

    def _proclist(self, version: int, offset: int, body: bytes) -> list[ProcEntry]:
        out = []
        pos = 0
        while len(body) - pos >= 4:
            try:
                entry, pos = _proc_entry(version, body, pos)
            except (struct.error, ValueError) as e:
                raise ScapError(f"{self._name}: offset {offset}: process list v{version} entry at {pos}: {e}") from None
            out.append(entry)
        return out

    def _fdlist(self, v2: bool, offset: int, body: bytes) -> list[FdEntry]:
        out = []
        try:
            (tid,) = struct.unpack_from("<Q", body)
            pos = 8
            while len(body) - pos >= 4:
                entry, pos = _fd_entry(tid, v2, body, pos)
                out.append(entry)
        except (struct.error, ValueError) as e:
            raise ScapError(f"{self._name}: offset {offset}: fd list entry at {pos}: {e}") from None
        return out

    # -- events ------------------------------------------------------------------
    def events(self, include_dropped: bool = False) -> Iterator[ScapEvent]:
        """Every event libsinsp would number, in file order (and, if asked, the dropped ones, num None).

        Unknown block types between events are skipped; a new section header
        (concatenated captures) starts a new section, whose process list is
        added to :attr:`processes`, and numbering goes on.
        """
        while True:
            block = self._block()
            if block is None:
                return
            btype, offset, body = block
            if btype == SHB_BLOCK_TYPE:
                self._pending = block
                self._read_section()
                continue
            kind = EV_BLOCK_TYPES.get(btype)
            if kind is None:
                self.skipped_blocks.append(btype)
                continue
            has_flags, v2 = kind
            if btype not in LARGE_EV_BLOCK_TYPES and len(body) + 4 > READER_BUF_SIZE:
                raise ScapError(f"{self._name}: offset {offset}: event block of {len(body) + 12} bytes is too large")
            ev = self._event(offset, body, has_flags, v2)
            if ev is None:
                continue
            if ev.num is not None or include_dropped:
                yield ev

    def _event(self, offset: int, body: bytes, has_flags: bool, v2: bool) -> ScapEvent | None:
        head = 6 if has_flags else 2
        hsize = EVT_HEADER.size if v2 else EVT_HEADER_V1.size
        if len(body) < head + hsize:
            raise ScapError(f"{self._name}: offset {offset}: event block too short")
        cpu = struct.unpack_from("<H", body)[0]
        flags = struct.unpack_from("<I", body, 2)[0] if has_flags else 0
        if v2:
            ts, tid, length, code, nparams = EVT_HEADER.unpack_from(body, head)
            if length < hsize or head + length > len(body):
                raise ScapError(f"{self._name}: offset {offset}: event length {length} does not fit its block")
            raw = body[head : head + length]
        else:
            ts, tid, length, code = EVT_HEADER_V1.unpack_from(body, head)
            if length < hsize or head + length > len(body):
                raise ScapError(f"{self._name}: offset {offset}: event length {length} does not fit its block")
            if code >= tbl.PPM_EVENT_MAX:
                return None
            # libscap: these two were written with a length 3 bytes too long.
            if code in (PPME_NOTIFICATION_E, PPME_INFRASTRUCTURE_EVENT_E):
                length -= 3
            rest = body[head + hsize : head + length]
            nparams = _guess_nparams(code, rest)
            if nparams is None:
                raise ScapError(
                    f"{self._name}: offset {offset}: {tbl.EVENTS[code][0]} event ({code}): "
                    "parameter lengths match no parameter count"
                )
            raw = EVT_HEADER.pack(ts, tid, length + 4, code, nparams) + rest
        if code >= tbl.PPM_EVENT_MAX:
            return None  # libscap skips event types newer than its schema
        delivered: bytes | None
        if self._converter is not None:
            try:
                delivered = self._converter.convert(raw)
            except ConversionError as e:
                self.errors.append(f"{self._name}: offset {offset}: {e}")
                delivered = None
        else:
            delivered = raw if sinsp_verdict(code, nparams) is not None else None
        if delivered is None:
            return ScapEvent(raw=raw, cpu=cpu, flags=flags, num=None, shown=False, offset=offset, stored=raw)
        self._num += 1
        final_type = EVT_HEADER.unpack_from(delivered)[3]
        if self._converter is None:
            final_type = (sinsp_verdict(code, nparams) or (code, 0))[0]
        if final_type not in _INITIAL_STATE:
            self._initial_state = False
        shown = final_type not in _HIDDEN_AFTER_PARSE and not flags & SCAP_DF_STATE_ONLY and not self._initial_state
        return ScapEvent(raw=delivered, cpu=cpu, flags=flags, num=self._num, shown=shown, offset=offset, stored=raw)


def _guess_nparams(code: int, rest: bytes) -> int | None:
    """Old event blocks carry no parameter count: the largest count whose u16 lengths add up exactly."""
    end = len(rest)
    for n in range(len(tbl.EVENTS[code][3]), -1, -1):
        if 2 * n > end:
            continue
        lens = struct.unpack_from(f"<{n}H", rest)
        total = 2 * n + sum(lens)
        if total < end:
            return None  # libscap: corrupted (more bytes than any count explains)
        if total == end:
            return n
    return None


def _fd_entry(tid: int, v2: bool, body: bytes, pos: int) -> tuple[FdEntry, int]:
    start = pos
    sub_len = 0
    if v2:
        (sub_len,) = struct.unpack_from("<I", body, pos)
        pos += 4
    fd, ino, ftype = struct.unpack_from("<qQB", body, pos)
    pos += 17
    e = FdEntry(tid=tid, fd=fd, ino=ino, type=ftype)

    def name() -> str:
        nonlocal pos
        (n,) = struct.unpack_from("<H", body, pos)
        if pos + 2 + n > len(body):
            raise ValueError(f"name of {n} bytes past the block end")
        s = body[pos + 2 : pos + 2 + n]
        pos += 2 + n
        return s.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    def ip(n: int) -> str:
        nonlocal pos
        if pos + n > len(body):
            raise ValueError("address past the block end")
        a = socket.inet_ntop(socket.AF_INET if n == 4 else socket.AF_INET6, body[pos : pos + n])
        pos += n
        return a

    if ftype in (SCAP_FD_IPV4_SOCK, SCAP_FD_IPV6_SOCK):
        n = 4 if ftype == SCAP_FD_IPV4_SOCK else 16
        e.sip, e.dip = ip(n), ip(n)
        e.sport, e.dport, e.l4proto = struct.unpack_from("<HHB", body, pos)
        pos += 5
    elif ftype in (SCAP_FD_IPV4_SERVSOCK, SCAP_FD_IPV6_SERVSOCK):
        e.sip = ip(4 if ftype == SCAP_FD_IPV4_SERVSOCK else 16)
        e.sport, e.l4proto = struct.unpack_from("<HB", body, pos)
        pos += 3
    elif ftype == SCAP_FD_UNIX_SOCK:
        e.unix_source, e.unix_dest = struct.unpack_from("<QQ", body, pos)
        pos += 16
        e.name = name()
    elif ftype == SCAP_FD_FILE_V2:
        (e.open_flags,) = struct.unpack_from("<I", body, pos)
        pos += 4
        e.name = name()
        if sub_len and sub_len >= pos - start + 4:
            (e.dev,) = struct.unpack_from("<I", body, pos)
            pos += 4
    elif ftype in _FD_NAME_ONLY:
        e.name = name()
    elif ftype == 0:
        pass  # SCAP_FD_UNKNOWN: libscap reads nothing more
    else:
        # A type from a newer libscap: libscap keeps it as unsupported, and so do we.
        e.type, e.name = SCAP_FD_UNSUPPORTED, f"unknown-type:[{ftype}]"
    if sub_len:
        if pos - start > sub_len:
            raise ValueError(f"entry longer ({pos - start} bytes) than its length {sub_len}")
        pos = start + sub_len
    if pos > len(body):
        raise ValueError("entry runs past the block end")
    return e, pos


# The fields that end a process entry in the order writers added them, each
# present only when the entry's length leaves room for it ("<B": a flag).
_PROC_TAIL = (
    ("loginuid", "<I"),
    ("exe_writable", "<B"),
    ("cap_inheritable", "<Q"),
    ("cap_permitted", "<Q"),
    ("cap_effective", "<Q"),
    ("exe_upper_layer", "<B"),
    ("exe_ino", "<Q"),
    ("exe_ino_ctime", "<Q"),
    ("exe_ino_mtime", "<Q"),
    ("exe_from_memfd", "<B"),
    ("exe_lower_layer", "<B"),
    ("pgid", "<q"),
)


def _proc_entry(version: int, body: bytes, pos: int) -> tuple[ProcEntry, int]:
    start = pos
    sub_len = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (v,) = struct.unpack_from(fmt, body, pos)
        pos += struct.calcsize(fmt)
        return int(v)

    def text() -> bytes:
        nonlocal pos
        n = take("<H")
        if pos + n > len(body):
            raise ValueError(f"string of {n} bytes past the block end")
        s = body[pos : pos + n]
        pos += n
        return s

    def string() -> str:
        s = text()
        nul = s.find(b"\0")
        return (s if nul < 0 else s[:nul]).decode("utf-8", "surrogateescape")

    def strlist() -> list[str]:
        # NUL-separated, usually NUL-terminated: libsinsp drops one final NUL and splits.
        s = text()
        if s.endswith(b"\0"):
            s = s[:-1]
        return [p.decode("utf-8", "surrogateescape") for p in s.split(b"\0")] if s else []

    if version >= 9:
        sub_len = take("<I")
    tid, pid, ptid = take("<q"), take("<q"), take("<q")
    sid = take("<q") if version >= 6 else -1
    vpgid = take("<q") if version >= 8 else -1
    comm = string()
    exe = string()
    exe_path = string() if version >= 7 else ""
    args = strlist()
    cwd = string()
    fdlimit = take("<Q")
    flags = take("<I")
    uid = take("<I")
    gid = take("<I")
    e = ProcEntry(tid, pid, ptid, comm, exe, exe_path, args, cwd, fdlimit, flags, uid, gid, sid, vpgid)
    e.version = version
    if version >= 2:
        e.vmsize_kb, e.vmrss_kb, e.vmswap_kb = take("<I"), take("<I"), take("<I")
        e.pfmajor, e.pfminor = take("<Q"), take("<Q")
        if version >= 3:
            e.env = strlist()
        if version >= 4:
            e.vtid, e.vpid = take("<q"), take("<q")
            e.cgroups = strlist()
            if version >= 5:
                e.root = string()
    if sub_len:
        read = pos - start

        def room(n: int) -> bool:
            return pos - start + n <= sub_len

        # libs 0.10 wrote two fields in the middle; older writers have at
        # most 29 bytes (loginuid .. capabilities) after the common part.
        if sub_len - read > 29:
            if room(8):
                e.pidns_init_start_ts = take("<Q")
            if room(4):
                e.tty = take("<I")
        for attr, fmt in _PROC_TAIL:
            if room(struct.calcsize(fmt)):
                value = take(fmt)
                setattr(e, attr, value != 0 if fmt == "<B" else value)
        if pos - start > sub_len:
            raise ValueError(f"entry longer ({pos - start} bytes) than its length {sub_len}")
        pos = start + sub_len
    if pos > len(body):
        raise ValueError("entry runs past the block end")
    return e, pos


def read_scap(source: str | Path | BinaryIO | bytes) -> tuple[list[ProcEntry], list[ScapEvent]]:
    """The whole capture at once: (process list, numbered events)."""
    stream: str | Path | BinaryIO = io.BytesIO(source) if isinstance(source, bytes) else source
    with ScapReader(stream) as r:
        events = list(r.events())
        return r.processes, events
