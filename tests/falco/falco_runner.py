"""Run the real Falco on our plugin libraries: find it, write a complete config, run it, read its output.

Falco is found through the ``FALCO`` environment variable (the path of the
binary) or, failing that, at ``<repo>/../shared/realhost/falco``. The build
there has no default ``falco.yaml``, no default rules and no drivers, so every
run gets a complete config written here: plugin sources only
(``engine.kind: nodriver``, run with ``--disable-source syscall`` so that
Falco ends with the plugins' streams), stdout output, logs on stderr.

Used by the tests in this folder and by the Falco benchmarks in ``bench/``.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
REALHOST = REPO.parent / "shared" / "realhost"
DUMMY_C = REALHOST / "libdummy_c.so"
"""Upstream's C++ ``dummy_c`` plugin (id 4, source ``dummy_c``), the reference for comparisons."""


def plugin_projects() -> list[Path]:
    """Every plugin project of ``plugins/``, discovered, so that a new one is covered with no change here."""
    projects = []
    for pyproject in sorted(REPO.glob("plugins/*/pyproject.toml")):
        if "falco-plugin" in tomllib.loads(pyproject.read_text()).get("tool", {}):
            projects.append(pyproject.parent)
    return projects


PLUGIN_ONLY = ("--disable-source", "syscall")
"""Without it Falco also runs the syscall source, which never ends (nodriver) or needs a kernel driver."""

# What must never reach Falco's stderr from a Python plugin: the SDK turns every
# exception into an error code and keeps tracebacks at debug level.
_NOISE = re.compile(r"Traceback|(Error|Exception|Warning)\b|\bFile \"|(?i:python)")
_CAPTURED = re.compile(r"^\((?P<source>[^)]+)\) Elapsed time: (?P<secs>[0-9.]+), Captured Events: (?P<n>\d+)", re.M)


def find_falco() -> Path | None:
    """The Falco binary to test with, or None when there is none."""
    configured = os.environ.get("FALCO")
    candidate = Path(configured) if configured else REALHOST / "falco"
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def not_found_reason() -> str:
    """Why :func:`find_falco` found nothing (a pytest skip reason)."""
    configured = os.environ.get("FALCO")
    if configured:
        return f"real Falco not found: FALCO={configured} is not an executable file"
    return f"real Falco not found: set FALCO to the path of a falco binary (default {REALHOST / 'falco'} is absent)"


@dataclass(frozen=True)
class PluginConf:
    """One entry of the config's ``plugins`` list."""

    name: str
    library: Path
    init_config: Mapping[str, Any] | str | None = None
    open_params: str | None = None

    def to_yaml(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "library_path": str(self.library)}
        if self.init_config is not None:
            entry["init_config"] = self.init_config
        if self.open_params is not None:
            entry["open_params"] = self.open_params
        return entry


def falco_config(
    plugins: Sequence[PluginConf], *, rules: Sequence[Path] = (), json_output: bool = True, **extra: Any
) -> dict[str, Any]:
    """A complete config for a Falco that runs plugin sources only."""
    return {
        "engine": {"kind": "nodriver"},
        "plugins": [p.to_yaml() for p in plugins],
        "load_plugins": [p.name for p in plugins],
        "rules_files": [str(r) for r in rules],
        "json_output": json_output,
        "json_include_output_property": True,
        "stdout_output": {"enabled": True},
        "log_stderr": True,
        "log_syslog": False,
        "log_level": "info",
        "watch_config_files": False,
        **extra,
    }


def replay_engine(capture: Path) -> dict[str, Any]:
    """The ``engine`` of a Falco that replays ``capture`` (for :func:`falco_config`'s ``engine=``)."""
    return {"kind": "replay", "replay": {"capture_file": str(capture)}}


def write_config(path: Path, config: Mapping[str, Any]) -> Path:
    """``config`` as YAML (JSON is YAML, and needs no escaping of open params)."""
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


@dataclass
class FalcoRun:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float = 0.0
    """Wall-clock time of the whole process."""
    cpu_seconds: float = 0.0
    """User + system CPU time of the whole process (all its threads)."""
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # json_output: one JSON object a line; the summary lines are plain text
        self.alerts = [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    def captured(self) -> dict[str, int]:
        """Events read per source, as Falco prints them with ``-v``."""
        return {m["source"]: int(m["n"]) for m in _CAPTURED.finditer(self.stderr)}

    def noise(self) -> list[str]:
        """stderr lines that betray a Python error, traceback or warning."""
        return [line for line in self.stderr.splitlines() if _NOISE.search(line)]

    def describe(self) -> str:
        return f"$ {' '.join(self.args)}\nexit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run_falco(
    falco: Path,
    config: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> FalcoRun:
    """Falco with ``-c config`` in an empty environment (Falco and our plugins need no variable)."""
    cmd = [str(falco), "-c", str(config), *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(env or {}), timeout=timeout, cwd=cwd)
    wall = time.perf_counter() - start
    # children's usage grows by Falco's alone when runs are sequential (as in bench/falco.py)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return FalcoRun(cmd, proc.returncode, proc.stdout, proc.stderr, wall, cpu)


def best_interleaved(runs: Sequence[Callable[[], float]], repeat: int) -> list[float]:
    """The least of ``repeat`` timings of each run (a benchmark's best of N), the runs interleaved
    so that a busy moment of a shared machine falls on all of them alike."""
    best = [float("inf")] * len(runs)
    for _ in range(repeat):
        for i, run in enumerate(runs):
            best[i] = min(best[i], run())
    return best
