"""Shared fixtures of the cross-plugin and host-level tests.

Fixture plugin projects live in ``tests/plugins/<name>/`` (never installed:
the builder imports them from their ``src/``); ``built(name)`` builds one once
per test session (``"dummy"`` is the reference plugin in ``plugins/dummy``).
``loaded(name)`` also loads it into this process through the host's raw layer
(:mod:`falco_plugin_tools.host.raw`: every ``plugin_*`` call by hand, nothing checked).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.host.raw import Library
from harness import Built, project_dir


@pytest.fixture(scope="session")
def built(build_plugin_project: Callable[[str | Path], BuildResult]) -> Built:
    def get(name: str) -> BuildResult:
        return build_plugin_project(project_dir(name))

    return get


@pytest.fixture(scope="session")
def loaded(built: Built) -> Callable[[str], Library]:
    cache: dict[str, Library] = {}

    def get(name: str) -> Library:
        if name not in cache:
            cache[name] = Library.open(built(name).library)
        return cache[name]

    return get
