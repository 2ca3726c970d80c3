"""Paths as people type them (issue 17): every path argument of every command is relative to the current directory.

``Path("./libx.so")`` is ``"libx.so"``, which dlopen looks up in the system's
library directories: the commands that load a library must load the file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from falco_plugin_tools import cli
from falco_plugin_tools.build import build_plugin

DUMMY = Path(__file__).resolve().parents[2] / "plugins" / "dummy"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of plugins/dummy, built in place (lib<name>.so beside its pyproject.toml)."""
    dest = tmp_path_factory.mktemp("paths") / "dummy"
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "src", "rules"):
        (shutil.copytree if (DUMMY / name).is_dir() else shutil.copy)(DUMMY / name, dest / name)
    build_plugin(dest, dest)
    return dest


@pytest.mark.parametrize("typed", ["libdummy_py.so", "./libdummy_py.so"])
def test_info_and_run_load_the_library_in_the_current_directory(
    project: Path, typed: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    assert cli.main(["info", typed]) == 0, capsys.readouterr().err
    assert "Name: dummy_py" in capsys.readouterr().out
    assert cli.main(["run", typed, "-n", "2", "--fields", "dummy.value"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.count("dummy.value=") == 2


def test_build_and_package_take_the_current_directory_as_dot(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    assert cli.main(["build", "."]) == 0, capsys.readouterr().err
    assert cli.main(["package", ".", "--no-standalone", "--out", "dist"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "dist/dummy_py-0.1.0-linux-" in out and (project / "dist" / "index.yaml").is_file()


def test_a_missing_capture_file_is_named_not_a_traceback(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    assert cli.main(["run", "libdummy_py.so", "--capture", "missing.scap"]) == 1
    assert "error: missing.scap: No such file or directory" in capsys.readouterr().err


def test_package_writes_its_index_even_when_every_project_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    assert cli.main(["package", "empty", "--out", "dist"]) == 1
    err = capsys.readouterr().err
    assert "no library built in" in err and "Traceback" not in err
