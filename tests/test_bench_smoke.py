"""The benchmark keeps working: it builds, runs both plugins and reports every metric (timings are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from falco_plugin_tools.build import BuildResult

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_compares_dummy_py_with_the_c_reference_on_every_metric(
    build_plugin_project: Callable[[Path], BuildResult], tmp_path: Path
) -> None:
    library = build_plugin_project(ROOT / "plugins" / "dummy").library
    report = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--lib", str(library), "--quick", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(report.read_text())["results"]
    assert [r["metric"].split(" (")[0] for r in results] == [
        "source: next_batch, ns/event",
        "extract dummy.value",
        "extract dummy.strvalue",
        "extract dummy.divisible[3]",
        "extract all 3 fields per event",
    ]
    assert all(r["python_ns"] > 0 and r["c_ns"] > 0 for r in results)
    tables = json.loads(report.read_text())["tables"]
    assert [r["metric"] for r in tables] == ["parse_event: read + write a threads field", "extract: a threads field"]
    assert all(r["python_ns"] > 0 and r["c_ns"] > 0 for r in tables)
    falco_like = json.loads(report.read_text())["falco_like"]
    assert [r["row"] for r in falco_like] == ["source only", "one field (dummy.value)", "three fields"]
    assert all(r["python_ns"] > 0 and r["c_ns"] > 0 for r in falco_like)
    stateful = json.loads(report.read_text())["stateful"]
    assert all(stateful[k] > 0 for k in ("emit_per_s", "emit_per_s_c", "get_metrics_ns", "update_ns"))
    assert "python ns" in proc.stdout and "C ns" in proc.stdout
