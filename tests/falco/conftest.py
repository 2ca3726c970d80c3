"""Fixtures of the tests in the real Falco: the binary, and the plugins of ``plugins/`` built once per session."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools.build import BuildResult
from falco_runner import REPO, find_falco, not_found_reason


@pytest.fixture(scope="session")
def falco() -> Path:
    found = find_falco()
    if found is None:
        pytest.skip(not_found_reason())
    # present but unable to start (its Debian runtime libraries missing) is a broken setup, not a skip
    proc = subprocess.run([str(found), "--version"], capture_output=True, text=True, env={}, timeout=60)
    if proc.returncode != 0 or "Falco version" not in proc.stdout:
        installer = found.parent / "install-runtime"
        hint = f"; run {installer} as root (as .ci/run does)" if installer.exists() else ""
        pytest.fail(f"{found} cannot run (exit {proc.returncode}): {proc.stderr.strip()}{hint}")
    return found


@pytest.fixture(scope="session")
def plugin_build(build_plugin_project: Callable[[str | Path], BuildResult]) -> Callable[[str], BuildResult]:
    """``plugin_build("dummy")``: the session build of ``plugins/dummy`` (as ``nox -s tests`` builds it too)."""

    def get(folder: str) -> BuildResult:
        return build_plugin_project(REPO / "plugins" / folder)

    return get
