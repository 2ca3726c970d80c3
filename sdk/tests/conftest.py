"""Shared fixtures of the SDK tests.

Host tests: ``dummy_library`` is dummy_py built once per session;
``c_plugin(*flags, **strings)`` compiles the C test plugin
(``c_plugins/ctest.c``) with extra compiler flags, each keyword becoming a
macro whose value is a C string literal (``API_VERSION="4.0.0"``). Variants
are compiled once per session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.host import PluginHandle, PluginLibrary
from falco_plugin_tools.host.chost import ABI_DIR

TESTS = Path(__file__).resolve().parent
DUMMY_PROJECT = TESTS.parents[1] / "plugins" / "dummy"
C_PLUGIN_SOURCE = TESTS / "c_plugins" / "ctest.c"


@pytest.fixture(scope="session")
def dummy_library(build_plugin_project: Callable[[Path], BuildResult]) -> Path:
    return build_plugin_project(DUMMY_PROJECT).library


@pytest.fixture(scope="session")
def c_plugin(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    compiler = os.environ.get("CC") or shutil.which("cc") or "gcc"
    out_dir = tmp_path_factory.mktemp("c_plugins")
    built: dict[tuple[str, ...], Path] = {}

    def build(*flags: str, **strings: str) -> Path:
        # JSON string escapes are valid C string literal escapes.
        key = (*flags, *(f"-D{name}={json.dumps(value)}" for name, value in sorted(strings.items())))
        if key not in built:
            library = out_dir / f"libctest{len(built)}.so"
            cmd = [compiler, "-shared", "-fPIC", "-O0", "-Wall", "-I", str(ABI_DIR), *key, str(C_PLUGIN_SOURCE)]
            proc = subprocess.run([*cmd, "-o", str(library)], capture_output=True, text=True)
            if proc.returncode != 0:
                pytest.fail(f"cannot compile the C test plugin with {key}:\n{proc.stderr}")
            built[key] = library
        return built[key]

    return build


@pytest.fixture
def ctest(c_plugin: Callable[..., Path]) -> Iterator[PluginLibrary]:
    """The C test plugin in its default form, loaded."""
    with PluginLibrary.load(c_plugin()) as lib:
        yield lib


@pytest.fixture
def ctest_handle(ctest: PluginLibrary) -> Iterator[PluginHandle]:
    with ctest.init() as handle:
        yield handle


@pytest.fixture
def dummy(dummy_library: Path) -> Iterator[PluginLibrary]:
    with PluginLibrary.load(dummy_library) as lib:
        yield lib
