"""Shared fixtures: dummy_py built once per test session, driven by the C host."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from falco_plugin.build import BuildResult

PROJECT = Path(__file__).resolve().parents[1]
EVENT_LINE = re.compile(r"^evt (\d+)(.*)$")
FIELD_VALUE = re.compile(r" (\S+?)=(<error: [^>]*>|\S+)")


@dataclass
class Run:
    """What the C host printed for one run of the plugin."""

    proc: subprocess.CompletedProcess[str]
    events: list[dict[str, str]]

    @property
    def ok(self) -> bool:
        return self.proc.returncode == 0


@pytest.fixture(scope="session")
def dummy(build_plugin_project: Callable[[Path], BuildResult]) -> BuildResult:
    return build_plugin_project(PROJECT)


@pytest.fixture(scope="session")
def run_dummy(dummy: BuildResult, run_chost: Callable[..., subprocess.CompletedProcess[str]]) -> Callable[..., Run]:
    def run(*, config: str = "", params: str = "", fields: str = "dummy.value", n: int = -1) -> Run:
        proc = run_chost(dummy.library, "--config", config, "--open", params, "--fields", fields, "-n", str(n))
        events = []
        for line in proc.stdout.splitlines():
            m = EVENT_LINE.match(line)
            if m:
                pairs = dict(FIELD_VALUE.findall(m.group(2)))
                events.append({"num": m.group(1), **pairs})
        return Run(proc, events)

    return run
