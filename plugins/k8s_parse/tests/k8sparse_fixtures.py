"""Shared fixtures: the loopback API server, the built library driven through the SDK's host.

A pytest plugin that each test module loads with ``pytest_plugins`` rather
than a ``conftest.py``, so that helpers of two plugins never shadow each other.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.host import PluginHandle, PluginLibrary
from falco_plugin_tools.host.tables import TableRegistry, threads_table
from k8sparse_kit import FAST, FakeKube, Node, TlsFiles, make_tls_files

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    server = FakeKube().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_kube(tls_files: TlsFiles) -> Iterator[FakeKube]:
    server = FakeKube(tls=tls_files).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def k8s_lib(build_plugin_project: Callable[[Path], BuildResult]) -> BuildResult:
    return build_plugin_project(PROJECT)


@pytest.fixture
def node(k8s_lib: BuildResult) -> Iterator[Callable[..., Node]]:
    """``node(config)``: the built plugin initialised with ``config`` (fast retries) and a threads table."""
    opened: list[tuple[PluginLibrary, PluginHandle]] = []

    def make(config: dict[str, Any] | None = None, *, fast: bool = True) -> Node:
        registry = TableRegistry(threads_table())
        lib = PluginLibrary.load(k8s_lib.library)
        plugin = lib.init(json.dumps({**(FAST if fast else {}), **(config or {})}), tables=registry)
        opened.append((lib, plugin))
        return Node(plugin, registry)

    yield make
    for lib, plugin in reversed(opened):
        plugin.destroy()  # stops async events first, as sinsp does at close
        lib.close()
