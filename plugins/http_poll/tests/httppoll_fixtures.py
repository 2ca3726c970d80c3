"""Shared fixtures: fake APIs on 127.0.0.1, the plugin driven in-process, the built library.

A pytest plugin that each test module loads with ``pytest_plugins``, rather
than a ``conftest.py``: one pytest run collects every plugin's tests, and
test helpers imported as ``conftest`` from two folders would shadow each other.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from falco_plugin_tools.build import BuildResult
from httppoll_kit import FAST, FakeApi, HostRun, Stream, TlsFiles, make_tls_files

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def api() -> Iterator[FakeApi]:
    server = FakeApi().start()
    yield server
    server.stop()


@pytest.fixture
def other_api() -> Iterator[FakeApi]:
    """A second server: another origin."""
    server = FakeApi().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_api(tls_files: TlsFiles) -> Iterator[FakeApi]:
    server = FakeApi(tls=tls_files).start()
    yield server
    server.stop()


@pytest.fixture
def open_stream() -> Iterator[Callable[..., Stream]]:
    """``open_stream(url=..., config={...}, **params)``: a plugin instance with fast retries; closed after the test."""
    streams: list[Stream] = []

    def open_(config: dict[str, Any] | None = None, **params: Any) -> Stream:
        stream = Stream({**FAST, **(config or {})}, {"interval": 0.05, **params})
        streams.append(stream)
        return stream

    yield open_
    for s in streams:
        s.close()


# -- the built library in the C host ---------------------------------------------------------


@pytest.fixture(scope="session")
def http_poll_lib(build_plugin_project: Callable[[Path], BuildResult]) -> BuildResult:
    return build_plugin_project(PROJECT)


@pytest.fixture(scope="session")
def run_host(
    http_poll_lib: BuildResult, run_chost: Callable[..., subprocess.CompletedProcess[str]]
) -> Callable[..., HostRun]:
    """Run the library in the C host; ``fields`` in order; values may contain spaces."""

    def run(
        *, config: str = "", params: str = "", fields: list[str] | None = None, env: dict[str, str] | None = None
    ) -> HostRun:
        fields = fields or ["http_poll.id"]
        proc = run_chost(
            http_poll_lib.library, "--config", config, "--open", params, "--fields", ",".join(fields),
            env=env, timeout=60,
        )  # fmt: skip
        labels = "|".join(re.escape(f) for f in fields)
        events = []
        for line in proc.stdout.splitlines():
            if line.startswith("evt "):
                parts = re.split(rf" ({labels})=", line)
                events.append(dict(zip(parts[1::2], parts[2::2], strict=True)))
        return HostRun(proc, events)

    return run
