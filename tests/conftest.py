"""Shared fixtures of the cross-plugin and host-level tests.

Fixture plugin projects live in ``tests/plugins/<name>/`` (never installed:
the builder imports them from their ``src/``); ``built(name)`` builds one once
per test session (``"dummy"`` is the reference plugin in ``plugins/dummy``).
``loaded(name)`` also loads it into this process through the host's raw layer
(:mod:`falco_plugin_tools.host.raw`: every ``plugin_*`` call by hand, nothing checked).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
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


@pytest.fixture
def closing_peer() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts each connection and closes it at once."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    done.set()
    thread.join()
    server.close()
