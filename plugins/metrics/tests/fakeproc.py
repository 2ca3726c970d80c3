"""Fake /proc trees with the files' shapes as real kernels write them.

``write_proc(root, kernel)`` writes one of :data:`KERNELS`: the shapes of
/proc/stat, /proc/meminfo and /proc/pressure/* differ between them (columns
of the ``cpu`` line, MemAvailable, PSI and its ``full`` line for cpu). The
values are chosen so that every derived figure is a round number the tests
can state.
"""

from __future__ import annotations

from pathlib import Path

KERNELS = ("6.8", "5.4", "4.14", "2.6.32")
"""6.8: everything; 5.4: PSI without cpu ``full``; 4.14: no PSI; 2.6.32: no PSI, no MemAvailable, no guest_nice."""

LOADAVG = "1.50 0.75 0.25 3/412 98765\n"

# user nice system idle iowait irq softirq steal guest guest_nice
CPU_BASE = (1000, 0, 500, 8000, 100, 0, 0, 0, 0, 0)
CPU_NEXT = (1600, 0, 700, 9000, 300, 0, 0, 0, 0, 0)
"""A second /proc/stat: 2000 ticks later, 600 user, 200 system, 1000 idle, 200 iowait (40% usage)."""


def stat(times: tuple[int, ...], kernel: str = "6.8", cpus: int = 2) -> str:
    cols = times[:9] if kernel == "2.6.32" else times
    lines = ["cpu  " + " ".join(map(str, cols))]
    for n in range(cpus):
        lines.append(f"cpu{n} " + " ".join(str(t // cpus) for t in cols))
    lines += [
        "intr 123456 0 9 0 0",
        "ctxt 987654",
        "btime 1700000000",
        "processes 4321",
        "procs_running 3",
        "procs_blocked 1",
    ]
    if kernel != "2.6.32":
        lines.append("softirq 5555 0 1 2 3 4 5 6 7 8 9")
    return "\n".join(lines) + "\n"


def meminfo(kernel: str = "6.8") -> str:
    lines = [
        "MemTotal:       16000000 kB",
        "MemFree:         1000000 kB",
    ]
    if kernel != "2.6.32":
        lines.append("MemAvailable:    4000000 kB")  # 75% used
    lines += [
        "Buffers:          200000 kB",
        "Cached:          2000000 kB",
        "SwapCached:            0 kB",
        "Active:          9000000 kB",
        "SwapTotal:       2000000 kB",
        "SwapFree:        1500000 kB",  # 25% used
        "HugePages_Total:       0",
        "Hugepagesize:       2048 kB",
    ]
    return "\n".join(lines) + "\n"


def psi(resource: str, kernel: str = "6.8") -> str:
    some = {"cpu": "some avg10=2.50 avg60=1.20 avg300=0.40 total=123456789",
            "memory": "some avg10=12.49 avg60=6.00 avg300=1.00 total=5550000",
            "io": "some avg10=0.00 avg60=0.00 avg300=0.00 total=42"}[resource]  # fmt: skip
    full = {"cpu": "full avg10=0.00 avg60=0.00 avg300=0.00 total=0",
            "memory": "full avg10=7.51 avg60=3.00 avg300=0.50 total=2220000",
            "io": "full avg10=0.00 avg60=0.00 avg300=0.00 total=7"}[resource]  # fmt: skip
    if resource == "cpu" and kernel == "5.4":
        return some + "\n"  # cpu "full" came in Linux 5.13
    return some + "\n" + full + "\n"


PROCESSES = {
    # pid: (comm, utime, stime, rss pages, threads)
    1: ("systemd", 100, 50, 3000, 1),
    42: ("java (app) x", 5000, 1000, 250000, 40),
    77: ("postgres", 800, 200, 100000, 1),
    300: ("sh", 1, 1, 200, 1),
}


def pid_stat(pid: int, comm: str, utime: int, stime: int, rss: int, threads: int) -> str:
    # 52 fields as Linux 5.x writes them; only 14, 15, 20 and 24 matter here
    rest = ["S", "1", str(pid), str(pid), "0", "-1", "4194560", "100", "0", "10", "0",
            str(utime), str(stime), "0", "0", "20", "0", str(threads), "0", "12345",
            "123456789", str(rss)] + ["0"] * 28  # fmt: skip
    return f"{pid} ({comm}) " + " ".join(rest) + "\n"


def replace(path: Path, text: str) -> None:
    """Write ``path`` in one step, as the kernel shows a file: a sampler reading it meanwhile
    sees the old content or the new, never a half-written one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_processes(root: Path, extra_ticks: dict[int, int] | None = None) -> None:
    for pid, (comm, utime, stime, rss, threads) in PROCESSES.items():
        d = root / str(pid)
        d.mkdir(exist_ok=True)
        more = (extra_ticks or {}).get(pid, 0)
        replace(d / "stat", pid_stat(pid, comm, utime + more, stime, rss, threads))


def write_proc(root: Path, kernel: str = "6.8") -> Path:
    """A whole fake /proc at ``root`` with the shapes of ``kernel``; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "loadavg").write_text(LOADAVG)
    (root / "stat").write_text(stat(CPU_BASE, kernel))
    (root / "meminfo").write_text(meminfo(kernel))
    (root / "sys" / "fs").mkdir(parents=True, exist_ok=True)
    (root / "sys" / "fs" / "file-nr").write_text("9000\t0\t10000\n")  # 90% used
    if kernel in ("6.8", "5.4"):
        (root / "pressure").mkdir(exist_ok=True)
        for res in ("cpu", "memory", "io"):
            (root / "pressure" / res).write_text(psi(res, kernel))
    (root / "self").mkdir(exist_ok=True)  # not a pid: never counted
    write_processes(root)
    return root


def advance(root: Path, kernel: str = "6.8", extra_ticks: dict[int, int] | None = None) -> None:
    """The second /proc/stat (see :data:`CPU_NEXT`), and per-process CPU ticks added."""
    replace(root / "stat", stat(CPU_NEXT, kernel))
    write_processes(root, extra_ticks)
