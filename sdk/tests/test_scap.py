"""The .scap reader, the thread table, and their agreement with libsinsp on real captures."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import random
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from falco_plugin._internal import syscall_table as tbl
from falco_plugin.params import ParamError
from falco_plugin_tools.host.scap import FdEntry, ProcEntry, ScapError, ScapReader, read_scap, sinsp_verdict
from falco_plugin_tools.host.scap_convert import RawEvent, verdict
from falco_plugin_tools.host.threads import ThreadTable
from scapwriter import ScapWriter, block, build_event, fd_entry, proc_entry, sample_event

CODE = {name: code for code, name in tbl.CODES.items()}
OPEN_E, OPEN_X = CODE["PPME_SYSCALL_OPEN_E"], CODE["PPME_SYSCALL_OPEN_X"]
CLOSE_E, CLOSE_X = CODE["PPME_SYSCALL_CLOSE_E"], CODE["PPME_SYSCALL_CLOSE_X"]
CLONE_X = CODE["PPME_SYSCALL_CLONE_20_X"]
EXECVE_X = CODE["PPME_SYSCALL_EXECVE_19_X"]
PROCEXIT = CODE["PPME_PROCEXIT_1_E"]
PLUGINEVENT = CODE["PPME_PLUGINEVENT_E"]


def open_x(fd: int, name: str = "/x", tid: int = 1) -> bytes:
    """An open exit of the current layout (libscap fails events it would have to convert but cannot)."""
    return build_event(OPEN_X, [fd, name, 0, 0, 0, 0], tid=tid)


REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path | None:
    """``<repo>/../shared``; from a git worktree, the first ``shared/`` above the repo."""
    for parent in REPO.parents:
        if (parent / "shared").is_dir():
            return parent / "shared"
    return None


def proc(tid: int, **kw: Any) -> ProcEntry:
    fields: dict[str, Any] = {
        "tid": tid,
        "pid": tid,
        "ptid": 1,
        "comm": f"comm{tid}",
        "exe": f"/bin/p{tid}",
        "exe_path": f"/usr/bin/p{tid}",
        "args": ["-x", "y z", ""],
        "cwd": "/home/u/",
        "fdlimit": 1024,
        "flags": 0,
        "uid": 1000,
        "gid": 100,
        "vtid": tid,
        "vpid": kw.get("pid", tid),
    }
    fields.update(kw)
    return ProcEntry(**fields)


FULL = proc(
    42,
    sid=7,
    vpgid=8,
    vmsize_kb=1,
    vmrss_kb=2,
    vmswap_kb=3,
    pfmajor=4,
    pfminor=5,
    env=["A=1", "B="],
    vtid=1,
    vpid=1,
    cgroups=["cpu=/a", "memory=/b"],
    root="/root",
    pidns_init_start_ts=99,
    tty=34816,
    loginuid=1000,
    exe_writable=True,
    cap_inheritable=1,
    cap_permitted=2,
    cap_effective=3,
    exe_upper_layer=True,
    exe_ino=11,
    exe_ino_ctime=12,
    exe_ino_mtime=13,
    exe_from_memfd=True,
    exe_lower_layer=True,
    pgid=77,
)

# What a block of each version carries (the rest keeps ProcEntry's defaults).
FIELDS_BY_VERSION = {
    2: ("vmsize_kb", "vmrss_kb", "vmswap_kb", "pfmajor", "pfminor"),
    3: ("env",),
    4: ("vtid", "vpid", "cgroups"),
    5: ("root",),
    6: ("sid",),
    7: ("exe_path",),
    8: ("vpgid",),
    9: (
        "pidns_init_start_ts",
        "tty",
        "loginuid",
        "exe_writable",
        "cap_inheritable",
        "cap_permitted",
        "cap_effective",
        "exe_upper_layer",
        "exe_ino",
        "exe_ino_ctime",
        "exe_ino_mtime",
        "exe_from_memfd",
        "exe_lower_layer",
        "pgid",
    ),
}


def expected_entry(version: int) -> ProcEntry:
    base = proc(42)
    base.exe_path = ""
    base.vtid = base.vpid = -1
    kept = {f for v, names in FIELDS_BY_VERSION.items() if v <= version for f in names}
    for name in kept:
        setattr(base, name, getattr(FULL, name))
    base.version = version
    return base


@pytest.mark.parametrize("version", range(1, 10))
def test_process_list_versions(version: int) -> None:
    w = ScapWriter().machine_info().proclist([FULL, proc(43, pid=42, ptid=1)], version)
    w.event(open_x(3, "/x"))
    procs, events = read_scap(w.bytes())
    assert procs[0] == expected_entry(version)
    assert (procs[1].tid, procs[1].pid, procs[1].comm) == (43, 42, "comm43")
    assert [e.num for e in events] == [1]


def test_process_list_v9_skips_fields_it_does_not_know() -> None:
    # A newer writer appends fields: the entry length says how far to skip.
    entry = proc_entry(FULL, 9) + b"\xaa" * 6
    entry = struct.pack("<I", len(entry)) + entry[4:]
    w = ScapWriter().raw_block(0x215, entry + proc_entry(proc(5), 9))
    w.event(open_x(3))
    procs, _ = read_scap(w.bytes())
    assert procs[0] == expected_entry(9)
    assert procs[1].tid == 5


def test_libs_before_0_10_entries() -> None:
    # Before libs 0.10 the v9 tail held only loginuid, exe_writable and capabilities (29 bytes).
    full = proc_entry(FULL, 9)
    head = full[4:]
    tail_start = len(head) - (8 + 4 + 4 + 1 + 24 + 1 + 24 + 2 + 8)
    old = head[:tail_start] + struct.pack("<IBQQQ", 1000, 1, 1, 2, 3)
    w = ScapWriter().raw_block(0x215, struct.pack("<I", len(old) + 4) + old)
    w.event(open_x(3))
    (entry,), _ = read_scap(w.bytes())
    assert (entry.pidns_init_start_ts, entry.tty, entry.loginuid, entry.cap_effective) == (0, 0, 1000, 3)


FDS = [
    FdEntry(5, 0, 11, 1, name="/dev/pts/0"),
    FdEntry(5, 3, 12, 16, name="/etc/passwd", open_flags=0x8001, dev=0x803),
    FdEntry(5, 4, 13, 3, sip="10.0.0.1", sport=40000, dip="10.0.0.2", dport=80, l4proto=6),
    FdEntry(5, 5, 14, 4, sip="2001:db8::1", sport=1, dip="::1", dport=443, l4proto=17),
    FdEntry(5, 6, 15, 5, sip="0.0.0.0", sport=22, l4proto=6),
    FdEntry(5, 7, 16, 6, sip="::", sport=8080, l4proto=6),
    FdEntry(5, 8, 17, 8, name="/run/x.sock", unix_source=0xFFFF8880, unix_dest=0xFFFF8890),
    FdEntry(5, 9, 18, 2, name="/home"),
    FdEntry(5, 10, 19, 7, name="pipe:[123]"),
]


@pytest.mark.parametrize("v2", [False, True])
def test_fd_lists(v2: bool) -> None:
    w = ScapWriter().proclist([proc(5)]).fdlist(5, FDS, v2=v2).fdlist(6, FDS[:1], v2=v2)
    w.raw_block(0x218, struct.pack("<Q", 7) + fd_entry(FdEntry(7, 1, 1, 99, name="x"), True))  # newer type
    with ScapReader(io.BytesIO(w.event(open_x(3)).bytes())) as r:
        expected = [dataclasses.replace(e, dev=e.dev if v2 else 0) for e in FDS]
        assert r.fds[: len(FDS)] == expected
        assert r.fds[len(FDS)] == dataclasses.replace(FDS[0], tid=6)
        assert (r.fds[-1].type, r.fds[-1].name) == (10, "unknown-type:[99]")


def test_fd_list_v2_entries_skip_fields_they_do_not_know() -> None:
    entry = fd_entry(FDS[1], True) + b"\x01\x02"
    entry = struct.pack("<I", len(entry)) + entry[4:]
    w = ScapWriter().raw_block(0x218, struct.pack("<Q", 5) + entry + fd_entry(FDS[0], True))
    with ScapReader(io.BytesIO(w.event(open_x(3)).bytes())) as r:
        assert r.fds == FDS[1:2] + FDS[:1]


@pytest.mark.parametrize("compress", [False, True])
def test_plain_and_gzip(compress: bool, tmp_path: Path) -> None:
    w = ScapWriter().proclist([proc(1)]).event(open_x(3, "/etc/x"), cpu=3)
    path = w.save(tmp_path / "c.scap", compress=compress)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if compress else b"\n\r")
    with ScapReader(path) as r:
        (ev,) = list(r.events())
        assert [p.tid for p in r.processes] == [1]
    assert (ev.num, ev.cpu, ev.name, ev.params()["name"]) == (1, 3, "open", "/etc/x")


@pytest.mark.parametrize("code", sorted(tbl.EVENTS))
def test_every_event_type_round_trips_through_a_capture(code: int) -> None:
    raw, expected = sample_event(code, ts=5, tid=6)
    large = len(raw) > 0xFFF0
    w = ScapWriter().proclist([proc(6)]).event(raw, cpu=1, flags=0, large=large).event(raw, large=large)
    with ScapReader(io.BytesIO(w.bytes()), convert=False) as r:
        events = list(r.events(include_dropped=True))
    assert [e.raw for e in events] == [raw, raw] == [e.stored for e in events]
    assert all((e.type, e.tid, e.ts, e.cpu) == (code, 6, 5, 1) for e in events[:1])
    assert events[0].params().to_dict() == expected
    verdict = sinsp_verdict(code, len(expected))
    assert (events[0].num is None) == (verdict is None)


def test_unknown_blocks_are_skipped() -> None:
    w = ScapWriter().raw_block(0x7777, b"whatever").proclist([proc(1)])
    w.event(open_x(3)).raw_block(0x8888, b"x" * 10).event(open_x(4))
    with ScapReader(io.BytesIO(w.bytes())) as r:
        nums = [(e.num, e.params().fd) for e in r.events()]
        assert r.skipped_blocks == [0x7777, 0x8888]
    assert nums == [(1, 3), (2, 4)]


def test_numbering_follows_the_converter() -> None:
    mprotect = next(c for c, n in tbl.SYSCALLS.items() if n == "mprotect")
    w = ScapWriter().proclist([proc(1)])
    w.event(build_event(CLOSE_E, [3]))  # managed enter, stored for the exit: dropped
    w.event(build_event(CLOSE_X, [0]))  # 1 of 2 params: converted, delivered
    w.event(build_event(OPEN_E, ["/a", 0, 0]))  # delivered to the parser, hidden from consumers
    w.event(build_event(OPEN_X, [3, "/a", 0, 0, 0, 0]))
    w.event(build_event(CODE["PPME_ITER_TASK_X"]))  # EF_UNUSED: dropped
    w.event(build_event(CODE["PPME_SYSCALL_CLONE_11_E"]))  # old enter, not managed: dropped
    w.event(build_event(CODE["PPME_GENERIC_X"], [mprotect, 10]), flags=1)  # state only: hidden
    w.event(struct.pack("<QQIHI", 0, 1, 26, tbl.PPM_EVENT_MAX + 5, 0), flags=0)  # newer than the schema
    w.event(build_event(OPEN_X, [5, "/b", 0, 0, 0, 0]))
    with ScapReader(io.BytesIO(w.bytes())) as r:
        seen = [(e.num, e.type_name, e.shown) for e in r.events(include_dropped=True)]
    assert seen == [
        (None, "close", False),
        (1, "close", True),
        (2, "open", False),
        (3, "open", True),
        (None, "NA", False),
        (None, "clone", False),
        (4, "mprotect", False),
        (5, "open", True),
    ]


def test_old_event_blocks_without_nparams() -> None:
    w = ScapWriter().proclist([proc(1)])
    w.event_v1(build_event(OPEN_X, [3, "/etc/passwd", 1, 0o644]))
    w.event_v1(build_event(CLOSE_X, [0, 3]), flags=0)
    no_params = next(c for c, e in tbl.EVENTS.items() if not e[3] and verdict(c, 0) == "PASS")
    w.event_v1(build_event(no_params, []))
    with ScapReader(io.BytesIO(w.bytes())) as r:
        events = list(r.events())
    assert [(e.num, e.name, e.nparams) for e in events] == [(1, "open", 6), (2, "close", 2), (3, events[2].name, 0)]
    assert events[2].type == no_params
    assert struct.unpack_from("<I", events[0].stored, 22) == (4,)  # as stored: 4 params
    assert events[0].params().to_dict() == {
        "fd": 3,
        "name": "/etc/passwd",
        "flags": 1,
        "mode": 0o644,
        "dev": None,
        "ino": None,
    }
    assert struct.unpack_from("<I", events[0].raw, 16)[0] == len(events[0].raw)


def test_concatenated_captures_go_on_numbering() -> None:
    a = ScapWriter().proclist([proc(1)]).event(open_x(3)).bytes()
    b = ScapWriter().proclist([proc(2)]).event(open_x(4)).bytes()
    with ScapReader(io.BytesIO(a + b)) as r:
        nums = [(e.num, e.params().fd) for e in r.events()]
        assert [p.tid for p in r.processes] == [1, 2]
    assert nums == [(1, 3), (2, 4)]


def test_large_event_blocks() -> None:
    payload = os.urandom(200_000)
    raw = build_event(PLUGINEVENT, [999, payload])
    w = ScapWriter().event(raw, large=True).event(raw, flags=0, large=True)
    _, events = read_scap(w.bytes())
    assert [e.params().event_data for e in events] == [payload, payload]
    with pytest.raises(ScapError, match="too large"):
        read_scap(ScapWriter().event(raw).bytes())


SHB = ScapWriter().bytes()
GOOD = ScapWriter().proclist([proc(1)]).event(open_x(3)).bytes()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"PK\3\4" + bytes(40), "not a scap file"),
        (block(0x0A0D0D0A, struct.pack("<IHHq", 0x4D3C2B1A, 1, 2, -1)), "invalid section header magic"),
        (block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 2, 0, -1)), "newer than this reader"),
        (block(0x0A0D0D0A, b"\0" * 4), "section header too short"),
        (SHB + b"\x04\x02\0\0", "truncated block header"),
        (SHB + struct.pack("<II", 0x204, 7), "invalid length 7"),
        (SHB + struct.pack("<II", 0x204, 400) + b"\0" * 20, "truncated"),
        (GOOD[:-1] + b"\x99", "trailer"),
        (SHB + block(0x211, b"\0" * 30), "process list v5 entry at 0"),
        (SHB + block(0x218, struct.pack("<QI", 5, 40) + b"\0" * 17), "fd list entry at 8"),
        (SHB + block(0x216, b"\0\0" + struct.pack("<QQIHI", 0, 0, 500, 3, 0)), "does not fit its block"),
        (SHB + block(0x204, b"\0\0" + struct.pack("<QQIHH", 0, 0, 24, 3, 9)), "match no parameter count"),
        (gzip.compress(GOOD)[:-12], "offset"),
        (gzip.compress(GOOD * 20)[:60] + b"\xff" * 8 + gzip.compress(GOOD * 20)[68:], "offset"),
    ],
)
def test_malformed_captures(data: bytes, message: str) -> None:
    with pytest.raises(ScapError, match=message):
        read_scap(data)


def test_random_corruption_raises_scap_or_param_errors_only() -> None:
    rng = random.Random(99)
    w = ScapWriter().machine_info().proclist([FULL, proc(2)], 9).proclist([FULL], 5)
    for code in (OPEN_X, EXECVE_X, CLONE_X, PLUGINEVENT):
        w.event(sample_event(code)[0]).event_v1(sample_event(code)[0])
    data = w.bytes()
    for _ in range(400):
        bad = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            bad[rng.randrange(len(bad))] = rng.randrange(256)
        if rng.random() < 0.3:
            bad = bad[: rng.randrange(len(bad))]
        try:
            _, events = read_scap(bytes(bad))
            for e in events:
                e.params().to_dict()
        except (ScapError, ParamError):
            pass


def convert(*events: bytes) -> tuple[list[tuple[int | None, int, dict[str, Any]]], list[str]]:
    w = ScapWriter()
    for raw in events:
        w.event(raw)
    with ScapReader(io.BytesIO(w.bytes())) as r:
        out = [(e.num, e.type, e.params().to_dict()) for e in r.events()]
        return out, r.errors


def test_converter_takes_parameters_from_the_enter_event() -> None:
    out, errors = convert(build_event(CLOSE_E, [7], tid=3), build_event(CLOSE_X, [0], tid=3))
    assert out == [(1, CLOSE_X, {"res": 0, "fd": 7})] and errors == []
    # Without its enter event the parameter takes the type's default (FROM_ENTER without fallback).
    out, _ = convert(build_event(CLOSE_X, [0], tid=3))
    assert out == [(1, CLOSE_X, {"res": 0, "fd": 0})]
    # An enter event of another thread is not used.
    out, _ = convert(build_event(CLOSE_E, [7], tid=4), build_event(CLOSE_X, [0], tid=3))
    assert out[0][2]["fd"] == 0


def test_converter_rebuilds_old_versions_as_the_newest() -> None:
    old = build_event(CODE["PPME_SYSCALL_EXECVE_8_X"], [0, "/bin/ls", ["ls", "-l"], 5, 5, 1, "/tmp", 1024], tid=5)
    out, errors = convert(old)
    ((num, code, params),) = out
    assert (num, code, errors) == (1, EXECVE_X, [])
    assert (params["exe"], params["args"], params["cwd"], params["fdlimit"]) == ("/bin/ls", ["ls", "-l"], "/tmp", 1024)
    assert params["comm"] is None  # added as empty
    assert params["uid"] is None or params["uid"] == 0xFFFFFFFF


def test_converter_errors_are_reported_and_the_event_skipped() -> None:
    # A kept enter event of another type: libscap fails the exit event.
    out, errors = convert(
        build_event(CODE["PPME_SYSCALL_READ_E"], [3, 10], tid=3),
        build_event(CLOSE_X, [0], tid=3),
        open_x(4, tid=3),
    )
    assert [(n, c) for n, c, _ in out] == [(1, OPEN_X)]
    assert len(errors) == 1 and "enter event kept for close (5) is of type 6" in errors[0]
    out, errors = convert(build_event(OPEN_X, [3, "/x"]))  # no rule for 2 of 6 params
    assert out == [] and "open (3) with 2 parameters: no conversion" in errors[0]


def test_every_old_event_version_converts_or_fails_cleanly() -> None:
    for code, nparams in tbl.CONVERSIONS:
        full = RawEvent.parse(sample_event(code)[0])
        raw = build_event(code, raw_params=full.params[:nparams], tid=9)
        with ScapReader(io.BytesIO(ScapWriter().event(raw).bytes())) as r:
            for e in r.events():
                assert sinsp_verdict(e.type, e.nparams) == (e.type, e.nparams), (code, nparams)
                e.params().to_dict()


# -- thread state --------------------------------------------------------------------


def clone_x(res: int, tid: int, pid: int, ptid: int, comm: str, flags: int = 0, **kw: Any) -> bytes:
    values = {
        "res": res,
        "exe": kw.get("exe", f"/bin/{comm}"),
        "args": kw.get("args", ["a"]),
        "tid": tid,
        "pid": pid,
        "ptid": ptid,
        "cwd": "/ignored",
        "fdlimit": 1024,
        "comm": comm,
        "cgroups": kw.get("cgroups", ["cpu=/x"]),
        "flags": flags,
        "uid": kw.get("uid", 1000),
        "gid": kw.get("gid", 100),
        "vtid": tid,
        "vpid": pid,
    }
    return build_event(CLONE_X, values, tid=kw.get("evt_tid", tid), ts=kw.get("ts", 1))


def run(w: ScapWriter) -> list[tuple[int | None, Any]]:
    with ScapReader(io.BytesIO(w.bytes())) as r:
        table = ThreadTable(r.processes)
        out = []
        for e in r.events():
            t = table.process(e)
            out.append((e.num, None if t is None else (t.tid, t.pid, t.ptid, t.comm, table.cwd(t))))
    return out


def test_threads_follow_clone_execve_and_exit() -> None:
    w = ScapWriter().proclist([proc(10, ptid=1, comm="bash", cwd="/home/u")])
    w.event(clone_x(11, 10, 10, 1, "bash"))  # parent side: creates child 11
    w.event(clone_x(0, 11, 11, 10, "bash"))  # child side: child already there (recent clone)
    execve = {"res": 0, "exe": "/usr/bin/curl", "args": ["-6", "x"], "tid": 11, "pid": 11, "ptid": 10}
    execve |= {"cwd": "/", "comm": "curl", "env": ["A=1"], "cgroups": ["cpu=/y"], "uid": 0, "gid": 0}
    w.event(build_event(EXECVE_X, execve, tid=11))
    w.event(open_x(3, tid=11))
    w.event(build_event(PROCEXIT, [0, 0, 9, 0], tid=11))
    w.event(open_x(4, tid=11))  # after the exit: an unknown thread
    w.event(open_x(5, tid=10))
    assert run(w) == [
        (1, (10, 10, 1, "bash", "/home/u/")),
        (2, (11, 11, 10, "bash", "/home/u/")),
        (3, (11, 11, 10, "curl", "/home/u/")),
        (4, (11, 11, 10, "curl", "/home/u/")),
        (5, (11, 11, 10, "curl", "/home/u/")),
        (6, (11, -1, -1, "<NA>", "./")),
        (7, (10, 10, 1, "bash", "/home/u/")),
    ]


def test_threads_of_a_group_and_reparenting() -> None:
    w = ScapWriter().proclist([proc(1, ptid=0, comm="init"), proc(20, ptid=1, comm="srv")])
    w.event(clone_x(21, 20, 20, 1, "srv", flags=1 << 13))  # a thread of 20
    w.event(clone_x(30, 20, 20, 1, "srv"))  # a child process
    w.event(build_event(PROCEXIT, [0, 0, 9, 0, 1], tid=20))  # 20 exits, reaper 1
    w.event(open_x(3, tid=21))
    w.event(open_x(3, tid=30))
    assert run(w) == [
        (1, (20, 20, 1, "srv", "/home/u/")),
        (2, (20, 20, 1, "srv", "/home/u/")),
        (3, (20, 20, 1, "srv", "/home/u/")),
        (4, (21, 20, 1, "srv", "/home/u/")),  # the process stays (dead) while a thread lives
        (5, (30, 30, 1, "srv", "/home/u/")),
    ]


def test_events_without_threads() -> None:
    w = ScapWriter().proclist([proc(1)])
    w.event(build_event(PLUGINEVENT, [999, b"x"], tid=1))
    w.event(build_event(CODE["PPME_PROCINFO_E"], [1, 2], tid=77))
    w.event(build_event(CODE["PPME_PROCINFO_E"], [1, 2], tid=1))
    assert [(n, t and t[0]) for n, t in run(w)] == [(1, None), (2, None), (3, 1)]


# -- agreement with libsinsp ---------------------------------------------------------

SINSP_FIELDS = [
    "evt.num",
    "evt.type",
    "thread.tid",
    "proc.name",
    "proc.pid",
    "proc.ppid",
    "proc.exe",
    "proc.args",
    "proc.cwd",
    "thread.vtid",
    "proc.vpid",
    "user.uid",
]


def sinsp_example() -> Path:
    env = os.environ.get("SINSP_EXAMPLE")
    if env:
        if not Path(env).is_file():
            pytest.skip(f"$SINSP_EXAMPLE={env} is not a file")
        return Path(env)
    shared = shared_dir()
    if shared is None or not (shared / "realhost" / "sinsp-example").exists():
        pytest.skip("no sinsp-example: neither $SINSP_EXAMPLE nor <repo>/../shared/realhost/sinsp-example")
    return shared / "realhost" / "sinsp-example"


def captures() -> list[Path]:
    shared = shared_dir()
    return sorted((shared / "captures").glob("*.scap")) if shared else []


def ours(path: Path) -> dict[int, dict[str, Any]]:
    """The same fields from our reader and thread table, for the events libsinsp shows."""
    out = {}
    with ScapReader(path) as r:
        table = ThreadTable(r.processes)
        for e in r.events():
            t = table.process(e)
            if not e.shown:
                continue
            row: dict[str, Any] = dict.fromkeys(SINSP_FIELDS)
            row |= {"evt.num": e.num, "evt.type": e.type_name, "thread.tid": e.tid}
            if t is not None:
                parent = table.parent_process(t)
                row |= {"proc.name": t.comm, "proc.pid": t.pid, "proc.exe": t.exe, "proc.args": " ".join(t.args)}
                row |= {"proc.cwd": table.cwd(t), "user.uid": t.uid}
                # libsinsp shows no value for an unknown (-1) virtual id or parent.
                row |= {"thread.vtid": None if t.vtid == -1 else t.vtid, "proc.vpid": None if t.vpid == -1 else t.vpid}
                row["proc.ppid"] = parent.pid if parent is not None and parent.pid >= -1 else None
            out[e.num or 0] = row
    return out


def sinsp_rows(tool: Path, capture: Path) -> dict[int, dict[str, Any]]:
    fmt = "*" + " ".join(f"%{f}" for f in SINSP_FIELDS)
    # -a: every thread's events, not only main threads'; -j: nulls stay visible.
    run_ = subprocess.run([str(tool), "-a", "-j", "-s", str(capture), "-o", fmt], capture_output=True, text=True)
    if run_.returncode != 0 and "error while loading shared libraries" in run_.stderr:
        pytest.skip(f"sinsp-example cannot start (run realhost/install-runtime): {run_.stderr.strip()}")
    assert run_.returncode == 0, run_.stderr
    theirs = {}
    for line in run_.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            theirs[row["evt.num"]] = {f: row.get(f) for f in SINSP_FIELDS}
    assert theirs, run_.stdout[-2000:]
    return theirs


def assert_agrees(tool: Path, capture: Path) -> None:
    theirs, mine = sinsp_rows(tool, capture), ours(capture)
    assert sorted(mine) == sorted(theirs)
    mismatches = [
        (n, f, theirs[n][f], mine[n][f]) for n in sorted(theirs) for f in SINSP_FIELDS if theirs[n][f] != mine[n][f]
    ]
    assert mismatches == []


@pytest.mark.parametrize("capture", captures() or [None], ids=lambda p: p.name if p else "none")
def test_agrees_with_sinsp_example(capture: Path | None) -> None:
    tool = sinsp_example()
    if capture is None:
        pytest.skip("no captures in <repo>/../shared/captures")
    assert_agrees(tool, capture)


def execve_x(tid: int, pid: int, ptid: int, exe: str, comm: str, ts: int, res: int = 0) -> bytes:
    values = {"res": res, "exe": exe, "args": ["arg"], "tid": tid, "pid": pid, "ptid": ptid, "cwd": "/"}
    values |= {"fdlimit": 1024, "comm": comm, "env": ["E=1"], "cgroups": ["cpu=/z"], "uid": 5, "gid": 6}
    return build_event(EXECVE_X, values, tid=tid, ts=ts)


def test_thread_scenarios_agree_with_sinsp_example(tmp_path: Path) -> None:
    """Our writer's capture, read by libsinsp and by us: the same threads behind every event."""
    tool = sinsp_example()
    thread, vfork, in_pidns = 1 << 13, 1 << 27, 1 << 29
    w = ScapWriter().proclist(
        [
            proc(1, ptid=0, comm="init", cwd="/"),
            proc(10, ptid=1, comm="bash", cwd="/home/u"),
            proc(20, ptid=1, comm="srv", cwd="/srv"),
            proc(21, pid=20, ptid=1, comm="srv-worker", cwd="/ignored"),
        ]
    )
    for raw in [
        clone_x(11, 10, 10, 1, "bash", ts=1),  # parent side first
        clone_x(0, 11, 11, 10, "bash", ts=2),  # then the child's
        clone_x(0, 12, 12, 10, "bash", ts=3),  # child side first (inverted)
        clone_x(12, 10, 10, 1, "bash", ts=4),
        clone_x(22, 20, 20, 1, "srv", flags=thread, ts=5),  # a thread
        clone_x(-11, 20, 20, 1, "srv", ts=6),  # a failed clone
        clone_x(13, 10, 10, 1, "bash", flags=vfork, ts=7),  # vfork: only the child side adds
        clone_x(0, 13, 13, 10, "bash", flags=vfork, ts=8),
        clone_x(14, 10, 10, 1, "bash", flags=in_pidns, ts=9),  # child in a pid namespace
        execve_x(11, 11, 10, "/usr/bin/curl", "curl", 10),
        execve_x(22, 20, 1, "/usr/bin/new", "new", 11),  # from a thread: the other threads go
        open_x(1, tid=21),
        open_x(1, tid=22),
        execve_x(12, 12, 10, "/bin/false", "false", 12, res=-2),  # failed: nothing changes
        open_x(1, tid=12),
        clone_x(30, 20, 20, 1, "srv", ts=13),
        build_event(PROCEXIT, [0, 0, 9, 0, 1], tid=20, ts=14),  # main thread exits, reaper 1
        open_x(1, tid=30),
        open_x(1, tid=22),  # the process stays while its thread lives
        build_event(PROCEXIT, [0, 0, 9, 0], tid=11, ts=15),
        open_x(1, tid=11),
        open_x(1, tid=777),  # never seen
        clone_x(0, 40, 40, 888, "orphan", ts=16),  # unknown parent
        open_x(1, tid=40),
    ]:
        w.event(raw)
    assert_agrees(tool, w.save(tmp_path / "threads.scap"))


def hexdump(data: bytes) -> str:
    """Bytes as sinsp-example -r prints them: printable runs quoted, other bytes in hex."""
    out, in_text = ["["], False
    for i, c in enumerate(data):
        if 32 <= c < 127:
            if not in_text:
                out.append(' "' if i else '"')
                in_text = True
            out.append(chr(c))
        else:
            out.append('" ' if in_text else " " if i else "")
            in_text = False
            out.append(f"{c:02x}")
    return "".join([*out, '"' if in_text else "", "]"])


STRING_TYPES = (tbl.PT_CHARBUF, tbl.PT_FSPATH, tbl.PT_FSRELPATH)


@pytest.mark.parametrize("capture", captures() or [None], ids=lambda p: p.name if p else "none")
def test_events_are_the_bytes_libsinsp_sees(capture: Path | None) -> None:
    """Every shown event, converted, has libsinsp's type, thread and parameter bytes (sinsp-example -r)."""
    tool = sinsp_example()
    if capture is None:
        pytest.skip("no captures in <repo>/../shared/captures")
    run_ = subprocess.run([str(tool), "-a", "-r", "-s", str(capture)], capture_output=True)
    if run_.returncode != 0 and b"error while loading shared libraries" in run_.stderr:
        pytest.skip(f"sinsp-example cannot start: {run_.stderr.decode(errors='replace').strip()}")
    assert run_.returncode == 0, run_.stderr
    theirs = [line for line in run_.stdout.decode("latin-1").splitlines() if line.startswith("ts=")]
    with ScapReader(capture) as r:
        shown = [e for e in r.events() if e.shown]
        assert r.errors == []
    assert len(shown) == len(theirs)
    mismatches = []
    for line, e in zip(theirs, shown, strict=True):
        ev = RawEvent.parse(e.raw)
        layout = tbl.EVENTS[ev.type][3]
        dumped = []
        for i, data in enumerate(ev.params):
            # libsinsp shows an empty or "(NULL)" string as "<NA>".
            if layout[i][1] in STRING_TYPES and data in (b"", b"(NULL)\0"):
                data = b"<NA>\0"
            dumped.append(f" {i}:{layout[i][0]}={hexdump(data)}")
        head = f" tid={e.tid} type={'>' if e.is_enter else '<'}{e.type_name} "
        tail = f"nparams={len(ev.params)}" + "".join(dumped)
        if head not in line or line[line.index("nparams=") :] != tail:
            mismatches.append((e.num, line[:300], (head + tail)[:300]))
    assert mismatches == []
