"""The README's code blocks run as printed, so the docs cannot drift from the SDK.

* ``README.md``: the ``counter`` plugin of "Writing a plugin", with the
  ``pyproject.toml`` lines shown after it, is built into a library and run.
* ``sdk/README.md``: the Python host example runs against the built dummy_py.
"""

from __future__ import annotations

import re
from pathlib import Path

from falco_plugin_tools.build import build_plugin
from falco_plugin_tools.host import PluginLibrary
from harness import REPO, Built


def code_blocks(readme: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", readme.read_text(), flags=re.S | re.M)


def test_the_readme_plugin_builds_and_counts_as_documented(tmp_path: Path) -> None:
    (plugin_code,) = code_blocks(REPO / "README.md", "python")
    (tool_table,) = code_blocks(REPO / "README.md", "toml")
    package = tmp_path / "src" / "counter"
    package.mkdir(parents=True)
    (package / "plugin.py").write_text(plugin_code)  # no __init__.py: the README does not ask for one
    (tmp_path / "pyproject.toml").write_text(tool_table)  # the README's pyproject.toml is complete

    result = build_plugin(tmp_path)
    assert result.spec.capabilities == ("sourcing", "extraction")
    with PluginLibrary.load(result.library) as lib, lib.init('{"step": 3}') as plugin:
        with plugin.open("") as capture:
            values = [plugin.extract(event, "counter.value") for event in capture.events(limit=4)]
    assert values == [3, 6, 9, 12]


def test_the_sdk_readme_host_example_runs(built: Built) -> None:
    (example,) = [b for b in code_blocks(REPO / "sdk" / "README.md", "python") if "PluginLibrary" in b]
    exec(compile(example, "sdk/README.md", "exec"), {"result": built("dummy")})
