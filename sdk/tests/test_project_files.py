"""What a project is expected to have (issue 17, item 10): its licence, a version, a README that lists its plugins."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest
from falco_plugin._internal.version import SDK_VERSION
from falco_plugin_tools import cli

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = [ROOT / "sdk", *sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))]


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_every_package_carries_the_licence_it_declares(project: Path) -> None:
    declared = tomllib.loads((project / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "Apache-2.0"
    assert (project / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in (ROOT / "LICENSE").read_text()


def test_falco_plugin_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    py = ".".join(map(str, sys.version_info[:3]))
    assert capsys.readouterr().out == f"falco-plugin {SDK_VERSION} (Python {py} at {sys.base_prefix})\n"


def test_the_readme_table_lists_every_plugin() -> None:
    readme = (ROOT / "README.md").read_text()
    listed = [p.name for p in PROJECTS[1:] if f"| `plugins/{p.name}/` |" in readme]
    assert listed == [p.name for p in PROJECTS[1:]]


def nox_pythons() -> set[str]:
    """The Python versions the noxfile builds and tests with (PYTHON and OTHER_PYTHONS)."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    values: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name) and target.id in ("PYTHON", "OTHER_PYTHONS") and node.value is not None:
                values[target.id] = ast.literal_eval(node.value)
    return {str(values["PYTHON"]), *map(str, values["OTHER_PYTHONS"])}  # type: ignore[call-overload]


TEMPLATE = ROOT / "sdk" / "src" / "falco_plugin_tools" / "templates" / "counter"


@pytest.mark.parametrize("project", [*PROJECTS, TEMPLATE], ids=lambda p: p.name)
def test_every_python_the_ci_tests_is_declared_and_no_other(project: Path) -> None:
    """Issue 17, item 9: 3.11, 3.12 and 3.13 are first-class targets, said in the metadata as in CI."""
    table = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert table["requires-python"] == ">=3.11"
    declared = {c.rsplit(" :: ", 1)[1] for c in table["classifiers"] if re.fullmatch(r".* :: 3\.\d+", c)}
    assert declared == nox_pythons() == {"3.11", "3.12", "3.13"}
