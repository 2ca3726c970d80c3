"""Captures the real Falco records of a plugin's stream replay in our host as in libsinsp.

Falco with ``capture: {enabled: true, mode: all_rules}`` writes the events of
dummy_py's stream to a ``.scap`` file once a rule fires; replaying that file
through dummy_py (``falco-plugin run LIB --capture FILE``) must give each
event the plugin's source, and so the values Falco alerted with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools.build import BuildResult
from falco_runner import PLUGIN_ONLY, REALHOST, PluginConf, falco_config, replay_engine, run_falco, write_config

EVERY_SAMPLE = """\
- rule: Every dummy sample
  desc: every event alerts, so that the capture starts with the stream
  condition: dummy.value > 0
  output: sample %dummy.value
  priority: INFO
  source: dummy_py
"""
COUNT = 200


@pytest.fixture
def recorded(falco: Path, plugin_build: Callable[[str], BuildResult], tmp_path: Path) -> tuple[Path, list[int]]:
    """dummy_py's stream (jittered) as the real Falco recorded it, and the values Falco alerted with."""
    rules = tmp_path / "every_sample.yaml"
    rules.write_text(EVERY_SAMPLE)
    library = plugin_build("dummy").library
    plugin = PluginConf("dummy_py", library, {"jitter": 10}, json.dumps({"start": 1200, "maxEvents": COUNT}))
    capture = {"enabled": True, "mode": "all_rules", "path_prefix": str(tmp_path / "cap"), "default_duration": 600000}
    config = write_config(tmp_path / "falco.yaml", falco_config([plugin], rules=[rules], capture=capture))
    run = run_falco(falco, config, *PLUGIN_ONLY, timeout=120)
    assert run.returncode == 0, run.describe()
    files = sorted(tmp_path.glob("cap*.scap"))
    assert len(files) == 1, (files, run.describe())
    return files[0], [int(str(a["output_fields"]["dummy.value"])) for a in run.alerts]


def test_a_capture_recorded_by_falco_replays_with_the_plugins_values(
    recorded: tuple[Path, list[int]], plugin_build: Callable[[str], BuildResult]
) -> None:
    capture, alerted = recorded
    library = plugin_build("dummy").library
    cmd = [sys.executable, "-m", "falco_plugin_tools.cli", "run", str(library), "--capture", str(capture), "--json"]
    done = subprocess.run([*cmd, "--fields", "evt.num,evt.source,dummy.value"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line)["fields"] for line in done.stdout.splitlines()]
    # Falco starts recording when the first rule fires: the file may lack the very first event.
    assert len(rows) >= COUNT - 1
    assert [r["evt.source"] for r in rows] == ["dummy_py"] * len(rows)
    assert [r["dummy.value"] for r in rows] == alerted[len(alerted) - len(rows) :]
    assert len(alerted) == COUNT and len(set(alerted)) == COUNT


def test_sinsp_example_reads_the_same_values_from_the_capture(
    recorded: tuple[Path, list[int]], plugin_build: Callable[[str], BuildResult]
) -> None:
    tool = REALHOST / "sinsp-example"
    if not tool.is_file():
        pytest.skip(f"no sinsp-example at {tool}")
    capture, alerted = recorded
    library = plugin_build("dummy").library
    fmt = "*%evt.num %evt.source %dummy.value"
    done = subprocess.run(
        [str(tool), "-j", "-s", str(capture), "-p", f"{library}|{{}}", "-o", fmt], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    theirs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r["dummy.value"] for r in theirs] == alerted[len(alerted) - len(theirs) :]


def test_falco_replays_the_capture_the_replay_check_writes(
    falco: Path, plugin_build: Callable[[str], BuildResult], tmp_path: Path
) -> None:
    from falco_plugin_tools.host.scap import read_scap
    from falco_plugin_tools.replay_check import replay_check

    library = plugin_build("dummy").library
    capture = tmp_path / "check.scap"
    check = replay_check(library, capture, open_params=json.dumps({"start": 50, "maxEvents": 100}), n=60, skip=10)
    assert check.ok, check.report()
    rules = tmp_path / "every_sample.yaml"
    rules.write_text(EVERY_SAMPLE)
    config = falco_config(
        [PluginConf("dummy_py", library, {"jitter": 10})],
        rules=[rules],
        engine=replay_engine(capture),
    )
    run = run_falco(falco, write_config(tmp_path / "falco.yaml", config), timeout=120)
    assert run.returncode == 0, run.describe()
    written = [int(e.params()["event_data"]) for e in read_scap(capture)[1]]
    assert len(written) == 60
    assert [a["output_fields"]["dummy.value"] for a in run.alerts] == written
    assert {a["source"] for a in run.alerts} == {"dummy_py"}
