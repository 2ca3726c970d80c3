"""dummy_py in the real Falco: its own rules fire, and the alerts carry the plugin's values."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from falco_plugin_tools.build import BuildResult
from falco_runner import PLUGIN_ONLY, REPO, FalcoRun, PluginConf, falco_config, run_falco, write_config

RULES = REPO / "plugins" / "dummy" / "rules" / "dummy_py_rules.yaml"

# Every event alerts, its output rendering each kind of field (a number, a
# string, an indexed argument) and the event as the plugin formats it.
EVERY_SAMPLE = """\
- rule: Every dummy sample
  desc: test rule
  condition: dummy.value > 0
  output: sample %dummy.value str=%dummy.strvalue by3=%dummy.divisible[3] info=%evt.plugininfo
  priority: INFO
  source: dummy_py
"""


def run_dummy(
    falco: Path, build: BuildResult, tmp_path: Path, rules: Path, *, start: int, count: int, jitter: int = 0
) -> FalcoRun:
    plugin = PluginConf("dummy_py", build.library, {"jitter": jitter}, json.dumps({"start": start, "maxEvents": count}))
    config = write_config(tmp_path / "falco.yaml", falco_config([plugin], rules=[rules]))
    run = run_falco(falco, config, *PLUGIN_ONLY, "-v", timeout=120)
    assert run.returncode == 0, run.describe()
    assert not run.noise(), run.describe()
    assert run.captured() == {"dummy_py": count}, run.describe()
    return run


def test_the_reference_rules_fire_with_the_plugins_values(
    falco: Path, plugin_build: Callable[[str], BuildResult], tmp_path: Path
) -> None:
    # without jitter the samples are start+1 ... start+count: 991 ... 1010
    run = run_dummy(falco, plugin_build("dummy"), tmp_path, RULES, start=990, count=20)
    by_rule: dict[str, list[dict[str, object]]] = {}
    for alert in run.alerts:
        assert alert["source"] == "dummy_py"
        by_rule.setdefault(str(alert["rule"]), []).append(alert["output_fields"])
    sevens = by_rule.pop("Dummy sample is a multiple of seven")
    assert [(f["dummy.value"], f["dummy.strvalue"]) for f in sevens] == [(994, "994"), (1001, "1001"), (1008, "1008")]
    above = by_rule.pop("Dummy sample crossed one thousand")
    # rule_matching is "first" by default: a multiple of seven alerts once, for the first rule
    assert [f["dummy.value"] for f in above] == [v for v in range(1001, 1011) if v % 7]
    assert by_rule == {}
    assert "Dummy sample 1001 is a multiple of seven (strvalue=1001)" in run.stdout


def test_every_field_renders_in_alert_outputs(
    falco: Path, plugin_build: Callable[[str], BuildResult], tmp_path: Path
) -> None:
    rules = tmp_path / "every_sample.yaml"
    rules.write_text(EVERY_SAMPLE)
    run = run_dummy(falco, plugin_build("dummy"), tmp_path, rules, start=0, count=300)
    assert [a["rule"] for a in run.alerts] == ["Every dummy sample"] * 300
    for n, alert in enumerate(run.alerts, start=1):
        fields = alert["output_fields"]
        assert fields["dummy.value"] == n
        assert fields["dummy.strvalue"] == str(n)
        assert fields["dummy.divisible[3]"] == (1 if n % 3 == 0 else 0)
        assert json.loads(fields["evt.plugininfo"]) == {"sample": str(n)}
        assert f"sample {n} str={n} by3={fields['dummy.divisible[3]']} info=" in alert["output"]


def test_jittered_samples_grow_as_the_plugin_says(
    falco: Path, plugin_build: Callable[[str], BuildResult], tmp_path: Path
) -> None:
    rules = tmp_path / "every_sample.yaml"
    rules.write_text(EVERY_SAMPLE)
    run = run_dummy(falco, plugin_build("dummy"), tmp_path, rules, start=5, count=200, jitter=4)
    values = [int(str(a["output_fields"]["dummy.value"])) for a in run.alerts]
    steps = [b - a for a, b in zip([5, *values], values, strict=False)]
    assert len(values) == 200 and set(steps) <= {1, 2, 3, 4, 5} and len(set(steps)) > 1
