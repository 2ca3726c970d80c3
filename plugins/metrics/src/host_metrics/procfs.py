"""Reading host resource figures from a /proc tree: load, CPU, memory, PSI, file handles, processes.

Everything the plugin samples is read here, with no Falco in sight, so that
it can be tested on a fake /proc root. :class:`ProcReader` reads one sample
at a time and keeps what deltas need (CPU times, per-process CPU ticks)
between samples.

Values are whole numbers, because Falco plugin fields have no fractional
type: percentages are rounded to the nearest whole percent, and load
averages are scaled by 100 (a load of 1.50 reads 150). A file that is
missing, unreadable or malformed leaves its values out of the sample, adds
one to :attr:`Sample.failures` and is reported through ``warn`` (once per
distinct problem, so that a kernel without some file does not fill the log
at every interval); it never raises. A kernel without PSI (no
``pressure/`` directory: Linux < 4.20, or PSI disabled) is not a failure.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CPU_MODES", "PSI_RESOURCES", "VALUES", "ProcReader", "Sample", "TopEntry"]

CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
"""The /proc/stat ``cpu`` columns summed into the total (guest time is already inside ``user``)."""
PSI_RESOURCES = {"cpu": "cpu", "memory": "memory", "io": "io"}
"""The files of /proc/pressure, and the names their values go by (``mem``, as in ``mem.used_pct``)."""
_PSI_AVERAGES = ("avg10", "avg60", "avg300")
_CLEARS_IDLE = {"idle", "iowait"}  # what "usage" leaves out


def _psi_values() -> dict[str, str]:
    out = {}
    for file, res in PSI_RESOURCES.items():
        for kind, who in (("some", "some tasks"), ("full", "all non-idle tasks")):
            for avg in _PSI_AVERAGES:
                out[f"psi.{res}.{kind}_{avg}"] = (
                    f"Share of time {who} stalled on {file}, {avg[3:]} s average (whole percent; PSI kernels only)"
                )
            out[f"psi.{res}.{kind}_total_us"] = f"Total time {who} stalled on {file} since boot (microseconds)"
    return out


VALUES: dict[str, str] = {
    "load1": "1-minute load average x 100 (1.50 reads 150)",
    "load5": "5-minute load average x 100",
    "load15": "15-minute load average x 100",
    "load1_per_cpu_pct": "1-minute load average per CPU, in percent (100: one runnable task per CPU)",
    "cpu.count": "CPUs in /proc/stat",
    "cpu.usage_pct": "CPU time not idle or waiting for I/O since the previous sample, all CPUs (percent)",
    **{f"cpu.{m}_pct": f"CPU time in {m} mode since the previous sample, all CPUs (percent)" for m in CPU_MODES},
    "mem.total_bytes": "MemTotal",
    "mem.available_bytes": "MemAvailable: memory available to new work without swapping",
    "mem.used_bytes": "MemTotal - MemAvailable",
    "mem.used_pct": "Memory in use (MemTotal - MemAvailable) as a percentage of MemTotal",
    "swap.total_bytes": "SwapTotal",
    "swap.free_bytes": "SwapFree",
    "swap.used_bytes": "SwapTotal - SwapFree",
    "swap.used_pct": "Swap in use as a percentage of SwapTotal (no value without swap)",
    **_psi_values(),
    "files.allocated": "Open file handles (allocated minus unused, /proc/sys/fs/file-nr)",
    "files.max": "Most file handles the kernel allows (fs.file-max)",
    "files.used_pct": "Open file handles as a percentage of the maximum",
    "procs.count": "Processes (numeric entries of /proc)",
    "procs.running": "Tasks runnable now (procs_running of /proc/stat)",
    "procs.blocked": "Tasks blocked on I/O now (procs_blocked of /proc/stat)",
    "threads.count": "Threads on the host (the total of the 4th column of /proc/loadavg)",
}
"""Every value a sample may hold, by key, with its description (the plugin's fields are ``metrics.<key>``)."""


@dataclass(frozen=True)
class TopEntry:
    """One process of a top-N list."""

    pid: int
    name: str
    value: int
    """RSS in bytes, or CPU in whole percent of one CPU (over 100 for a busy multi-threaded process)."""


@dataclass
class Sample:
    """What one read of /proc gave."""

    values: dict[str, int] = field(default_factory=dict)
    """The values that could be read, by key of :data:`VALUES`."""
    top_rss: list[TopEntry] = field(default_factory=list)
    top_cpu: list[TopEntry] = field(default_factory=list)
    failures: int = 0
    """Files that could not be read or parsed in this sample."""

    def to_json(self) -> dict[str, object]:
        """The JSON form carried by the async event (the top lists as ``[pid, name, value]`` triples)."""
        out: dict[str, object] = dict(self.values)
        out["top.rss"] = [[e.pid, e.name, e.value] for e in self.top_rss]
        out["top.cpu"] = [[e.pid, e.name, e.value] for e in self.top_cpu]
        return out


def pct(part: float, whole: float) -> int | None:
    """``part`` as a whole percentage of ``whole`` (rounded half up), None when ``whole`` is not positive."""
    return int(part * 100 / whole + 0.5) if whole > 0 else None


class MalformedError(ValueError):
    """A file's content is not what the kernel writes."""


class ProcReader:
    """Reads samples from the /proc tree at ``root``; not thread-safe (one sampling worker)."""

    def __init__(self, root: str | Path, *, top_n: int = 0, warn: Callable[[str], None] = lambda _: None) -> None:
        self.root = Path(root)
        self.top_n = top_n
        self._warn = warn
        self._warned: set[str] = set()
        self._cpu: tuple[int, ...] | None = None
        """The previous sample's /proc/stat ``cpu`` columns."""
        self._ticks: dict[int, int] = {}
        """The previous sample's utime + stime per pid."""
        self._page_size = os.sysconf("SC_PAGE_SIZE")

    # -- one sample ------------------------------------------------------------------

    def sample(self) -> Sample:
        """Read everything once; never raises for what /proc holds."""
        s = Sample()
        self._read(s, "loadavg", self._loadavg)
        cpu_delta = self._read(s, "stat", self._stat)
        self._read(s, "meminfo", self._meminfo)
        self._read(s, "sys/fs/file-nr", self._file_nr)
        if (self.root / "pressure").is_dir():
            for file, res in PSI_RESOURCES.items():
                self._read(s, f"pressure/{file}", functools.partial(self._psi, res=res))
        self._processes(s, cpu_delta)
        return s

    def _read(self, s: Sample, rel: str, parse: Callable[[str, Sample], float | None]) -> float | None:
        """``parse`` the file ``rel``: all its values, or none of them and a failure."""
        path = self.root / rel
        before = dict(s.values)
        try:
            text = path.read_text()
            return parse(text, s)
        except OSError as exc:
            self._fail(s, f"cannot read {path}: {exc.strerror or exc}")
        except (MalformedError, ValueError, IndexError, KeyError) as exc:
            s.values = before  # a truncated file must not leave half of its values
            self._fail(s, f"malformed {path}: {exc}")
        return None

    def _fail(self, s: Sample, message: str) -> None:
        s.failures += 1
        if message not in self._warned:
            self._warned.add(message)
            self._warn(message)

    # -- the files -------------------------------------------------------------------

    @staticmethod
    def _loadavg(text: str, s: Sample) -> None:
        # "0.52 0.58 0.59 2/1161 12345": three averages, runnable/total tasks, last pid
        cols = text.split()
        if len(cols) < 4 or "/" not in cols[3]:
            raise MalformedError(f"expected 5 columns, got {text.strip()!r}")
        loads = [float(c) for c in cols[:3]]
        threads = int(cols[3].split("/")[1])
        for key, load in zip(("load1", "load5", "load15"), loads, strict=True):
            s.values[key] = int(load * 100 + 0.5)
        s.values["threads.count"] = threads

    def _stat(self, text: str, s: Sample) -> float | None:
        """The aggregate ``cpu`` line, CPU count, procs_running/blocked; returns the CPU ticks elapsed per CPU."""
        times: tuple[int, ...] | None = None
        cpus = 0
        for line in text.splitlines():
            name, _, rest = line.partition(" ")
            if name == "cpu":
                cols = [int(c) for c in rest.split()]
                if len(cols) < 4:  # user nice system idle exist on every kernel; the rest came later
                    raise MalformedError(f"cpu line has {len(cols)} columns")
                times = tuple((cols + [0] * len(CPU_MODES))[: len(CPU_MODES)])
            elif name.startswith("cpu") and name[3:].isdigit():
                cpus += 1
            elif name in ("procs_running", "procs_blocked"):
                s.values[name.replace("_", ".")] = int(rest)
        if times is None:
            raise MalformedError("no aggregate cpu line")
        if cpus:
            s.values["cpu.count"] = cpus
            if "load1" in s.values:
                s.values["load1_per_cpu_pct"] = int(s.values["load1"] / cpus + 0.5)
        previous, self._cpu = self._cpu, times
        if previous is None:
            return None  # the first sample has nothing to compare with
        delta = [max(now - then, 0) for now, then in zip(times, previous, strict=True)]
        total = sum(delta)
        if total <= 0:
            return None
        for mode, ticks in zip(CPU_MODES, delta, strict=True):
            s.values[f"cpu.{mode}_pct"] = pct(ticks, total) or 0
        busy = sum(t for mode, t in zip(CPU_MODES, delta, strict=True) if mode not in _CLEARS_IDLE)
        s.values["cpu.usage_pct"] = pct(busy, total) or 0
        return total / cpus if cpus else float(total)

    @staticmethod
    def _meminfo(text: str, s: Sample) -> None:
        kib: dict[str, int] = {}
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            cols = rest.split()
            if cols:
                kib[key] = int(cols[0])  # "MemTotal:  16318396 kB"
        if "MemTotal" not in kib:
            raise MalformedError("no MemTotal")
        total = kib["MemTotal"] * 1024
        s.values["mem.total_bytes"] = total
        if "MemAvailable" in kib:  # Linux >= 3.14
            available = kib["MemAvailable"] * 1024
            s.values["mem.available_bytes"] = available
            s.values["mem.used_bytes"] = max(total - available, 0)
            used = pct(max(total - available, 0), total)
            if used is not None:
                s.values["mem.used_pct"] = used
        if "SwapTotal" in kib and "SwapFree" in kib:
            swap, free = kib["SwapTotal"] * 1024, kib["SwapFree"] * 1024
            s.values.update({"swap.total_bytes": swap, "swap.free_bytes": free, "swap.used_bytes": swap - free})
            swap_used = pct(swap - free, swap)
            if swap_used is not None:
                s.values["swap.used_pct"] = swap_used

    @staticmethod
    def _file_nr(text: str, s: Sample) -> None:
        # "allocated unused max"; unused has read 0 since Linux 2.6
        allocated, unused, maximum = (int(c) for c in text.split()[:3])
        s.values["files.allocated"] = allocated - unused
        s.values["files.max"] = maximum
        used = pct(allocated - unused, maximum)
        if used is not None:
            s.values["files.used_pct"] = used

    @staticmethod
    def _psi(text: str, s: Sample, res: str) -> None:
        # "some avg10=0.12 avg60=0.05 avg300=0.01 total=123456" (and "full ..." since 5.13 for cpu)
        seen = False
        for line in text.splitlines():
            kind, *pairs = line.split()
            if kind not in ("some", "full"):
                continue
            got = dict(p.split("=", 1) for p in pairs)
            for avg in _PSI_AVERAGES:
                s.values[f"psi.{res}.{kind}_{avg}"] = int(float(got[avg]) + 0.5)
            s.values[f"psi.{res}.{kind}_total_us"] = int(got["total"])
            seen = True
        if not seen:
            raise MalformedError("no some/full line")

    def _processes(self, s: Sample, ticks_per_cpu: float | None) -> None:
        """The process count; with ``top_n``, the top processes by RSS and by CPU since the previous sample."""
        try:
            pids = [int(e.name) for e in os.scandir(self.root) if e.name.isdigit()]
        except OSError as exc:
            self._fail(s, f"cannot list {self.root}: {exc.strerror or exc}")
            return
        s.values["procs.count"] = len(pids)
        if self.top_n <= 0:
            self._ticks = {}
            return
        rss: list[TopEntry] = []
        cpu: list[TopEntry] = []
        ticks: dict[int, int] = {}
        for pid in pids:
            try:
                text = (self.root / str(pid) / "stat").read_text()
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses
                head, _, tail = text.rpartition(")")
                name = head.partition("(")[2]
                rest = tail.split()
                used = int(rest[11]) + int(rest[12])  # utime, stime (fields 14 and 15)
                rss_bytes = int(rest[21]) * self._page_size  # rss in pages (field 24)
            except OSError:
                continue  # the process ended between the listing and the read
            except (ValueError, IndexError):
                self._fail(s, f"malformed {self.root / str(pid) / 'stat'}")
                continue
            ticks[pid] = used
            rss.append(TopEntry(pid, name, rss_bytes))
            if ticks_per_cpu and pid in self._ticks:
                cpu.append(TopEntry(pid, name, pct(max(used - self._ticks[pid], 0), ticks_per_cpu) or 0))
        self._ticks = ticks
        # ties go to the lower pid, so that a list is the same whatever order the directory lists
        s.top_rss = sorted(rss, key=lambda e: (-e.value, e.pid))[: self.top_n]
        s.top_cpu = sorted(cpu, key=lambda e: (-e.value, e.pid))[: self.top_n]
