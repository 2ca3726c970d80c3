"""The registry checker's data on Falco's own fields (``falco_plugin_tools/registry/fields.yaml``)
is what the real Falco lists: the field rules hold our plugins against the real filterchecks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.registry.fields import load_known
from falco_runner import PluginConf, falco_config, run_falco, write_config


def listed(falco: Path, config: Path, source: str) -> list[str]:
    run = run_falco(falco, config, f"--list={source}", "-N", timeout=120)
    assert run.returncode == 0, run.describe()
    return [line for line in run.stdout.splitlines() if line.strip()]


def test_falcos_own_syscall_fields_are_those_of_the_data(falco: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "falco.yaml", falco_config([]))
    assert listed(falco, config, "syscall") == load_known()["falco"]["syscall"]


def test_falcos_own_fields_of_a_plugin_source_are_those_of_the_data(
    falco: Path, plugin_build: Callable[[str], BuildResult], tmp_path: Path
) -> None:
    dummy = plugin_build("dummy")
    config = write_config(tmp_path / "falco.yaml", falco_config([PluginConf(dummy.spec.name, dummy.library)]))
    fields = listed(falco, config, "dummy_py")
    plugin_own = {f.name for f in dummy.spec.fields}
    assert [f for f in fields if f not in plugin_own] == load_known()["falco"]["plugin_sources"]
