"""``falco-plugin new``: a project copied from plugins/dummy that builds, passes its tests and is registered."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import falco_plugin_tools
import pytest
from falco_plugin_tools import cli
from falco_plugin_tools.build import BuildResult, build_plugin
from falco_plugin_tools.docs import update_readme
from falco_plugin_tools.registry import check, load_file, read_library
from falco_plugin_tools.registry.model import plugin_entries
from falco_plugin_tools.scaffold import (
    TEMPLATES,
    TEMPLATES_DIR,
    ScaffoldError,
    ScaffoldResult,
    reference_identity,
    scaffold,
)

ROOT = Path(__file__).resolve().parents[2]
DUMMY = ROOT / "plugins" / "dummy"


def make_repo(root: Path) -> Path:
    """A repository with this one's registry and no plugin folders."""
    registry = root / "registry" / "plugins.yaml"
    registry.parent.mkdir(parents=True)
    shutil.copy(ROOT / "registry" / "plugins.yaml", registry)
    return registry


@dataclass
class Scaffolded:
    result: ScaffoldResult
    registry: Path
    build: BuildResult


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Scaffolded:
    root = tmp_path_factory.mktemp("repo")
    registry = make_repo(root)
    result = scaffold(DUMMY, "acme-logs", registry=registry)
    return Scaffolded(result, registry, build_plugin(result.project, tmp_path_factory.mktemp("acme-build")))


def test_the_new_project_builds_under_its_new_identity(acme: Scaffolded) -> None:
    spec = acme.build.spec
    assert spec.sourcing is not None
    assert (spec.name, spec.sourcing.event_source, spec.sourcing.id) == ("acme-logs", "acme_logs", 31)
    assert acme.build.library.name == "libacme-logs.so"
    assert [f.name for f in spec.fields] == ["acme_logs.value", "acme_logs.strvalue", "acme_logs.divisible"]


@pytest.mark.parametrize(("name", "reference"), [("counter", DUMMY), ("poller", ROOT / "plugins" / "http_poll")])
def test_the_printed_next_steps_work_as_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str, reference: Path
) -> None:
    """Run verbatim in a fresh copy, the next steps `falco-plugin new` prints build it and pass its tests.

    Nothing is installed: the copied tests find the new package in the project's src/ (issue 11).
    """
    registry = make_repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["new", name, "--from", str(reference), "--registry", str(registry)]) == 0
    steps = printed_steps(capsys.readouterr().out)
    assert steps == [f"cd plugins/{name}", "falco-plugin build .", "pytest tests"]  # pytest is installed here
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PYTEST_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    not_installed = subprocess.run([sys.executable, "-c", f"import {name}"], env=env, cwd="/", capture_output=True)
    assert not_installed.returncode != 0  # else the steps below would not show anything
    proc = subprocess.run(
        ["bash", "-c", " && ".join(steps)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"lib{name}.so" in proc.stdout
    assert " passed" in proc.stdout and "failed" not in proc.stdout and "error" not in proc.stdout.lower()


def test_next_steps_name_a_project_outside_the_current_directory_absolutely(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = make_repo(tmp_path / "repo")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert cli.main(["new", "far", "--from", str(DUMMY), "--registry", str(registry)]) == 0
    project = (tmp_path / "repo" / "plugins" / "far").resolve()
    assert printed_steps(capsys.readouterr().out)[0] == f"cd {project}"


def printed_steps(out: str) -> list[str]:
    """The commands `falco-plugin new` prints after ``next:``, one an indented line."""
    lines = out.splitlines()
    return [line.strip() for line in lines[lines.index("next:") + 1 :]]


def test_outside_a_repository_new_starts_from_the_shipped_template_with_the_development_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No checkout, no registry, no --from, no --id (issue 17): a project in the current directory, id 999, said so."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["new", "acme"]) == 0
    out = capsys.readouterr().out
    assert f"created {tmp_path.resolve() / 'acme'} from the counter template" in out
    assert "plugin acme, id 999, source acme, package acme, distribution falco-plugin-acme" in out
    assert "id 999 is the development id (no registry here)" in out
    run = "falco-plugin run ./libacme.so -n 5"
    assert printed_steps(out) == ["cd acme", "falco-plugin build .", run, "pytest tests"]
    ident, _ = reference_identity(tmp_path / "acme")
    assert (ident.name, ident.id, ident.source, ident.field_prefix) == ("acme", 999, "acme", "acme")
    assert not (tmp_path / "registry").exists() and not (tmp_path / "plugins").exists()


def test_the_templates_ship_with_the_tooling_never_in_a_plugin(dummy_library: Path) -> None:
    assert TEMPLATES_DIR.parent == Path(falco_plugin_tools.__file__).parent
    assert all((TEMPLATES_DIR / name / "pyproject.toml").is_file() for name in TEMPLATES)
    site = dummy_library.with_suffix(".site")
    assert not list(site.rglob("templates")) and not (site / "falco_plugin_tools").exists()


def test_an_unknown_template_names_the_templates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["new", "acme", "--from", "countr", "--dest", str(tmp_path / "acme")]) == 1
    assert "countr is not a plugin project (no pyproject.toml); templates: counter" in capsys.readouterr().err


def test_a_project_named_like_the_template_builds_its_own_code(tmp_path: Path) -> None:
    """The template's modules are forgotten once read: `counter` from the counter template is the copy."""
    result = scaffold(None, "counter", dest=tmp_path / "counter", source="mine")
    assert result.identity.source == "mine"
    spec = build_plugin(result.project, tmp_path / "out").spec
    assert spec.sourcing is not None and spec.sourcing.event_source == "mine"


def project_files(project: Path) -> list[str]:
    skip = ("lib", "__pycache__", ".pytest_cache")
    return sorted(
        p.relative_to(project).as_posix()
        for p in project.rglob("*")
        if p.is_file() and not any(part.startswith(skip) for part in p.relative_to(project).parts)
    )


def test_no_identity_of_the_reference_is_left(acme: Scaffolded) -> None:
    project = acme.result.project
    files = project_files(project)
    # every file of the reference but its record of its last release (the new plugin has none)
    assert sorted(files) == sorted(
        f.replace("dummy_py", "acme_logs").replace("dummy", "acme_logs")
        for f in project_files(DUMMY)
        if f != "release-facts.json"
    )
    assert {"src/acme_logs/plugin.py", "rules/acme_logs_rules.yaml", "tests/test_acme_logs.py"} <= set(files)
    assert [f for f in files if "dummy" in f] == []
    for name in files:
        text = (project / name).read_text()
        for old in ("dummy_py", "falco-plugin-dummy-py", "DummyPlugin", "DummyConfig", "dummy.value", "plugins/dummy"):
            assert old not in text, f"{old} in {name}"
    readme = (project / "README.md").read_text()
    assert "| id | 31 |" in readme and "| event source | `acme_logs` |" in readme
    assert "library_path: /usr/share/falco/plugins/libacme-logs.so" in readme


def test_the_plugin_is_registered_with_the_next_free_id(acme: Scaffolded) -> None:
    entries = {e["name"]: e for e in plugin_entries(load_file(acme.registry))}
    entry = entries["acme-logs"]
    assert entry["url"] == "plugins/acme-logs"
    assert entry["rules_url"] == "plugins/acme-logs/rules"
    assert entry["capabilities"]["sourcing"] == {"supported": True, "id": 31, "source": "acme_logs"}
    assert list(entries)[-1] == "acme-logs"


def test_the_new_entry_matches_the_built_library(acme: Scaffolded) -> None:
    facts = read_library(acme.build.library)
    findings = check(load_file(acme.registry), root=acme.registry.parents[1], built={"plugins/acme-logs": facts})
    # the copied registry's other hosted entries have no folder in this repository: only ours matter
    assert [f for f in findings if f.entry in ("acme-logs", "plugins/acme-logs")] == []


def test_the_new_readmes_generated_tables_match_the_new_library(acme: Scaffolded) -> None:
    update = update_readme(acme.result.project, read_library(acme.build.library))
    assert not update.changed, update.diff()


def test_id_and_source_can_be_chosen_and_registration_skipped(tmp_path: Path) -> None:
    result = scaffold(DUMMY, "beacon", dest=tmp_path / "beacon", plugin_id=4242, source="beacon_events", register=False)
    ident, _ = reference_identity(result.project)
    assert (ident.name, ident.id, ident.source, ident.package) == ("beacon", 4242, "beacon_events", "beacon")
    rules = (result.project / "rules" / "beacon_rules.yaml").read_text()
    assert "source: beacon_events" in rules and "name: beacon\n" in rules


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("k8saudit", {}, "already has a plugin named 'k8saudit'"),
        ("fresh", {"plugin_id": 29}, "ID 29 is already registered to dummy_py"),
        ("Bad.Name", {}, "must match"),
        ("fresh", {"source": "bad-source"}, "event source 'bad-source' must match"),
    ],
)
def test_refusals_write_nothing(tmp_path: Path, name: str, options: dict[str, object], message: str) -> None:
    registry = make_repo(tmp_path)
    before = registry.read_text()
    with pytest.raises(ScaffoldError, match=message):
        scaffold(DUMMY, name, registry=registry, **options)  # type: ignore[arg-type]
    assert registry.read_text() == before
    assert not (tmp_path / "plugins").exists()


def test_an_existing_destination_is_refused(tmp_path: Path) -> None:
    registry = make_repo(tmp_path)
    (tmp_path / "plugins" / "fresh").mkdir(parents=True)
    (tmp_path / "plugins" / "fresh" / "keep.txt").write_text("mine")
    with pytest.raises(ScaffoldError, match="already exists"):
        scaffold(DUMMY, "fresh", registry=registry)


def test_cli_new_creates_and_registers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = make_repo(tmp_path)
    code = cli.main(["new", "fresh", "--from", str(DUMMY), "--registry", str(registry), "--id", "77"])
    assert code == 0
    out = capsys.readouterr().out
    assert "plugin fresh, id 77, source fresh, package fresh, distribution falco-plugin-fresh" in out
    assert (tmp_path / "plugins" / "fresh" / "src" / "fresh" / "plugin.py").is_file()
    assert any(e["name"] == "fresh" for e in plugin_entries(load_file(registry)))


def test_cli_new_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = make_repo(tmp_path)
    assert cli.main(["new", "dummy_py", "--from", str(DUMMY), "--registry", str(registry)]) == 1
    assert "falco-plugin new: the registry already has a plugin named 'dummy_py'" in capsys.readouterr().err
