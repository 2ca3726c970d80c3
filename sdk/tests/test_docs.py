"""Generated README tables: rendered from the built library, confined to their markers, checked for drift."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools import docs
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.docs import DocsError, render_config, render_fields, replace_sections, update_readme
from falco_plugin_tools.registry import BuiltFacts, read_library
from falco_plugin_tools.registry.check import plugin_folders

ROOT = Path(__file__).resolve().parents[2]
DUMMY = ROOT / "plugins" / "dummy"

README = """\
# thing

Intro written by a person.

<!-- BEGIN GENERATED CONFIG -->
stale
<!-- END GENERATED CONFIG -->

Prose between the tables | with pipes.

<!-- BEGIN GENERATED FIELDS -->
<!-- END GENERATED FIELDS -->

Outro.
"""


@pytest.fixture(scope="module")
def dummy_facts(dummy_library: Path) -> BuiltFacts:
    return read_library(dummy_library)


def test_fields_table_lists_what_the_library_reports(dummy_facts: BuiltFacts) -> None:
    assert render_fields(dummy_facts) == (
        "| name | type | argument | description |\n"
        "|---|---|---|---|\n"
        "| `dummy.value` | uint64 | | The sample value in the event |\n"
        "| `dummy.strvalue` | string | | The sample value in the event, as a string |\n"
        "| `dummy.divisible` | uint64 | index, required | "
        "Return 1 if the value is divisible by the provided divisor, 0 otherwise |"
    )


def test_config_table_lists_keys_types_defaults_and_limits(dummy_facts: BuiltFacts) -> None:
    assert render_config(dummy_facts) == (
        "| key | type | default | description |\n"
        "|---|---|---|---|\n"
        "| `jitter` | integer (>= 0) | `10` | A random amount (0 to jitter) added to the sample of each event |"
    )


def test_lists_keys_and_optional_arguments_are_spelled_out() -> None:
    facts = BuiltFacts(
        name="x",
        fields=(
            {"name": "x.tags", "type": "string", "desc": "all | tags", "isList": True},
            {"name": "x.label", "type": "string", "desc": "a label", "arg": {"isRequired": False, "isKey": True}},
            {"name": "x.plain", "type": "uint64", "desc": "no argument", "arg": {"isIndex": False, "isKey": False}},
        ),
    )
    rows = render_fields(facts).splitlines()[2:]
    assert rows == [
        "| `x.tags` | list of string | | all \\| tags |",
        "| `x.label` | string | key, optional | a label |",
        "| `x.plain` | uint64 | | no argument |",
    ]


def test_nested_required_and_enumerated_settings() -> None:
    schema = {
        "type": "object",
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "description": "Where", "pattern": "^https?://"},
            "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
            "retry": {
                "type": "object",
                "properties": {"max": {"type": "integer", "minimum": 0, "maximum": 10, "default": 3}},
            },
            "token": {"type": ["string", "null"], "default": None},
            "ports": {"type": "array", "items": {"type": "integer"}, "maxItems": 4, "default": [80]},
        },
    }
    rows = render_config(BuiltFacts(name="x", init_schema=schema)).splitlines()[2:]
    assert rows == [
        "| `url` | string (matching `^https?://`) | required | Where |",
        '| `mode` | string: `"fast"`, `"safe"` | `"safe"` | |',
        "| `headers` | object of string | `{}` | |",
        "| `retry` | object | | |",
        "| `retry.max` | integer (>= 0, <= 10) | `3` | |",
        "| `token` | string or null | `null` | |",
        "| `ports` | array of integer (items <= 4) | `[80]` | |",
    ]


def test_a_plugin_without_config_or_fields_says_so() -> None:
    facts = BuiltFacts(name="x")
    assert render_config(facts) == "This plugin takes no configuration."
    assert render_fields(facts) == "This plugin extracts no fields."


def test_only_the_marked_sections_change() -> None:
    out = replace_sections(README, {"CONFIG": "| new config |", "FIELDS": "| new fields |"})
    assert out == README.replace("stale\n", "| new config |\n").replace(
        "<!-- BEGIN GENERATED FIELDS -->\n", "<!-- BEGIN GENERATED FIELDS -->\n| new fields |\n"
    )
    assert replace_sections(out, {"CONFIG": "| new config |", "FIELDS": "| new fields |"}) == out


def test_missing_markers_are_an_error_only_when_the_table_is_needed() -> None:
    text = "# thing\n"
    assert replace_sections(text, {"FIELDS": "table"}) == text
    with pytest.raises(
        DocsError, match=r"no <!-- BEGIN GENERATED FIELDS --> \.\.\. <!-- END GENERATED FIELDS --> markers"
    ):
        replace_sections(text, {"FIELDS": "table"}, required=["FIELDS"])


def test_unbalanced_markers_are_an_error() -> None:
    with pytest.raises(DocsError, match="unbalanced"):
        replace_sections("<!-- BEGIN GENERATED FIELDS -->\nno end\n", {"FIELDS": "table"})


def docs_args(project: Path, *, check: bool = False) -> argparse.Namespace:
    return argparse.Namespace(projects=[project], check=check, build=True)


@pytest.fixture
def drifted(tmp_path: Path) -> Path:
    project = tmp_path / "dummy"
    shutil.copytree(DUMMY, project, ignore=shutil.ignore_patterns("lib*", "__pycache__"))
    readme = project / "README.md"
    readme.write_text(readme.read_text().replace("| `dummy.value` | uint64 |", "| `dummy.value` | string |"))
    return project


def test_check_fails_on_drift_and_writing_fixes_it(drifted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = drifted / "README.md"
    before = readme.read_text()
    assert docs.main(docs_args(drifted, check=True)) == 1
    out = capsys.readouterr().out
    assert "-| `dummy.value` | string |" in out and "+| `dummy.value` | uint64 |" in out
    assert "generated tables are out of date" in out
    assert readme.read_text() == before
    assert docs.main(docs_args(drifted)) == 0
    assert readme.read_text() == (DUMMY / "README.md").read_text()
    assert docs.main(docs_args(drifted, check=True)) == 0


@pytest.mark.parametrize("folder", plugin_folders(ROOT))
def test_every_plugin_readme_is_up_to_date(folder: str, build_plugin_project: Callable[[Path], BuildResult]) -> None:
    facts = read_library(build_plugin_project(ROOT / folder).library)
    update = update_readme(ROOT / folder, facts)
    assert not update.changed, f"run `falco-plugin docs {folder}`:\n{update.diff()}"
