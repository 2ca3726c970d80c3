"""The four reference plugins against their last released facts (``plugins/<name>/release-facts.json``).

This is the release check CI runs: a change to a plugin's fields, init schema,
id or source fails here until the plugin's version is bumped enough (and the
facts are recorded again on release, ``falco-plugin release-check plugins/<name>
--write-facts plugins/<name>/release-facts.json --without-build``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools import cli
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.release import load_facts

REPO = Path(__file__).resolve().parents[1]
PLUGINS = sorted(p.parent for p in REPO.glob("plugins/*/release-facts.json"))


def test_every_plugin_has_release_facts() -> None:
    assert sorted(p.name for p in PLUGINS) == sorted(
        p.parent.name for p in REPO.glob("plugins/*/pyproject.toml") if (p.parent / "src").is_dir()
    )


@pytest.mark.parametrize("project", PLUGINS, ids=lambda p: p.name)
def test_the_built_plugin_passes_the_release_check_against_its_last_release(
    project: Path, build_plugin_project: Callable[[Path], BuildResult], capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = project / "release-facts.json"
    # A repository record has no build digest: work between releases changes sources, not the version.
    assert load_facts(recorded).build is None
    library = build_plugin_project(project).library
    registry = REPO / "registry" / "plugins.yaml"
    code = cli.main(["release-check", str(library), "--previous", str(recorded), "--registry", str(registry)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[-1] == "OK"
