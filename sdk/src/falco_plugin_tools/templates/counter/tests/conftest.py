"""Shared fixtures: the plugin built once per test session (the SDK's pytest plugin builds it)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.host import PluginHandle, PluginLibrary

PROJECT = Path(__file__).resolve().parents[1]
# The project's package importable by the tests without `pip install -e .` first.
if str(PROJECT / "src") not in sys.path:
    sys.path.insert(0, str(PROJECT / "src"))


@pytest.fixture(scope="session")
def counter(build_plugin_project: Callable[[Path], BuildResult]) -> BuildResult:
    return build_plugin_project(PROJECT)


@pytest.fixture
def counter_plugin(counter: BuildResult) -> Iterator[PluginHandle]:
    """The plugin loaded and initialised in the SDK's Python host, which checks it as Falco's libsinsp does."""
    with PluginLibrary.load(counter.library) as lib, lib.init('{"step": 2}') as plugin:
        yield plugin
