"""The /proc readers on fake trees shaped like several kernels' (tests/fakeproc.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fakeproc import KERNELS, advance, write_proc
from host_metrics.procfs import VALUES, ProcReader

PAGE = os.sysconf("SC_PAGE_SIZE")
GIB = 1024 * 1024


def read(root: Path, **kw: int) -> tuple[ProcReader, list[str]]:
    warnings: list[str] = []
    return ProcReader(root, warn=warnings.append, **kw), warnings


@pytest.mark.parametrize("kernel", KERNELS)
def test_every_kernel_shape_gives_its_values(tmp_path: Path, kernel: str) -> None:
    root = write_proc(tmp_path / "proc", kernel)
    reader, warnings = read(root)
    s = reader.sample()
    assert warnings == [] and s.failures == 0
    v = s.values
    assert (v["load1"], v["load5"], v["load15"], v["load1_per_cpu_pct"]) == (150, 75, 25, 75)
    assert (v["cpu.count"], v["threads.count"], v["procs.count"]) == (2, 412, 4)
    assert (v["procs.running"], v["procs.blocked"]) == (3, 1)
    assert v["mem.total_bytes"] == 16_000_000 * 1024
    assert (v["swap.used_pct"], v["swap.used_bytes"]) == (25, 500_000 * 1024)
    assert (v["files.allocated"], v["files.max"], v["files.used_pct"]) == (9000, 10000, 90)
    assert "cpu.usage_pct" not in v  # no delta yet
    if kernel == "2.6.32":
        assert not {"mem.available_bytes", "mem.used_pct", "mem.used_bytes"} & v.keys()
    else:
        assert (v["mem.available_bytes"], v["mem.used_bytes"]) == (4_000_000 * 1024, 12_000_000 * 1024)
        assert v["mem.used_pct"] == 75
    psi = {k: x for k, x in v.items() if k.startswith("psi.")}
    if kernel in ("4.14", "2.6.32"):
        assert psi == {}  # no PSI in the kernel: no value and no failure
    else:
        assert (psi["psi.memory.some_avg10"], psi["psi.memory.full_avg10"]) == (12, 8)
        assert (psi["psi.cpu.some_avg10"], psi["psi.cpu.some_avg60"], psi["psi.cpu.some_avg300"]) == (3, 1, 0)
        assert psi["psi.memory.some_total_us"] == 5_550_000
        assert psi["psi.io.full_total_us"] == 7
        assert ("psi.cpu.full_avg10" in psi) == (kernel == "6.8")
    assert set(v) <= set(VALUES)


@pytest.mark.parametrize("kernel", ["6.8", "2.6.32"])
def test_cpu_percentages_come_from_the_delta_of_two_samples(tmp_path: Path, kernel: str) -> None:
    root = write_proc(tmp_path / "proc", kernel)
    reader, _ = read(root)
    reader.sample()
    advance(root, kernel)
    v = reader.sample().values
    got = {k: v[k] for k in v if k.startswith("cpu.") and k.endswith("_pct")}
    assert got == {
        "cpu.usage_pct": 40,
        "cpu.user_pct": 30,
        "cpu.system_pct": 10,
        "cpu.idle_pct": 50,
        "cpu.iowait_pct": 10,
        **{f"cpu.{m}_pct": 0 for m in ("nice", "irq", "softirq", "steal")},
    }
    # no time passed: no percentages rather than a division by zero
    assert "cpu.usage_pct" not in reader.sample().values


def test_top_lists_by_rss_and_by_cpu(tmp_path: Path) -> None:
    root = write_proc(tmp_path / "proc")
    reader, warnings = read(root, top_n=3)
    first = reader.sample()
    assert [(e.pid, e.name, e.value) for e in first.top_rss] == [
        (42, "java (app) x", 250_000 * PAGE),
        (77, "postgres", 100_000 * PAGE),
        (1, "systemd", 3000 * PAGE),
    ]
    assert first.top_cpu == []  # needs a previous sample
    advance(root, extra_ticks={42: 500, 77: 250})
    (root / "300").rename(root / "301")  # a process ended, another started: no delta for it
    s = reader.sample()
    assert [(e.pid, e.value) for e in s.top_cpu] == [(42, 50), (77, 25), (1, 0)]  # of 1000 ticks per CPU
    assert warnings == [] and s.failures == 0
    assert s.to_json()["top.cpu"] == [[42, "java (app) x", 50], [77, "postgres", 25], [1, "systemd", 0]]


def test_top_lists_are_off_by_default(tmp_path: Path) -> None:
    s = read(write_proc(tmp_path / "proc"))[0].sample()
    assert (s.top_rss, s.top_cpu) == ([], [])


@pytest.mark.parametrize(
    ("rel", "content", "lost"),
    [
        ("loadavg", "1.50 0.75\n", {"load1", "load5", "load15", "threads.count", "load1_per_cpu_pct"}),
        ("loadavg", "high low medium 1/2 3\n", {"load1", "threads.count", "load1_per_cpu_pct"}),
        ("stat", "cpu  1 2\nintr 5\n", {"cpu.count", "procs.running"}),
        ("stat", "intr 5\nctxt 6\n", {"cpu.count"}),
        ("meminfo", "MemFree: 10 kB\n", {"mem.total_bytes", "mem.used_pct", "swap.used_pct"}),
        ("meminfo", "MemTotal: 16000000 kB\nMemAvailable: lots kB\n", {"mem.total_bytes", "mem.used_pct"}),
        ("sys/fs/file-nr", "9000\t0\n", {"files.allocated", "files.used_pct"}),
        ("pressure/memory", "some avg10=1.00 avg60=", {"psi.memory.some_avg10"}),
        ("pressure/io", "", {"psi.io.some_avg10"}),
        ("pressure/cpu", "some avg10=x avg60=0 avg300=0 total=0\n", {"psi.cpu.some_avg10"}),
    ],
)
def test_a_malformed_file_loses_its_values_and_warns_once(
    tmp_path: Path, rel: str, content: str, lost: set[str]
) -> None:
    root = write_proc(tmp_path / "proc")
    (root / rel).write_text(content)
    reader, warnings = read(root)
    s = reader.sample()
    assert s.failures == 1
    assert lost.isdisjoint(s.values), lost & s.values.keys()
    assert "mem.total_bytes" in s.values or rel == "meminfo"  # the other files still count
    assert len(warnings) == 1 and warnings[0].startswith(f"malformed {root / rel}")
    assert reader.sample().failures == 1 and len(warnings) == 1  # the same problem is not logged again


@pytest.mark.parametrize("rel", ["loadavg", "stat", "meminfo", "sys/fs/file-nr", "pressure/cpu"])
def test_a_missing_file_loses_its_values_and_warns(tmp_path: Path, rel: str) -> None:
    root = write_proc(tmp_path / "proc")
    (root / rel).unlink()
    reader, warnings = read(root)
    s = reader.sample()
    assert s.failures == 1 and len(warnings) == 1
    assert warnings[0].startswith(f"cannot read {root / rel}: No such file")
    assert "procs.count" in s.values


def test_an_empty_or_absent_proc_root_gives_an_empty_sample(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    s = read(tmp_path / "empty")[0].sample()
    assert s.failures == 4 and s.values == {"procs.count": 0}
    reader, warnings = read(tmp_path / "absent")
    s = reader.sample()
    assert s.values == {} and s.failures == 5 and any("cannot list" in w for w in warnings)


def test_a_truncated_process_stat_is_a_failure_a_vanished_one_is_not(tmp_path: Path) -> None:
    root = write_proc(tmp_path / "proc")
    (root / "77" / "stat").write_text("77 (postgres) S 1 77")
    (root / "300" / "stat").unlink()  # gone between the listing and the read
    reader, warnings = read(root, top_n=5)
    s = reader.sample()
    assert [e.pid for e in s.top_rss] == [42, 1]
    assert s.failures == 1 and warnings == [f"malformed {root / '77' / 'stat'}"]
