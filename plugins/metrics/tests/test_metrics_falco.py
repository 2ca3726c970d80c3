"""The plugin in the real Falco 0.44.1, next to the syscall source (``engine.kind: nodriver``).

The shipped rules fire on samples of a fake /proc under pressure, and a capture Falco writes
carries the samples. Falco is found as the suite finds it
(``tests/falco/falco_runner.py``: ``$FALCO``, or ``<repo>/../shared/realhost/falco``); the test
skips without it. Plugin metrics are not checked here: this Falco is a ``MINIMAL_BUILD``, which
leaves the libs metrics (and so plugin metrics) out of its metrics output; the Python and C
hosts check them instead.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fakeproc import write_proc
from falco_plugin_tools.build import BuildResult

PROJECT = Path(__file__).resolve().parents[1]
RUNNER = PROJECT.parents[1] / "tests" / "falco"
if str(RUNNER) not in sys.path:
    sys.path.insert(0, str(RUNNER))
falco_runner = pytest.importorskip("falco_runner", reason=f"no Falco test helper at {RUNNER}")


@pytest.fixture
def falco() -> Path:
    found = falco_runner.find_falco()
    if found is None:
        pytest.skip(falco_runner.not_found_reason())
    return Path(found)


def under_pressure(root: Path) -> Path:
    """A fake /proc past every threshold of the shipped rules."""
    write_proc(root)
    (root / "loadavg").write_text("6.00 3.00 1.00 9/412 98765\n")  # 300% of 2 CPUs
    meminfo = (root / "meminfo").read_text().replace("MemAvailable:    4000000", "MemAvailable:     800000")
    (root / "meminfo").write_text(meminfo)  # 95% used
    (root / "sys" / "fs" / "file-nr").write_text("9600\t0\t10000\n")  # 96% used
    return root


def test_the_shipped_rules_fire_on_samples_and_a_capture_carries_them(
    falco: Path, build_plugin_project: Callable[[Path], BuildResult], tmp_path: Path
) -> None:
    build = build_plugin_project(PROJECT)
    init = {"proc_root": str(under_pressure(tmp_path / "proc")), "interval": 0.2, "top_n": 1}
    capture = {"enabled": True, "path_prefix": str(tmp_path / "cap"), "mode": "all_rules", "default_duration": 500}
    config = falco_runner.write_config(
        tmp_path / "falco.yaml",
        falco_runner.falco_config(
            [falco_runner.PluginConf("metrics", build.library, init_config=init)],
            rules=[PROJECT / "rules" / "metrics_rules.yaml"],
            capture=capture,
            rule_matching="all",  # Falco's default, "first", would show one rule per sample
        ),
    )
    run = falco_runner.run_falco(falco, config, "-M", "3")  # the syscall source runs (no driver) for 3 s
    assert run.returncode == 0, run.describe()
    assert run.noise() == [], run.describe()
    fired = {a["rule"] for a in run.alerts}
    assert fired == {"Host memory pressure", "Host load spike", "Host file handle shortage"}, run.describe()
    memory = next(a for a in run.alerts if a["rule"] == "Host memory pressure")
    assert memory["source"] == "syscall"
    assert memory["output_fields"]["metrics.mem.used_pct"] == 95
    assert memory["output_fields"]["metrics.top.rss.name[1]"] == "java (app) x"
    load = next(a for a in run.alerts if a["rule"] == "Host load spike")
    assert (load["output_fields"]["metrics.load1_per_cpu_pct"], load["output_fields"]["metrics.load1"]) == (300, 600)
    # The parser sees the syscall stream: no driver here, so the samples themselves (async events).
    totals = [a["output_fields"]["metrics.events.total"] for a in run.alerts if a["rule"] == "Host load spike"]
    assert totals == sorted(totals) and totals[-1] > 0, totals
    # Samples come every 0.2 s for 3 s: several per rule, not one.
    assert sum(a["rule"] == "Host load spike" for a in run.alerts) >= 3, run.describe()
    captures = sorted(tmp_path.glob("cap_*.scap"))
    assert captures, run.describe()
    data = gzip.decompress(captures[0].read_bytes())
    assert b"metrics_sample" in data and b'"mem.used_pct":95' in data
