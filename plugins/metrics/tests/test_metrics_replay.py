"""metrics' fields survive a capture: they read the sample the async event carries, never /proc or a counter."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fakeproc import write_proc
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.replay_check import replay_check

PROJECT = Path(__file__).resolve().parents[1]
REPO = PROJECT.parents[1]


def shared_capture() -> Path:
    for parent in REPO.parents:
        found = sorted((parent / "shared" / "captures").glob("*.scap"))
        if found:
            return found[0]
    pytest.skip("no capture in <repo>/../shared/captures")


def test_every_field_survives_a_replay_of_a_syscall_capture(
    build_plugin_project: Callable[[Path], BuildResult], tmp_path: Path
) -> None:
    library = build_plugin_project(PROJECT).library
    config = json.dumps({"proc_root": str(write_proc(tmp_path / "proc")), "interval": 0.01})
    # one sample before the capture starts: dump_state writes it first, and the replay starts from it
    check = replay_check(
        library, tmp_path / "out.scap", init_config=config, capture=shared_capture(), n=900, wait_async=1
    )
    assert check.ok, check.report()
    assert check.state_events == 1
    assert "metrics.mem.used_pct" in check.fields and "metrics.events.total" in check.fields


def test_falco_replays_the_capture_the_check_writes(
    build_plugin_project: Callable[[Path], BuildResult], tmp_path: Path
) -> None:
    runner_dir = REPO / "tests" / "falco"
    if str(runner_dir) not in sys.path:
        sys.path.insert(0, str(runner_dir))
    falco_runner = pytest.importorskip("falco_runner", reason=f"no Falco test helper at {runner_dir}")
    falco = falco_runner.find_falco()
    if falco is None:
        pytest.skip(falco_runner.not_found_reason())
    library = build_plugin_project(PROJECT).library
    proc = str(write_proc(tmp_path / "proc"))
    out = tmp_path / "out.scap"
    check = replay_check(library, out, init_config=json.dumps({"proc_root": proc, "interval": 0.01}),
                         capture=shared_capture(), n=900, wait_async=1)  # fmt: skip
    assert check.ok, check.report()
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- rule: sample\n  desc: every sample\n  condition: evt.type = metrics_sample\n"
        "  output: used=%metrics.mem.used_pct\n  priority: INFO\n"
    )
    plugin = falco_runner.PluginConf("metrics", library, {"proc_root": proc})
    config = falco_runner.falco_config([plugin], rules=[rules], engine=falco_runner.replay_engine(out))
    run = falco_runner.run_falco(falco, falco_runner.write_config(tmp_path / "falco.yaml", config), timeout=120)
    assert run.returncode == 0, run.describe()
    # Falco alerts on every sample the check compared (the dumped one is initial state: parsed, not shown)
    samples = [v["metrics.mem.used_pct"] for _, v in sorted(check.recorded.items()) if v["metrics.mem.used_pct"]]
    assert [a["output_fields"]["metrics.mem.used_pct"] for a in run.alerts] == samples
