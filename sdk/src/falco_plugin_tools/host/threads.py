"""A minimal thread table kept the way libsinsp keeps its own, for captures.

Filled from a capture's process list, then kept current from the events that
change process state (clone/fork/vfork/clone3 exits, execve/execveat exits,
procexit), following libsinsp's parser (parsers.cpp, thread_manager.cpp) for
the fields kept here: tid, pid, ptid, comm, exe, exe_path, args, cwd, env,
cgroups, uid, gid, vtid, vpid. :meth:`ThreadTable.process` returns the
thread libsinsp attaches to the event (what ``proc.name``, ``proc.pid``...
read), or None where it attaches none.

Simplified on purpose: no fd tables, users or containers; a process whose
main thread exits stays in the table (dead) while other threads of it live,
as in libsinsp; on a thread's removal its children are given to the reaper the
procexit event names, else to another live thread of its group, else to the
nearest ancestor in the table that is an init (pid 1 / vpid 1), else keep
their parent id (libsinsp's userspace reaper search does the same in the
common cases, and more in others).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import overload

from falco_plugin._internal import syscall_table as tbl
from falco_plugin.params import ParamError, Params, decode_params
from falco_plugin_tools.host.scap import ProcEntry, ScapEvent, sinsp_verdict

__all__ = ["ThreadInfo", "ThreadTable"]

_CODE = {name: code for code, name in tbl.CODES.items()}
CLONE_EXITS = frozenset(_CODE[n] for n in ("PPME_SYSCALL_CLONE_20_X", "PPME_SYSCALL_CLONE3_X"))
FORK_EXITS = frozenset(_CODE[n] for n in ("PPME_SYSCALL_FORK_20_X", "PPME_SYSCALL_VFORK_20_X"))
VFORK_X = _CODE["PPME_SYSCALL_VFORK_20_X"]
EXECVE_EXITS = frozenset(_CODE[n] for n in ("PPME_SYSCALL_EXECVE_19_X", "PPME_SYSCALL_EXECVEAT_X"))
PROCEXIT = _CODE["PPME_PROCEXIT_1_E"]
SCHEDSWITCH = _CODE["PPME_SCHEDSWITCH_6_E"]
PROCINFO = _CODE["PPME_PROCINFO_E"]
# Meta events libsinsp attaches no thread to.
_NO_THREAD = frozenset(
    _CODE[n]
    for n in (
        "PPME_CONTAINER_JSON_2_E",
        "PPME_USER_ADDED_E",
        "PPME_USER_DELETED_E",
        "PPME_GROUP_ADDED_E",
        "PPME_GROUP_DELETED_E",
        "PPME_PLUGINEVENT_E",
        "PPME_ASYNCEVENT_E",
    )
)
EF_SKIPPARSERESET = 1 << 8

PPM_CL_CLONE_NEWPID = 1 << 6
PPM_CL_CLONE_PARENT = 1 << 8
PPM_CL_CLONE_THREAD = 1 << 13
PPM_CL_CLONE_INVERTED = 1 << 16
PPM_CL_CLONE_VFORK = 1 << 27
PPM_CL_CHILD_IN_PIDNS = 1 << 29
# A child whose clone exit comes again this soon is the same child (libsinsp's CLONE_STALE_TIME_NS).
CLONE_STALE_TIME_NS = 2_000_000_000


@dataclass
class ThreadInfo:
    tid: int
    pid: int = -1
    ptid: int = -1
    comm: str = ""
    exe: str = ""
    exe_path: str = ""
    args: list[str] = field(default_factory=list)
    cwd: str = ""
    env: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    uid: int = 0xFFFFFFFF
    gid: int = 0xFFFFFFFF
    vtid: int = -1
    vpid: int = -1
    flags: int = 0
    clone_ts: int = 0
    dead: bool = False
    reaper_tid: int = -1

    @property
    def is_invalid(self) -> bool:
        """libsinsp: a thread whose identity is not known (made up for an unknown tid)."""
        return self.tid < 0 or self.pid < 0 or self.ptid < 0

    @property
    def is_main_thread(self) -> bool:
        return self.tid == self.pid

    @classmethod
    def from_proc(cls, e: ProcEntry) -> ThreadInfo:
        main = e.tid == e.pid
        # libsinsp keeps cwd and env on the main thread only; a cwd always ends in "/".
        return cls(
            tid=e.tid,
            pid=e.pid,
            ptid=e.ptid,
            comm=e.comm,
            exe=e.exe,
            exe_path=e.exe_path,
            args=list(e.args),
            cwd=_dir(e.cwd) if main else "",
            env=list(e.env) if main else [],
            cgroups=list(e.cgroups),
            uid=e.uid,
            gid=e.gid,
            vtid=e.vtid,
            vpid=e.vpid,
            flags=e.flags,
        )


def _fake(tid: int) -> ThreadInfo:
    # What libsinsp adds for a tid it cannot find (and, reading a capture, cannot look up in /proc).
    return ThreadInfo(tid=tid, comm="<NA>", exe="<NA>")


class ThreadTable:
    """Threads by tid; feed it every numbered event of a capture in order with :meth:`process`."""

    def __init__(self, processes: Iterable[ProcEntry] = ()) -> None:
        self.threads: dict[int, ThreadInfo] = {}
        self._remove_next: int | None = None
        self._recently_exited: dict[int, int] = {}
        self.removed: list[int] = []
        """Tids removed from :attr:`threads` since the caller last cleared this list (a host table follows)."""
        for e in processes:
            self.threads[e.tid] = ThreadInfo.from_proc(e)

    def get(self, tid: int) -> ThreadInfo | None:
        return self.threads.get(tid)

    def main_thread(self, t: ThreadInfo) -> ThreadInfo | None:
        """The thread's process (its thread-group leader), if the table has it."""
        if t.is_main_thread:
            return t
        if t.is_invalid:
            return None
        main = self.threads.get(t.pid)
        return main if main is not None and main.is_main_thread else None

    def parent_process(self, t: ThreadInfo) -> ThreadInfo | None:
        """The process that started the thread's process (libsinsp's ``proc.ppid`` is its pid)."""
        main = self.main_thread(t)
        parent = self.threads.get(main.ptid) if main is not None else None
        return self.main_thread(parent) if parent is not None else None

    def cwd(self, t: ThreadInfo) -> str:
        """The thread's working directory: its main thread's, as libsinsp's ``proc.cwd`` says."""
        main = self.main_thread(t)
        return main.cwd if main is not None else "./"

    def _get_or_fake(self, tid: int) -> ThreadInfo:
        t = self.threads.get(tid)
        if t is None:
            t = self.threads[tid] = _fake(tid)
        return t

    def process(self, ev: ScapEvent) -> ThreadInfo | None:
        """Update the table from one numbered event; the thread libsinsp attaches to it."""
        if self._remove_next is not None:
            # libsinsp removes a thread only when the event after its procexit comes.
            self._remove(self._remove_next)
            self._remove_next = None
        verdict = sinsp_verdict(ev.type, ev.nparams)
        if verdict is None:
            return None
        code = verdict[0]
        flags = tbl.EVENTS[code][2]
        tid = ev.tid
        if flags & EF_SKIPPARSERESET:
            return self.threads.get(tid) if code == PROCINFO else None
        if code in _NO_THREAD:
            return None
        finds_only = code in CLONE_EXITS or code in FORK_EXITS or code in (SCHEDSWITCH, PROCEXIT)
        tinfo = self.threads.get(tid) if finds_only else self._get_or_fake(tid)
        try:
            p = decode_params(ev.raw)
            if code in CLONE_EXITS or code in FORK_EXITS:
                return self._clone_exit(ev, code, p, tinfo)
            if code in EXECVE_EXITS:
                self._execve_exit(p, tinfo)
            elif code == PROCEXIT and tinfo is not None:
                tinfo.dead = True
                self._remove_next = tid
                reaper = _int(p, "reaper_tid")
                if reaper is not None:
                    tinfo.reaper_tid = reaper
        except ParamError:
            pass  # libsinsp skips state it cannot read, the event still has its thread
        return tinfo

    # -- clone -----------------------------------------------------------------------
    def _clone_exit(self, ev: ScapEvent, code: int, p: Params, tinfo: ThreadInfo | None) -> ThreadInfo | None:
        res = _int(p, "res")
        if res is None or res < 0:
            return tinfo
        if res == 0:
            return self._clone_child(ev, p, tinfo)
        return self._clone_caller(ev, code, p, res)

    def _clone_caller(self, ev: ScapEvent, code: int, p: Params, child_tid: int) -> ThreadInfo:
        caller = self._get_or_fake(ev.tid)
        valid_caller = True
        if caller.is_invalid:
            valid_caller = False
            caller.pid = _int(p, "pid", -1)
            caller.ptid = _int(p, "ptid", -1)
            vpid = _int(p, "vpid")
            if vpid is not None:
                caller.vtid, caller.vpid = _int(p, "vtid", -1), vpid
            else:
                caller.vtid, caller.vpid = ev.tid, -1
        flags = _int(p, "flags", 0)
        if flags & (PPM_CL_CHILD_IN_PIDNS | PPM_CL_CLONE_NEWPID | PPM_CL_CLONE_PARENT) or ev.tid != caller.vtid:
            return caller
        if flags & PPM_CL_CLONE_VFORK or code == VFORK_X:
            return caller
        exited_parent = self._recently_exited.get(child_tid)
        if exited_parent is not None and exited_parent in (ev.tid, caller.pid):
            return caller
        existing = self.threads.get(child_tid)
        if existing is not None:
            if existing.flags & PPM_CL_CLONE_INVERTED:
                return caller
            self._remove(child_tid)
        child = ThreadInfo(tid=child_tid, flags=flags)
        if not flags & PPM_CL_CLONE_THREAD:
            if valid_caller:
                child.cwd, child.env = self.cwd(caller), list(caller.env)
            child.pid, child.ptid = child_tid, caller.tid
        else:
            child.pid, child.ptid = caller.pid, caller.ptid
        child.vtid, child.vpid = child.tid, child.pid
        self._fill_from_clone(child, p)
        child.clone_ts = ev.ts
        if valid_caller:
            child.exe_path = caller.exe_path
        else:
            caller.exe, caller.comm, caller.args = child.exe, child.comm, list(child.args)
        self.threads[child_tid] = child
        return caller

    def _clone_child(self, ev: ScapEvent, p: Params, tinfo: ThreadInfo | None) -> ThreadInfo | None:
        if tinfo is not None and tinfo.clone_ts != 0:
            if ev.ts - tinfo.clone_ts < CLONE_STALE_TIME_NS:
                return tinfo
            self._remove(ev.tid)
        child = ThreadInfo(tid=ev.tid, pid=_int(p, "pid", -1), ptid=_int(p, "ptid", -1))
        vpid = _int(p, "vpid")
        if vpid is not None:
            child.vtid, child.vpid = _int(p, "vtid", -1), vpid
        else:
            child.vtid, child.vpid = child.tid, -1
        child.flags = _int(p, "flags", 0) | PPM_CL_CLONE_INVERTED
        leader = not child.flags & PPM_CL_CLONE_THREAD
        lookup = self._get_or_fake(child.ptid if leader else child.pid)
        valid_lookup = not lookup.is_invalid
        if not valid_lookup and not leader:
            lookup.pid, lookup.ptid, lookup.vpid = child.pid, child.ptid, child.vpid
            lookup.vtid = lookup.vpid
        self._fill_from_clone(child, p)
        if valid_lookup:
            child.exe_path = lookup.exe_path
            if leader:
                child.cwd, child.env = self.cwd(lookup), list(lookup.env)
        elif not leader:
            lookup.exe, lookup.comm, lookup.args = child.exe, child.comm, list(child.args)
        child.clone_ts = ev.ts
        self.threads[ev.tid] = child
        return child

    @staticmethod
    def _fill_from_clone(child: ThreadInfo, p: Params) -> None:
        child.exe = _str(p, "exe")
        child.args = _list(p, "args")
        comm = _opt_str(p, "comm")
        child.comm = comm if comm is not None else child.exe
        child.uid = _int(p, "uid", 0) & 0xFFFFFFFF
        child.gid = _int(p, "gid", 0) & 0xFFFFFFFF
        cgroups = _list(p, "cgroups")
        if cgroups:
            child.cgroups = list(cgroups)

    # -- execve ----------------------------------------------------------------------
    def _execve_exit(self, p: Params, tinfo: ThreadInfo | None) -> None:
        res = _int(p, "res")
        if tinfo is None or res is None or res < 0:
            return
        tinfo.dead = False
        tinfo.exe = _str(p, "exe")
        comm = _opt_str(p, "comm")
        tinfo.comm = comm if comm is not None else tinfo.exe
        tinfo.args = _list(p, "args")
        tinfo.pid = _int(p, "pid", -1)
        if tinfo.is_invalid:
            tinfo.ptid = _int(p, "ptid", -1)
            if not tinfo.flags & PPM_CL_CHILD_IN_PIDNS:
                tinfo.vtid, tinfo.vpid = tinfo.tid, tinfo.pid
        env = _list(p, "env")
        if env:
            tinfo.env = list(env)
        cgroups = _list(p, "cgroups")
        if cgroups:
            tinfo.cgroups = list(cgroups)
        exe_path = _opt_str(p, "trusted_exepath")
        if exe_path is not None:
            tinfo.exe_path = exe_path
        uid = _int(p, "uid")
        if uid is not None:
            tinfo.uid = uid
        gid = _int(p, "gid")
        if gid is not None:
            tinfo.gid = gid
        inverted = tinfo.flags & PPM_CL_CLONE_INVERTED
        tinfo.flags = inverted
        # Other threads of the group die with the exec (the kernel leaves only the caller).
        for other in [t for t in self.threads.values() if t.pid == tinfo.pid and t.tid not in (tinfo.tid, t.pid)]:
            self._remove(other.tid)

    # -- removal ---------------------------------------------------------------------
    def _remove(self, tid: int) -> None:
        gone = self.threads.get(tid)
        if gone is None:
            return
        self._recently_exited[tid] = gone.ptid
        if len(self._recently_exited) > _RECENT_EXITS:  # only a clone racing the exit looks here: keep it bounded
            del self._recently_exited[next(iter(self._recently_exited))]
        if gone.is_invalid:
            del self.threads[tid]
            self.removed.append(tid)
            return
        gone.dead = True
        children = [t for t in self.threads.values() if t.ptid == tid and t is not gone]
        reaper = self._reaper(gone) if children else None
        if reaper is not None:
            for c in children:
                c.ptid = reaper
        # A process stays (dead) while other threads of it live: they read its cwd and env.
        group = [t for t in self.threads.values() if t.pid == gone.pid and not t.is_invalid]
        if not any(not t.dead for t in group) and self.threads.pop(gone.pid, None) is not None:
            self.removed.append(gone.pid)
        if not gone.is_main_thread and self.threads.pop(tid, None) is not None:
            self.removed.append(tid)

    def _reaper(self, gone: ThreadInfo) -> int | None:
        if gone.reaper_tid > 0:
            r = self.threads.get(gone.reaper_tid)
            if r is not None and not r.is_invalid:
                return r.tid
        for t in self.threads.values():
            if t.pid == gone.pid and not t.dead and t is not gone:
                return t.tid
        seen = {gone.tid}
        parent = self.threads.get(gone.ptid)
        while parent is not None and parent.tid not in seen:
            seen.add(parent.tid)
            if parent.pid == 1 or parent.vpid == 1:
                return parent.tid
            parent = self.threads.get(parent.ptid)
        return None


_RECENT_EXITS = 4096


def _dir(path: str) -> str:
    return path if path.endswith("/") else path + "/"


def _opt(p: Params, name: str) -> object:
    return p[name] if name in p else None


@overload
def _int(p: Params, name: str) -> int | None: ...
@overload
def _int(p: Params, name: str, default: int) -> int: ...
def _int(p: Params, name: str, default: int | None = None) -> int | None:
    v = _opt(p, name)
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def _opt_str(p: Params, name: str) -> str | None:
    v = _opt(p, name)
    return v if isinstance(v, str) else None


def _str(p: Params, name: str) -> str:
    return _opt_str(p, name) or ""


def _list(p: Params, name: str) -> list[str]:
    v = _opt(p, name)
    return list(v) if isinstance(v, list) else []
