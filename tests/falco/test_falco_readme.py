"""The README's "Loading a plugin in Falco" works as written: its falco.yaml and command, in the real Falco.

Only the installation paths change: the built library and its site directory
are copied into a temporary directory as the README says, and the rules file
named there is taken from the plugin that ships it.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

from falco_plugin_tools.build import BuildResult
from falco_runner import REPO, plugin_projects, run_falco

SECTION = "## Loading a plugin in Falco"


def readme_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end >= 0 else len(text)]


def code_blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", section, re.M | re.S)


def install(path: str, dest: Path, builds: dict[str, BuildResult]) -> Path:
    """Where the file an absolute path of the README names is in this test's installation."""
    name = Path(path).name
    if name in builds:
        build = builds[name]
        shutil.copy(build.library, dest / "plugins" / name)
        shutil.copytree(build.site_dir, dest / "plugins" / build.site_dir.name, dirs_exist_ok=True)
        return dest / "plugins" / name
    shipped = [r for p in plugin_projects() for r in (p / "rules").glob(name)]
    assert len(shipped) == 1, f"the README names {path}: neither a built library nor the rules file of a plugin"
    shutil.copy(shipped[0], dest / "rules.d" / name)
    return dest / "rules.d" / name


def test_the_readme_config_and_command_run_a_plugin_only_falco(
    falco: Path, plugin_build: Callable[[str], BuildResult], tmp_path: Path
) -> None:
    section = readme_section()
    [config] = code_blocks(section, "yaml")
    commands = [
        line for block in code_blocks(section, "sh") for line in block.splitlines() if line.startswith("falco ")
    ]
    assert commands, "the section shows no falco command line"
    (tmp_path / "plugins").mkdir()
    (tmp_path / "rules.d").mkdir()
    builds = {b.library.name: b for b in (plugin_build(p.name) for p in plugin_projects())}
    paths = set(re.findall(r"(?<![\w'\"])(/[\w./-]+)", config))
    assert paths, config
    for path in paths:
        config = config.replace(path, str(install(path, tmp_path, builds)))
    (tmp_path / "falco.yaml").write_text(config)

    argv = shlex.split(commands[0])
    assert argv[:3] == ["falco", "-c", "falco.yaml"], commands[0]
    run = run_falco(falco, tmp_path / "falco.yaml", *argv[3:], cwd=tmp_path)
    assert run.returncode == 0, run.describe()
    assert not run.noise(), run.describe()
    assert "No output configured" not in run.stderr
    # 1000 samples growing by 1 to 11 each: both reference rules fire
    assert re.search(r"^Events detected: [1-9]\d*$", run.stdout, re.M), run.describe()
    assert re.search(r"^   Dummy sample is a multiple of seven: \d+$", run.stdout, re.M), run.describe()
    assert re.search(r"^   Dummy sample crossed one thousand: \d+$", run.stdout, re.M), run.describe()
    assert re.search(r"Dummy sample above threshold \(value=\d{4,}\)", run.stdout), run.describe()
