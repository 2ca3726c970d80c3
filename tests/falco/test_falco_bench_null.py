"""bench/falco_null.py keeps working: it builds the null pair, runs both in the C host and the real Falco
(Falco's event count checked) and reports both rules (timings are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from falco_runner import REPO


def test_the_null_pair_benchmark_reports_both_hosts_and_both_rules(falco: Path) -> None:
    script = REPO / "bench" / "falco_null.py"
    args = ["--falco", str(falco), "--events", "2000", "--chost-events", "2000", "--repeat", "1"]
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for row in (
        "next_batch, ns/event",
        "extract null.one, ns/call",
        "source only (evt.num = 0)",
        "one field (null.one = 0)",
    ):
        assert f"| {row} " in proc.stdout, proc.stdout
