"""``falco-plugin package``: archives that load elsewhere, a rules archive, and falcoctl's index."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from falco_plugin_tools import cli
from falco_plugin_tools.package import Artifact, index_entries, package_plugin
from falco_plugin_tools.registry import BuiltFacts, LibraryError, read_library

ROOT = Path(__file__).resolve().parents[2]
DUMMY = ROOT / "plugins" / "dummy"
ARCH = platform.machine()
INDEX_KEYS = [
    "name",
    "type",
    "registry",
    "repository",
    "description",
    "home",
    "keywords",
    "license",
    "maintainers",
    "sources",
]


@pytest.fixture(scope="module")
def dummy_facts(dummy_library: Path) -> BuiltFacts:
    return read_library(dummy_library)


@pytest.fixture(scope="module")
def packaged(dummy_library: Path, dummy_facts: BuiltFacts, tmp_path_factory: pytest.TempPathFactory) -> list[Artifact]:
    return package_plugin(DUMMY, dummy_library, dummy_facts, tmp_path_factory.mktemp("dist"))


def members(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return tar.getnames()


def test_a_plugin_archive_and_a_rules_archive_are_named_by_version(packaged: list[Artifact]) -> None:
    assert [(a.name, a.kind, a.path.name) for a in packaged] == [
        ("dummy_py", "plugin", f"dummy_py-0.1.0-linux-{ARCH}.tar.gz"),
        ("dummy_py-rules", "rulesfile", "dummy_py-rules-0.1.0.tar.gz"),
    ]


def test_the_plugin_archive_holds_the_library_and_its_site_dir(packaged: list[Artifact]) -> None:
    names = members(packaged[0].path)
    assert names[0] == "libdummy_py.so"
    assert "libdummy_py.site/dummy_py/plugin.py" in names
    assert "libdummy_py.site/falco_plugin/_internal/runtime.py" in names
    assert all(n == "libdummy_py.so" or n.startswith("libdummy_py.site") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_rules_archive_holds_the_rules_files_at_its_top(packaged: list[Artifact]) -> None:
    assert members(packaged[1].path) == ["dummy_py_rules.yaml"]


def test_an_unpacked_archive_loads_and_runs_elsewhere(
    packaged: list[Artifact], tmp_path: Path, run_chost: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    elsewhere = tmp_path / "usr" / "share" / "falco" / "plugins"
    elsewhere.mkdir(parents=True)
    with tarfile.open(packaged[0].path) as tar:
        tar.extractall(elsewhere, filter="data")
    # an empty environment, as Falco starts plugins: only the archive's files are there to use
    proc = run_chost(elsewhere / "libdummy_py.so", "--open", '{"maxEvents": 3}', "--fields", "dummy.value", "-n", "3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("plugin dummy_py 0.1.0")
    assert proc.stdout.count("\nevt ") == 3
    # and in the SDK's Python host, in a process of its own
    run = [sys.executable, "-m", "falco_plugin_tools.cli", "run", str(elsewhere / "libdummy_py.so")]
    proc = subprocess.run(
        [*run, "--open-params", '{"maxEvents": 3}', "--fields", "dummy.value", "-n", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("dummy.value=") == 3


def test_archives_are_reproducible(
    packaged: list[Artifact], dummy_library: Path, dummy_facts: BuiltFacts, tmp_path: Path
) -> None:
    again = package_plugin(DUMMY, dummy_library, dummy_facts, tmp_path)
    assert [a.path.read_bytes() for a in again] == [a.path.read_bytes() for a in packaged]


def test_a_plugin_without_rules_gets_no_rules_archive(
    dummy_library: Path, dummy_facts: BuiltFacts, tmp_path: Path
) -> None:
    project = tmp_path / "norules"
    project.mkdir()
    made = package_plugin(project, dummy_library, dummy_facts, tmp_path / "dist")
    assert [a.kind for a in made] == ["plugin"]


def test_a_library_without_its_site_dir_is_refused(
    dummy_library: Path, dummy_facts: BuiltFacts, tmp_path: Path
) -> None:
    lonely = tmp_path / dummy_library.name
    shutil.copy(dummy_library, lonely)
    with pytest.raises(LibraryError, match=r"libdummy_py\.site is missing"):
        package_plugin(DUMMY, lonely, dummy_facts, tmp_path / "dist")


def test_index_entries_use_falcoctls_format(packaged: list[Artifact]) -> None:
    entry = {
        "name": "dummy_py",
        "description": "Reference plugin",
        "keywords": ["dummy"],
        "url": "plugins/dummy",
        "rules_url": "plugins/dummy/rules",
        "license": "Apache-2.0",
        "maintainers": [{"name": "Someone", "email": "someone@example.com"}],
    }
    plugin, rules = index_entries(
        packaged,
        {"dummy_py": entry},
        oci_registry="ghcr.io",
        oci_repository="acme/plugins",
        home_url="https://github.com/acme/plugins/tree/main",
    )
    assert list(plugin) == INDEX_KEYS and list(rules) == INDEX_KEYS
    assert plugin == {
        "name": "dummy_py",
        "type": "plugin",
        "registry": "ghcr.io",
        "repository": "acme/plugins/plugin/dummy_py",
        "description": "Reference plugin",
        "home": "https://github.com/acme/plugins/tree/main/plugins/dummy",
        "keywords": ["dummy", "dummy_py"],
        "license": "Apache-2.0",
        "maintainers": [{"email": "someone@example.com", "name": "Someone"}],
        "sources": ["https://github.com/acme/plugins/tree/main/plugins/dummy"],
    }
    assert (rules["name"], rules["type"], rules["repository"]) == (
        "dummy_py-rules",
        "rulesfile",
        "acme/plugins/ruleset/dummy_py",
    )
    assert rules["sources"] == ["https://github.com/acme/plugins/tree/main/plugins/dummy/rules"]
    assert rules["keywords"] == ["dummy", "dummy_py-rules"]


def test_cli_package_writes_archives_and_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dist"
    code = cli.main(
        ["package", str(DUMMY), "--build", "--out", str(out), "--registry", str(ROOT / "registry" / "plugins.yaml")]
    )
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [
        f"dummy_py-0.1.0-linux-{ARCH}.tar.gz",
        "dummy_py-rules-0.1.0.tar.gz",
        "index.yaml",
    ]
    index = yaml.safe_load((out / "index.yaml").read_text())
    assert [(e["name"], e["type"]) for e in index] == [("dummy_py", "plugin"), ("dummy_py-rules", "rulesfile")]
    assert index[0]["description"] == "Reference plugin for educational purposes, written in Python"
