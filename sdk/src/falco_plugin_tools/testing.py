"""Pytest fixtures for plugin projects (loaded automatically as a pytest plugin).

* ``build_plugin_project(path)`` builds a plugin project once per test session
  into a temporary directory and returns its :class:`~falco_plugin_tools.build.BuildResult`.
* ``chost`` is the path of the C host program, compiled once per session with
  the system C compiler; ``run_chost(lib, *args)`` runs it in an empty
  environment, the way Falco would start a plugin.
* ``sinsphost`` is the path of the libsinsp host program (``sinsphost.cpp``
  linked with real libsinsp), compiled once per session and cached by the hash
  of its inputs; tests taking it are skipped, saying why, where libsinsp is not
  there to link against (see :func:`~falco_plugin_tools.host.sinsp.find_sinsp_dir`).
* ``host`` is parametrised over the SDK's three hosts, ``"python"`` (in process,
  with libsinsp's checks), ``"c"`` (the C host program) and ``"sinsp"`` (real
  libsinsp): a test taking it runs once on each, through the interface of
  :class:`~falco_plugin_tools.host.runners.Host` (``host.run(library, init_config=...,
  open_params=..., fields=[...], n=...)`` -> events with their field values or
  errors, and the failure that ended the run).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from falco_plugin_tools.build import BuildResult, build_plugin
from falco_plugin_tools.host.chost import compile_chost
from falco_plugin_tools.host.runners import CHost, Host, PythonHost, SinspHost
from falco_plugin_tools.host.sinsp import SinspUnavailableError, compile_sinsphost, find_sinsp_dir


@pytest.fixture(scope="session")
def build_plugin_project(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str | Path], BuildResult]:
    cache: dict[Path, BuildResult] = {}

    def build(project: str | Path) -> BuildResult:
        key = Path(project).resolve()
        if key not in cache:
            cache[key] = build_plugin(key, tmp_path_factory.mktemp(key.name))
        return cache[key]

    return build


@pytest.fixture(scope="session")
def chost(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_chost(tmp_path_factory.mktemp("chost"))


@pytest.fixture(scope="session")
def run_chost(chost: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(
        library: str | Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(chost), str(library), *args],
            capture_output=True,
            text=True,
            env=env if env is not None else {},
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def sinsphost(request: pytest.FixtureRequest) -> Path:
    try:
        return compile_sinsphost(find_sinsp_dir(request.config.rootpath))
    except SinspUnavailableError as exc:
        pytest.skip(f"libsinsp host unavailable: {exc}")


@pytest.fixture(params=["python", "c", "sinsp"])
def host(request: pytest.FixtureRequest) -> Host:
    if request.param == "c":
        return CHost(request.getfixturevalue("chost"))
    if request.param == "sinsp":
        return SinspHost(request.getfixturevalue("sinsphost"))
    return PythonHost()


__all__: Sequence[str] = ["compile_chost", "build_plugin_project", "chost", "run_chost", "sinsphost", "host"]
