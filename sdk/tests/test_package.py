"""``falco-plugin package``: archives that load elsewhere, a rules archive, and falcoctl's index."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from falco_plugin_tools import cli
from falco_plugin_tools.build import build_plugin
from falco_plugin_tools.package import Artifact, elf_arch, index_entries, package_plugin
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


# -- defaults that bite (issue 17, item 8) ---------------------------------------------------


@pytest.fixture(scope="module")
def built_dummy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of plugins/dummy built in place, not standalone (its library's RUNPATH is this machine's Python)."""
    project = tmp_path_factory.mktemp("item8") / "dummy"
    project.mkdir()
    for name in ("pyproject.toml", "src", "rules"):
        (shutil.copytree if (DUMMY / name).is_dir() else shutil.copy)(DUMMY / name, project / name)
    build_plugin(project, project)
    return project


def test_a_library_that_needs_the_build_python_is_refused_unless_asked_for(
    built_dummy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dist"
    assert cli.main(["package", str(built_dummy), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    libdir = sysconfig.get_config_var("LIBDIR")
    assert f"libdummy_py.so is not standalone: it loads only where Python lives at {libdir}" in err
    assert "Package it with --build (standalone by default), or pass --no-standalone" in err
    assert not out.exists()  # no archive, and no empty index either
    assert cli.main(["package", str(built_dummy), "--out", str(out), "--no-standalone"]) == 0
    printed = capsys.readouterr().out
    assert f"dummy_py-0.1.0-linux-{ARCH}.tar.gz (not standalone: needs the Python at {libdir})" in printed
    index = (out / "index.yaml").read_text()
    # Refused again: the index of the run that made the archive stays as it was (an empty one replaced it before).
    assert cli.main(["package", str(built_dummy), "--out", str(out)]) == 1
    assert f"no artifact made, so no index written ({out / 'index.yaml'} left as it was)" in capsys.readouterr().err
    assert (out / "index.yaml").read_text() == index and "dummy_py" in index


def test_arch_is_checked_against_the_elf_header(
    built_dummy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = "aarch64" if elf_arch(built_dummy / "libdummy_py.so") != "aarch64" else "x86_64"
    args = ["package", str(built_dummy), "--out", str(tmp_path), "--no-standalone"]
    assert cli.main([*args, "--arch", other]) == 1
    assert f"--arch {other} does not match libdummy_py.so, built for {ARCH} (its ELF header)" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.tar.gz"))
    assert cli.main([*args, "--arch", ARCH]) == 0


def unshare_works() -> bool:
    unshare = shutil.which("unshare")
    return bool(unshare) and subprocess.run([str(unshare), "-rm", "true"], capture_output=True).returncode == 0


def test_verify_hides_the_build_python_as_an_operators_machine_lacks_it(
    built_dummy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, a non-standalone archive passed verify on the machine that built it, and failed everywhere else."""
    assert cli.main(["package", str(built_dummy), "--out", str(tmp_path), "--no-standalone"]) == 0
    (archive,) = tmp_path.glob("dummy_py-0.1.0-linux-*.tar.gz")
    capsys.readouterr()
    assert cli.main(["verify", str(archive)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"FAILED {archive.name}: libdummy_py.so")
    assert f"not standalone: needs the build machine's Python ({sysconfig.get_config_var('LIBDIR')})" in out
    if unshare_works():
        assert "hidden for this run, as on a machine without it" in out
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        assert f"the Python {version} standard library is not under" in out  # what the operator would see
    else:
        assert "this result holds for this machine only" in out


def test_an_index_entry_without_description_licence_or_sources_is_warned_about(
    built_dummy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17: an index.yaml for falcoctl users written with empty fields, silently."""
    registry = tmp_path / "plugins.yaml"
    registry.write_text("plugins: []\n")
    args = ["package", str(built_dummy), "--out", str(tmp_path / "dist"), "--no-standalone"]
    assert cli.main([*args, "--registry", str(registry)]) == 0
    err = capsys.readouterr().err
    assert "warning: index entry dummy_py has no description, no license, no sources: set them" in err
    assert "warning: index entry dummy_py-rules has no description, no license, no sources" in err
    assert cli.main([*args, "--registry", str(ROOT / "registry" / "plugins.yaml")]) == 0
    assert "warning" not in capsys.readouterr().err
