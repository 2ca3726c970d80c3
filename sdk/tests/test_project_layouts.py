"""Project layouts a plugin author may have (issue 17, items 2 and 5): each builds a plugin that starts.

src and flat layouts; a package with or without ``__init__.py`` (a namespace
package); the project not installed, installed, or installed editable by
setuptools (an import-hook ``.pth``) or hatch (a path ``.pth``). Every build is
then run in the C host with an empty environment, as Falco starts it: a site
directory that lacks the plugin's code fails there, at ``init``.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest
from falco_plugin_tools.build import BuildError, build_plugin

PLUGIN = """
from falco_plugin import Batch, EndOfStream, SourceInstance, SourcePlugin


class Inst(SourceInstance):
    def __init__(self) -> None:
        self.sent = False

    def next_batch(self) -> Batch:
        if self.sent:
            raise EndOfStream
        self.sent = True
        return [b"one", b"two"]


class P(SourcePlugin):
    name = "{name}"
    id = 999
    event_source = "{name}"

    def open(self, params: str) -> Inst:
        return Inst()
"""

HATCH = '[build-system]\nrequires = ["hatchling>=1.21"]\nbuild-backend = "hatchling.build"\n\n'
SETUPTOOLS = '[build-system]\nrequires = ["setuptools>=65"]\nbuild-backend = "setuptools.build_meta"\n\n'


def make_project(root: Path, package: str, *, layout: str, init: bool = True, backend: str = "") -> Path:
    """``root/<package>/plugin.py`` (flat) or ``root/src/<package>/plugin.py`` (src), with the minimal pyproject."""
    root.mkdir(parents=True, exist_ok=True)
    wheel = f'\n[tool.hatch.build.targets.wheel]\npackages = ["{"src/" if layout == "src" else ""}{package}"]\n'
    (root / "pyproject.toml").write_text(
        backend
        + f'[project]\nname = "{package.replace("_", "-")}"\nversion = "0.1.0"\ndependencies = ["falco-plugin-sdk"]\n\n'
        + f'[tool.falco-plugin]\nplugin = "{package}.plugin:P"\n'
        + (wheel if backend == HATCH else "")
    )
    pkg = root / ("src" if layout == "src" else "") / package
    pkg.mkdir(parents=True)
    if init:
        (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text(PLUGIN.format(name=package))
    return root


def starts(library: Path, run_chost: Callable[..., subprocess.CompletedProcess[str]]) -> str:
    """The C host's output for a whole run of ``library``; fails the test unless both events came."""
    proc = run_chost(library, "-n", "-1")
    assert proc.returncode == 0 and proc.stdout.count("evt ") == 2, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize(("layout", "init"), [("src", True), ("src", False), ("flat", True), ("flat", False)], ids=str)
def test_a_project_that_is_not_installed_builds_a_plugin_that_starts(
    tmp_path: Path, run_chost: Callable[..., subprocess.CompletedProcess[str]], layout: str, init: bool
) -> None:
    package = f"fxt_layout_{layout}_{'pkg' if init else 'ns'}"
    project = make_project(tmp_path / "p", package, layout=layout, init=init)
    result = build_plugin(project, tmp_path / "out")
    assert (result.site_dir / package / "plugin.py").is_file()
    starts(result.library, run_chost)


def test_two_projects_of_one_package_name_each_build_their_own_code(tmp_path: Path) -> None:
    """In one process (a test session builds many projects), the second build does not reuse the first's module."""
    first = make_project(tmp_path / "a", "fxt_layout_same", layout="src")
    second = make_project(tmp_path / "b", "fxt_layout_same", layout="flat")
    (second / "fxt_layout_same" / "plugin.py").write_text(PLUGIN.format(name="fxt_layout_other"))
    assert build_plugin(first, tmp_path / "out_a").spec.name == "fxt_layout_same"
    assert build_plugin(second, tmp_path / "out_b").spec.name == "fxt_layout_other"


# -- installed, in a virtual environment of its own (this one's packages visible) ------------------


@pytest.fixture
def env_python(tmp_path: Path) -> Path:
    """A fresh venv that sees this environment's packages (the SDK, pip's backends come from the index)."""
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    (python,) = (target / "lib").glob("python3.*/site-packages")
    ours = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    # addsitedir, not a bare path line: our own .pth files (the SDK's editable install) must run too
    (python / "_outer.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return target / "bin" / "python"


def pip_install(python: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr


def build_in(python: Path, project: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "falco_plugin_tools.cli", "build", str(project), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=out.parent,
        timeout=300,
    )


INSTALLS = pytest.mark.parametrize(
    ("backend", "layout", "editable"),
    [
        (SETUPTOOLS, "flat", True),  # an import-hook .pth (__editable___*_finder)
        (HATCH, "src", True),  # a path .pth
        (HATCH, "src", False),
    ],
    ids=["setuptools-flat-editable", "hatch-src-editable", "hatch-src-installed"],
)
"""The ways a project gets installed: by each backend, editable or not."""


def build_ok(python: Path, project: Path, out: Path) -> None:
    """``falco-plugin build project --out out`` by ``python``, which must succeed."""
    out.mkdir()
    proc = build_in(python, project, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@INSTALLS
def test_an_installed_project_builds_a_plugin_that_starts(
    tmp_path: Path,
    env_python: Path,
    run_chost: Callable[..., subprocess.CompletedProcess[str]],
    backend: str,
    layout: str,
    editable: bool,
) -> None:
    package = f"fxt_inst_{len(tmp_path.name)}_{layout}_{int(editable)}"
    project = make_project(tmp_path / "p", package, layout=layout, backend=backend)
    pip_install(env_python, *(["-e"] if editable else []), str(project))
    out = tmp_path / "out"
    build_ok(env_python, project, out)
    assert (out / f"lib{package}.site" / package / "plugin.py").is_file()
    starts(out / f"lib{package}.so", run_chost)


@INSTALLS
def test_a_copy_of_an_installed_project_builds_the_copys_own_code(
    tmp_path: Path,
    env_python: Path,
    run_chost: Callable[..., subprocess.CompletedProcess[str]],
    backend: str,
    layout: str,
    editable: bool,
) -> None:
    """A reference plugin copied and changed, in an environment where the original is installed:
    the copy's code ships, not the installed original's (the old build shipped the original)."""
    package = f"fxt_copy_{layout}_{int(editable)}"
    original = make_project(tmp_path / "original", package, layout=layout, backend=backend)
    pip_install(env_python, *(["-e"] if editable else []), str(original))
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    (copy / ("src" if layout == "src" else "") / package / "plugin.py").write_text(
        PLUGIN.format(name=f"{package}_changed")
    )
    out = tmp_path / "out"
    build_ok(env_python, copy, out)
    assert f"{package}_changed" in (out / f"lib{package}_changed.site" / package / "plugin.py").read_text()
    starts(out / f"lib{package}_changed.so", run_chost)


@pytest.mark.parametrize("original_init", [True, False], ids=["package", "namespace"])
def test_a_copy_builds_its_own_package_whatever_else_answers_for_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, original_init: bool
) -> None:
    """A finder ahead of sys.path serving the original (an import hook), and a regular package of
    the name later on sys.path (which beats a namespace package of the copy in a plain import):
    neither is what gets built."""
    package = f"fxt_copy_hooked_{int(original_init)}"
    original = make_project(tmp_path / "original", package, layout="flat", init=original_init)
    copy = make_project(tmp_path / "copy", package, layout="flat", init=False)
    (copy / package / "plugin.py").write_text(PLUGIN.format(name=f"{package}_changed"))

    class Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
            if name != package:
                return None
            return importlib.util.spec_from_file_location(
                name, original / package / "__init__.py", submodule_search_locations=[str(original / package)]
            )

    monkeypatch.setattr(sys, "meta_path", [Hook(), *sys.meta_path])
    monkeypatch.setattr(sys, "path", [*sys.path, str(original)])
    try:
        result = build_plugin(copy, tmp_path / "out")
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == package]:
            del sys.modules[name]
    assert result.spec.name == f"{package}_changed"
    assert f"{package}_changed" in (result.site_dir / package / "plugin.py").read_text()


def test_an_installed_distribution_without_the_plugins_package_fails_the_build_naming_the_fix(
    tmp_path: Path, env_python: Path
) -> None:
    """setuptools leaves a namespace package out of the wheel: what the builder imported (from the project
    folder, the current directory) is not what is installed, and the build says how to fix it."""
    package = "fxt_inst_ns"
    project = make_project(tmp_path / "p", package, layout="flat", init=False, backend=SETUPTOOLS)
    (project / "setup.cfg").write_text("[options]\npackages = find:\n")
    pip_install(env_python, str(project))
    proc = subprocess.run(
        [str(env_python), "-m", "falco_plugin_tools.cli", "build", "."],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=300,
    )
    assert proc.returncode == 1
    assert f"add {package}/__init__.py" in proc.stderr, proc.stderr
    assert not list(project.glob("lib*.so"))  # no library without its site directory


def test_a_failed_site_dir_leaves_no_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from falco_plugin_tools import build
    from falco_plugin_tools.build.sitedir import SiteDirError

    def fail(*args: object, **kwargs: object) -> None:
        raise SiteDirError("planted")

    monkeypatch.setattr(build, "write_site_dir", fail)
    project = make_project(tmp_path / "p", "fxt_layout_nolib", layout="src")
    with pytest.raises(BuildError, match="planted"):
        build_plugin(project, tmp_path / "out")
    assert not list((tmp_path / "out").glob("lib*"))
