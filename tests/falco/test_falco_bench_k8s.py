"""bench/falco_k8s.py and bench/falco_k8s_memory.py keep working in the real Falco: they build, check
that the fields have the pods' values, run every configuration and report (timings are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from falco_runner import REPO


def bench(script: str, falco: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--falco", str(falco), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_the_k8s_parse_cost_benchmark_runs_every_configuration(falco: Path) -> None:
    out = bench("falco_k8s.py", falco, "--events", "2000", "--repeat", "1")
    for row in ("no plugin", "k8s_parse, 2 fields", "C columns, 2 fields", "host: k8s_parse, 2 f."):
        assert f"\n{row} " in out, out
    assert "k8s_parse: parse " in out and "C columns: parse " in out and "host threads, k8s_parse: parse " in out


def test_the_k8s_parse_memory_benchmark_reports_both_replays(falco: Path) -> None:
    out = bench("falco_k8s_memory.py", falco, "--events", "3000", "--changes", "30")
    assert "short replay (start-up, 10,000 execve exits): peak " in out, out
    assert "long replay (3,000 events, 30 pod changes): peak " in out, out
