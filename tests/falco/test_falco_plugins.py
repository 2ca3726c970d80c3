"""Every plugin of ``plugins/`` in the real Falco: loaded, described, its fields listed, its rules valid."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.host.loader import CAPABILITIES
from falco_runner import FalcoRun, PluginConf, falco_config, plugin_projects, run_falco, write_config

PROJECTS = plugin_projects()
RULES = [(p, r) for p in PROJECTS for r in sorted((p / "rules").glob("*.y*ml"))]


def run_alone(falco: Path, build: BuildResult, tmp_path: Path, *args: str) -> FalcoRun:
    """Falco with only this plugin loaded, with its default configuration."""
    config = write_config(tmp_path / "falco.yaml", falco_config([PluginConf(build.spec.name, build.library)]))
    run = run_falco(falco, config, *args, timeout=120)
    assert run.returncode == 0, run.describe()
    assert not run.noise(), run.describe()
    return run


def source_of(build: BuildResult) -> tuple[int, str] | None:
    """The plugin's sourcing ID and event source, when it has the sourcing capability."""
    sourcing = build.spec.sourcing
    return (sourcing.id, sourcing.event_source) if sourcing is not None else None


def plugin_block(listing: str, name: str) -> dict[str, str]:
    """The ``Key: value`` lines of one plugin in ``--list-plugins`` output (capabilities joined)."""
    blocks = re.split(r"\n\s*\n", listing)
    for i, block in enumerate(blocks):
        if re.search(rf"^Name: {re.escape(name)}$", block, re.M):
            text = block + "\n" + (blocks[i + 1] if i + 1 < len(blocks) and "Name:" not in blocks[i + 1] else "")
            info = dict(re.findall(r"^(\w+): ?(.*)$", text, re.M))
            info["Capabilities"] = "\n".join(re.findall(r"^  - (.*)$", text, re.M))
            return info
    raise AssertionError(f"{name} not in --list-plugins output:\n{listing}")


def field_lines(listing: str, field_class: str) -> list[str]:
    """The lines that start a field of one ``Field Class:`` section of ``--list`` output, in order
    (a field's name, padded to 30 columns, then its description; a name of 30 characters or more
    runs into the description with no space, so callers match names as prefixes)."""
    for section in listing.split("-------------------------------"):
        if re.search(rf"^Field Class:\s+{re.escape(field_class)}$", section, re.M):
            return re.findall(r"^[a-zA-Z_][\w.-]*.*$", section.split("\n\n", 1)[1], re.M)
    raise AssertionError(f"no field class {field_class!r} in:\n{listing}")


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_falco_loads_the_plugin_and_shows_its_metadata(
    falco: Path, plugin_build: Callable[[str], BuildResult], project: Path, tmp_path: Path
) -> None:
    build = plugin_build(project.name)
    spec = build.spec
    info = plugin_block(run_alone(falco, build, tmp_path, "--list-plugins").stdout, spec.name)
    assert (info["Version"], info["Description"], info["Contact"]) == (spec.version, spec.description, spec.contact)
    source = source_of(build)
    # Falco 0.44.1 lists every capability but capture listening (which it still uses).
    expected = [
        f"{CAPABILITIES[c]} (ID={source[0]}, source='{source[1]}')" if c == "sourcing" and source else CAPABILITIES[c]
        for c in spec.capabilities
        if c != "capture_listening"
    ]
    assert sorted(info["Capabilities"].splitlines()) == sorted(expected)


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_falco_lists_the_plugins_fields(
    falco: Path, plugin_build: Callable[[str], BuildResult], project: Path, tmp_path: Path
) -> None:
    build = plugin_build(project.name)
    spec = build.spec
    if not spec.fields:
        pytest.skip(f"{spec.name} has no fields")
    source = source_of(build)
    args = [f"--list={source[1]}"] if source else ["--list"]
    listing = run_alone(falco, build, tmp_path, *args).stdout
    lines = field_lines(listing, f"{spec.name} (plugin)")
    names = [f.name for f in spec.fields]
    assert len(lines) == len(names)
    for line, name in zip(lines, names, strict=True):
        assert line.startswith(name) and (len(name) >= 30 or line[len(name) :][:1].isspace()), (line, name)
    flat = " ".join(listing.split())
    for f in spec.fields:
        assert " ".join(f.description.split()) in flat, f.name


@pytest.mark.parametrize(("project", "rules"), RULES, ids=[f"{p.name}/{r.name}" for p, r in RULES])
def test_falco_validates_the_plugins_rules(
    falco: Path, plugin_build: Callable[[str], BuildResult], project: Path, rules: Path, tmp_path: Path
) -> None:
    run = run_alone(falco, plugin_build(project.name), tmp_path, "-V", str(rules))
    # with json_output, -V prints one result per file; warnings (an unused macro...) count as failures
    [result] = json.loads(run.stdout)["falco_load_results"]
    assert result == {
        "name": str(rules),
        "successful": True,
        "schema_valid": True,
        "errors": [],
        "warnings": [],
        "schema_warnings": [],
    }, run.describe()


def test_falco_refuses_a_rule_on_a_field_the_plugin_lacks(
    falco: Path, plugin_build: Callable[[str], BuildResult], tmp_path: Path
) -> None:
    """The validation above can fail: a condition on an unknown field of a loaded plugin is an error."""
    build = plugin_build("dummy")
    rules = tmp_path / "bad_rules.yaml"
    rules.write_text(
        "- rule: unknown field\n  desc: d\n  condition: dummy.nosuch = 1\n  output: o\n"
        "  priority: INFO\n  source: dummy_py\n"
    )
    config = write_config(tmp_path / "falco.yaml", falco_config([PluginConf(build.spec.name, build.library)]))
    run = run_falco(falco, config, "-V", str(rules))
    [result] = json.loads(run.stdout)["falco_load_results"]
    assert run.returncode != 0 and not result["successful"], run.describe()
    assert "dummy.nosuch" in json.dumps(result["errors"]), run.describe()


def test_every_plugin_is_covered() -> None:
    """The discovery finds today's reference plugins (a typo in the glob must not skip them all)."""
    assert {"dummy", "http_poll"} <= {p.name for p in PROJECTS}
    assert {(p.name, r.name) for p, r in RULES} >= {
        ("dummy", "dummy_py_rules.yaml"),
        ("http_poll", "http_poll_rules.yaml"),
    }
