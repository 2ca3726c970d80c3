"""Paths, type aliases and output parsers shared by the host-level tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from falco_plugin_tools.build import BuildResult

TESTS = Path(__file__).parent
REPO = TESTS.parent
FIXTURE_PLUGINS = TESTS / "plugins"

Built = Callable[[str], BuildResult]
"""``built(name)``: the session build of a fixture plugin (``"dummy"``: the reference plugin)."""
RunChost = Callable[..., "subprocess.CompletedProcess[str]"]
"""``run_chost(library, *args, env=None)`` from ``falco_plugin_tools.testing``."""


def project_dir(name: str) -> Path:
    return REPO / "plugins" / "dummy" if name == "dummy" else FIXTURE_PLUGINS / name


def event_lines(stdout: str) -> list[str]:
    """The ``evt ...`` lines the C host printed."""
    return [line for line in stdout.splitlines() if line.startswith("evt ")]


def field_values(stdout: str, fields: str) -> dict[str, list[str]]:
    """The values the C host printed for each field of ``fields`` (as passed to ``--fields``), in event order."""
    labels = fields.split(",")
    out: dict[str, list[str]] = {label: [] for label in labels}
    for line in event_lines(stdout):
        rest = line.split(" ", 2)[2] if line.count(" ") >= 2 else ""
        for i, label in enumerate(labels):
            assert rest.startswith(label + "="), (line, label)
            rest = rest[len(label) + 1 :]
            end = rest.find(f" {labels[i + 1]}=") if i + 1 < len(labels) else len(rest)
            out[label].append(rest[:end])
            rest = rest[end + 1 :]
    return out
