"""Shared fixtures: dummy_py built once per test session, driven by the C host."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dummy_chost import Run, parse
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.host import PluginHandle, PluginLibrary

PROJECT = Path(__file__).resolve().parents[1]
# The project's own package importable by the test modules without `pip install -e`
# (a copy made by `falco-plugin new` is tested right away); an installed copy is the same source.
if str(PROJECT / "src") not in sys.path:
    sys.path.insert(0, str(PROJECT / "src"))


@pytest.fixture(scope="session")
def dummy(build_plugin_project: Callable[[Path], BuildResult]) -> BuildResult:
    return build_plugin_project(PROJECT)


@pytest.fixture
def dummy_plugin(dummy: BuildResult) -> Iterator[PluginHandle]:
    """dummy_py initialised in the SDK's Python host, without jitter."""
    with PluginLibrary.load(dummy.library) as lib, lib.init('{"jitter": 0}') as plugin:
        yield plugin


@pytest.fixture(scope="session")
def run_dummy(dummy: BuildResult, run_chost: Callable[..., subprocess.CompletedProcess[str]]) -> Callable[..., Run]:
    def run(*, config: str = "", params: str = "", fields: str = "dummy.value", n: int = -1) -> Run:
        return parse(run_chost(dummy.library, "--config", config, "--open", params, "--fields", fields, "-n", str(n)))

    return run
