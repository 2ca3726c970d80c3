"""sdk/README.md's async events and metrics examples build and behave as the text says."""

from __future__ import annotations

import queue
import re
from pathlib import Path

from falco_plugin_tools.build import build_plugin
from falco_plugin_tools.host import HostEvent, PluginLibrary
from harness import REPO


def section_code(title: str) -> str:
    text = (REPO / "sdk" / "README.md").read_text()
    section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"^```python\n(.*?)^```", section, flags=re.S | re.M)
    return code


def project(tmp_path: Path, name: str, code: str, cls: str) -> Path:
    package = tmp_path / name / "src" / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(code)
    (tmp_path / name / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1.0"\ndependencies = ["falco-plugin-sdk"]\n\n'
        f'[tool.falco-plugin]\nplugin = "{name}.plugin:{cls}"\n'
    )
    return tmp_path / name


def test_the_async_example_emits_from_its_worker_and_dumps_its_state(tmp_path: Path) -> None:
    built = build_plugin(project(tmp_path, "watcher", section_code("Async events"), "Watcher"))
    with PluginLibrary.load(built.library) as lib, lib.init() as plugin:
        assert lib.info.capabilities == {"sourcing", "async"}
        events = plugin.async_events
        events.start()
        got = [events.get(timeout=30) for _ in range(3)]
        events.stop()
        assert [(e.name, e.payload) for e in got] == [("change", b"change %d" % i) for i in (1, 2, 3)]
        assert [e.payload for e in events.dump_state()] == [b"the whole current state"]
        events.drain()
        try:
            events.get(timeout=0.2)
            raise AssertionError("an event arrived after the handler was cleared")
        except queue.Empty:
            pass


def test_the_metrics_example_counts_what_it_extracts(tmp_path: Path) -> None:
    built = build_plugin(project(tmp_path, "sizes", section_code("Metrics"), "Sizes"))
    with PluginLibrary.load(built.library) as lib, lib.init() as plugin:
        for n, payload in enumerate((b"abc", b"a", b"abcdef"), start=1):
            plugin.extract(HostEvent.plugin_event(payload, 999, num=n, source="watcher"), "sizes.len")
        assert {m.name: (m.type, m.value_type, m.value) for m in plugin.metrics()} == {
            "events": ("monotonic", "u64", 3),
            "biggest": ("non_monotonic", "s64", 6),
            "sdk.errors": ("monotonic", "u64", 0),
        }
