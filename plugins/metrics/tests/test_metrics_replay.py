"""metrics' fields survive a capture: they read the sample the async event carries, never /proc or a counter."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fakeproc import write_proc
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.replay_check import replay_check

PROJECT = Path(__file__).resolve().parents[1]
REPO = PROJECT.parents[1]


def shared_capture() -> Path:
    for parent in REPO.parents:
        found = sorted((parent / "shared" / "captures").glob("*.scap"))
        if found:
            return found[0]
    pytest.skip("no capture in <repo>/../shared/captures")


def test_every_field_survives_a_replay_of_a_syscall_capture(
    build_plugin_project: Callable[[Path], BuildResult], tmp_path: Path
) -> None:
    library = build_plugin_project(PROJECT).library
    config = json.dumps({"proc_root": str(write_proc(tmp_path / "proc")), "interval": 0.02})
    # one sample before the capture starts: dump_state writes it first, and the replay starts from it
    check = replay_check(
        library, tmp_path / "out.scap", init_config=config, capture=shared_capture(), n=300, wait_async=1
    )
    assert check.ok, check.report()
    assert check.state_events == 1
    assert "metrics.mem.used_pct" in check.fields and "metrics.events.total" in check.fields
