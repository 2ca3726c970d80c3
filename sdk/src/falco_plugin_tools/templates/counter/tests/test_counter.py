"""The counter plugin, loaded the way Falco loads it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.host import PluginHandle


def test_metadata_and_capabilities(counter_plugin: PluginHandle) -> None:
    info = counter_plugin.info
    assert (info.name, info.event_source) == ("counter", "counter")
    assert info.capabilities == frozenset({"sourcing", "extraction"})
    assert [f.name for f in info.fields] == ["counter.value", "counter.parity"]


def test_events_grow_by_the_step_until_the_count(counter_plugin: PluginHandle) -> None:
    with counter_plugin.open('{"count": 3}') as capture:
        events = list(capture.events())
    assert [counter_plugin.extract(e, "counter.value") for e in events] == [2, 4, 6]
    assert [counter_plugin.extract(e, "counter.parity") for e in events] == ["even"] * 3


def test_runs_in_the_c_host_with_an_empty_environment(
    counter: BuildResult, run_chost: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    proc = run_chost(counter.library, "--open", '{"count": 200}', "--fields", "counter.value", "-n", "-1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("counter.value=") == 200


def test_the_build_writes_the_library_beside_its_site_dir(counter: BuildResult) -> None:
    assert counter.library.is_file() and Path(counter.site_dir / "counter" / "plugin.py").is_file()
