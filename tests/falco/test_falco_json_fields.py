"""Fields by JSON pointer (falco_plugin.json_field) in the real Falco: conditions and outputs
read them as any plugin field, and a payload that is not JSON neither stops Falco nor the events after it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from falco_plugin_tools.build import BuildResult
from falco_runner import PLUGIN_ONLY, REPO, FalcoRun, PluginConf, falco_config, run_falco, write_config

FIXTURE = REPO / "tests" / "plugins" / "json_fields"

# rule_matching is "first": the specific rule comes before the one every event matches
RULES = """\
- rule: Bob acts
  desc: JSON fields of every kind in a condition
  condition: >
    jx.rec.value[/actor/login] = bob and jx.list intersects (b) and jx.int > 40
    and jx.bool = true and jx.escaped = escaped
  output: bob acted verb=%jx.str
  priority: WARNING
  source: fxt_json
- rule: Every event
  desc: JSON fields and a Python field in the output
  condition: jx.size > 0
  output: str=%jx.str int=%jx.int bool=%jx.bool list=%jx.list login=%jx.rec.value[/actor/login] size=%jx.size
  priority: INFO
  source: fxt_json
"""

BOB = {
    "s": "create",
    "n": 42,
    "b": True,
    "l": ["a", "b", 3, None],
    "a/b": {"m~n": "escaped"},
    "record": {"actor": {"login": "bob"}},
}


def run_payloads(falco: Path, build: BuildResult, tmp_path: Path, payloads: list[bytes]) -> FalcoRun:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    plugin = PluginConf(build.spec.name, build.library, None, json.dumps([p.hex() for p in payloads]))
    config = write_config(tmp_path / "falco.yaml", falco_config([plugin], rules=[rules]))
    run = run_falco(falco, config, *PLUGIN_ONLY, "-v", timeout=120)
    assert run.returncode == 0, run.describe()
    assert not run.noise(), run.describe()
    assert run.captured() == {"fxt_json": len(payloads)}, run.describe()
    return run


def test_conditions_and_outputs_read_json_fields(
    falco: Path, build_plugin_project: Callable[[Path], BuildResult], tmp_path: Path
) -> None:
    alice = {**BOB, "record": {"actor": {"login": "alice"}}, "s": {"k": [1]}, "n": -3}
    run = run_payloads(falco, build_plugin_project(FIXTURE), tmp_path, [json.dumps(p).encode() for p in (BOB, alice)])
    assert [a["rule"] for a in run.alerts] == ["Bob acts", "Every event"]
    assert run.alerts[0]["output_fields"]["jx.str"] == "create"
    assert run.alerts[1]["output_fields"] == {
        "evt.time": run.alerts[1]["output_fields"]["evt.time"],
        "jx.str": '{"k":[1]}',
        "jx.int": None,
        "jx.bool": True,
        "jx.list": ["a", "b", "3"],
        "jx.rec.value[/actor/login]": "alice",
        "jx.size": len(json.dumps(alice)),
    }


def test_a_payload_that_is_not_json_gives_no_values_and_the_next_events_are_read(
    falco: Path, build_plugin_project: Callable[[Path], BuildResult], tmp_path: Path
) -> None:
    payloads = [b"not json", b'{"s": "\xff"}', b"[" * 10_000, json.dumps(BOB).encode()]
    run = run_payloads(falco, build_plugin_project(FIXTURE), tmp_path, payloads)
    assert [a["rule"] for a in run.alerts] == ["Every event"] * 3 + ["Bob acts"]
    for alert, payload in zip(run.alerts[:3], payloads, strict=False):
        fields = alert["output_fields"]
        assert fields["jx.size"] == len(payload)  # the Python field still answers
        assert fields["jx.str"] is None and fields["jx.rec.value[/actor/login]"] is None
