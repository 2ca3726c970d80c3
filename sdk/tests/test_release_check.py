"""``falco-plugin release-check``: each rule of the plugin developers' guide on a crafted before/after pair.

A release is the facts it promises (:class:`ReleaseFacts`); the check finds
every change, the smallest bump each needs, and fails when the new version is
smaller than that, or when the release is wrong whatever its version.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from falco_plugin_tools import cli
from falco_plugin_tools.release import (
    FACTS_FILE,
    MAJOR,
    MINOR,
    PATCH,
    ReleaseError,
    ReleaseFacts,
    check_release,
    compare,
    load_facts,
    minimum_next,
)


def fld(ftype: str = "uint64", *, is_list: bool = False, arg: str = "", desc: str = "a value") -> dict[str, Any]:
    return {
        "type": ftype,
        "is_list": is_list,
        "arg": {"required": "required" in arg, "index": "index" in arg, "key": "key" in arg},
        "desc": desc,
    }


SCHEMA = {
    "type": "object",
    "properties": {
        "jitter": {"type": "integer", "default": 10},
        "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
    },
}

BEFORE = ReleaseFacts(
    name="sample",
    version="1.4.2",
    id=999,
    event_source="sample",
    contact="https://github.com/acme/sample",
    description="A sample",
    required_api_version="3.4.0",
    capabilities=("extraction", "sourcing"),
    fields={"sample.value": fld(), "sample.tags": fld("string", is_list=True), "sample.at": fld(arg="index")},
    init_schema=SCHEMA,
    build="sha256:one",
)


def after(version: str, **changes: Any) -> ReleaseFacts:
    return dataclasses.replace(BEFORE, version=version, **changes)


def fields(**override: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """BEFORE's fields with some replaced (a dict), removed (None) or added."""
    out = {k: dict(v) for k, v in BEFORE.fields.items()}
    for name, value in override.items():
        key = name.replace("_", ".", 1)
        if value is None:
            del out[key]
        else:
            out[key] = value
    return out


def schema(**props: Mapping[str, Any] | None) -> dict[str, Any]:
    out = json.loads(json.dumps(SCHEMA))
    for key, value in props.items():
        if value is None:
            del out["properties"][key]
        else:
            out["properties"][key] = value
    return out


# (id, the new release's changes, the smallest version it needs, the change it reports)
RULES = [
    ("field removed", {"fields": fields(sample_tags=None)}, "2.0.0", "field sample.tags removed"),
    (
        "field renamed",
        {"fields": {**fields(sample_value=None), "sample.val": fld()}},
        "2.0.0",
        "field sample.value renamed to sample.val",
    ),
    (
        "field retyped",
        {"fields": fields(sample_value=fld("string"))},
        "2.0.0",
        "field sample.value: type uint64 -> string",
    ),
    (
        "list-ness changed",
        {"fields": fields(sample_value=fld(is_list=True))},
        "2.0.0",
        "field sample.value: now a list",
    ),
    (
        "argument changed",
        {"fields": fields(sample_at=fld(arg="key"))},
        "2.0.0",
        "field sample.at: argument index -> key",
    ),
    (
        "argument now required",
        {"fields": fields(sample_at=fld(arg="index required"))},
        "2.0.0",
        "field sample.at: argument index -> index, required",
    ),
    ("event source changed", {"event_source": "sample2"}, "2.0.0", "event source 'sample' -> 'sample2'"),
    ("id changed", {"id": 1000}, "2.0.0", "plugin id 999 -> 1000"),
    ("init key removed", {"init_schema": schema(mode=None)}, "2.0.0", "init key mode removed"),
    (
        "init key retyped",
        {"init_schema": schema(jitter={"type": "string"})},
        "2.0.0",
        "init key jitter: type integer -> string",
    ),
    (
        "init values narrowed",
        {"init_schema": schema(mode={"type": "string", "enum": ["fast"]})},
        "2.0.0",
        "init key mode: values ['slow'] no longer allowed",
    ),
    (
        "init key newly required",
        {"init_schema": {**schema(), "required": ["jitter"]}},
        "2.0.0",
        "init key jitter now required",
    ),
    (
        "init bound tightened",
        {"init_schema": schema(jitter={"type": "integer", "default": 10, "minimum": 1})},
        "2.0.0",
        "init key jitter: minimum None -> 1",
    ),
    ("field added", {"fields": fields(sample_new=fld())}, "1.5.0", "field sample.new added"),
    (
        "description of a field",
        {"fields": fields(sample_value=fld(desc="the value"))},
        "1.4.3",
        "field sample.value: description changed",
    ),
    (
        "optional init key added",
        {"init_schema": schema(extra={"type": "integer"})},
        "1.4.3",
        "init key extra added (optional)",
    ),
    (
        "API version raised",
        {"required_api_version": "3.10.0"},
        "1.4.3",
        "required API version raised 3.4.0 -> 3.10.0 (older Falco versions no longer load it)",
    ),
    ("nothing but the code", {"build": "sha256:two"}, "1.4.3", None),
]


@pytest.mark.parametrize(("changes", "minimum", "reported"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_each_change_needs_its_bump(changes: dict[str, Any], minimum: str, reported: str | None) -> None:
    too_small = check_release(BEFORE, after("1.4.3" if minimum != "1.4.3" else "1.4.2", **changes))
    enough = check_release(BEFORE, after(minimum, **changes))
    assert enough.ok, enough.table()
    assert enough.minimum == minimum
    if reported is not None:
        assert reported in [c.what for c in enough.changes]
    assert not too_small.ok
    assert f"minimum next version: {minimum}" in too_small.table()


def test_a_declared_semantic_change_needs_a_major_version() -> None:
    minor = check_release(BEFORE, after("1.5.0"), semantic=["sample.value"])
    assert not minor.ok
    assert ("field sample.value: semantic change (declared)", MAJOR) in [(c.what, c.level) for c in minor.changes]
    assert check_release(BEFORE, after("2.0.0"), semantic=["sample.value"]).ok


def test_the_largest_change_decides_and_every_change_is_listed() -> None:
    changes = compare(BEFORE, after("9.9.9", fields=fields(sample_new=fld()), description="Another"))
    assert [(c.what, c.level) for c in changes] == [("field sample.new added", MINOR), ("description changed", PATCH)]
    result = check_release(BEFORE, after("1.4.9", fields=fields(sample_new=fld(), sample_tags=None)))
    assert result.minimum == "2.0.0"
    rows = [line.split("  ") for line in result.table().splitlines()[1:4]]
    assert [[cell.strip() for cell in row if cell.strip()] for row in rows] == [
        ["needs", "change"],
        ["major", "field sample.tags removed"],
        ["minor", "field sample.new added"],
    ]
    assert result.table().splitlines()[-1] == "FAIL"


def test_the_same_version_with_different_facts_is_an_error() -> None:
    result = check_release(BEFORE, after("1.4.2", fields=fields(sample_new=fld())))
    assert not result.ok
    assert "version 1.4.2 was already released with different facts: bump the version" in result.errors


def test_the_same_version_from_other_sources_is_an_error() -> None:
    result = check_release(BEFORE, after("1.4.2", build="sha256:two"))
    assert result.errors == ["version 1.4.2 was already released from other sources: bump the version"]


def test_the_same_version_with_the_same_facts_is_the_same_release() -> None:
    assert check_release(BEFORE, after("1.4.2")).ok
    # a record without the build digest (a repository's) says nothing about the sources
    result = check_release(dataclasses.replace(BEFORE, build=None), after("1.4.2", build="sha256:two"))
    assert result.ok and result.changes == [] and result.minimum is None


def test_a_version_going_down_is_an_error() -> None:
    result = check_release(BEFORE, after("1.3.9"))
    assert "version 1.3.9 is lower than the previous release 1.4.2" in result.errors


@pytest.mark.parametrize("contact", ["", "  ", "TODO", "you@example.com", "<your contact>", "changeme"])
def test_an_empty_or_placeholder_contact_is_an_error(contact: str) -> None:
    result = check_release(BEFORE, after("1.4.3", contact=contact))
    assert not result.ok
    assert any(e.startswith(f"contact {contact!r} is empty or a placeholder") for e in result.errors)


def test_the_registry_entry_must_follow_the_id_and_source() -> None:
    entry = {"name": "sample", "capabilities": {"sourcing": {"supported": True, "id": 999, "source": "sample"}}}
    registry = {"plugins": [entry]}
    assert check_release(BEFORE, after("1.4.3"), registry=registry).ok
    moved = check_release(BEFORE, after("2.0.0", id=1000, event_source="sample2"), registry=registry)
    assert moved.errors == [
        "the registry entry's id is 999, the plugin's 1000: update the entry",
        "the registry entry's source is 'sample', the plugin's 'sample2': update the entry",
    ]


# -- where facts come from: the build, its package, a facts file -----------------------------------------------------


def test_the_build_writes_the_facts_the_library_reports(dummy_library: Path) -> None:
    site = dummy_library.with_suffix(".site")
    assert load_facts(site / FACTS_FILE) == load_facts(dummy_library)


def test_a_package_archive_carries_the_facts(dummy_library: Path, tmp_path: Path) -> None:
    from falco_plugin_tools.package import package_plugin
    from falco_plugin_tools.registry.built import read_library

    project = Path(__file__).resolve().parents[2] / "plugins" / "dummy"
    archive = package_plugin(project, dummy_library, read_library(dummy_library), tmp_path)[0].path
    assert load_facts(archive) == load_facts(dummy_library)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not a release facts JSON file"),
        ('{"format": 7}', "unknown release facts format 7"),
        ('{"format": 1, "version": "1.0.0"}', "release facts lack 'name'"),
        ('{"format": 1, "name": "x", "version": "1.0.0", "fields": []}', "invalid release facts: fields must map"),
    ],
)
def test_unreadable_facts_are_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "facts.json"
    path.write_text(content)
    with pytest.raises(ReleaseError, match=message):
        load_facts(path)


def test_the_command_prints_the_table_and_fails_on_a_small_bump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before, now = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(BEFORE.dumps())
    now.write_text(after("1.4.3", fields=fields(sample_tags=None)).dumps())
    assert cli.main(["release-check", str(now), "--previous", str(before)]) == 1
    out = capsys.readouterr().out
    assert "field sample.tags removed" in out and "major" in out
    assert "minimum next version: 2.0.0 (given 1.4.3)" in out
    assert "error: version 1.4.3 is too small for these changes: at least 2.0.0 (major)" in out
    now.write_text(after("2.0.0", fields=fields(sample_tags=None)).dumps())
    assert cli.main(["release-check", str(now), "--previous", str(before)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "OK"
    assert cli.main(["release-check", str(now), "--previous", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: no such file or folder" in capsys.readouterr().err


def test_a_rename_is_one_change_not_a_removal_and_an_addition() -> None:
    changes = compare(BEFORE, after("2.0.0", fields={**fields(sample_value=None), "sample.val": fld()}))
    assert [(c.what, c.level) for c in changes] == [("field sample.value renamed to sample.val", MAJOR)]


def test_the_build_digest_follows_the_sources_and_ignores_caches(tmp_path: Path) -> None:
    from falco_plugin_tools.release import source_digest

    (tmp_path / "src" / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "plugin.py").write_text("VALUE = 1\n")
    first = source_digest(tmp_path)
    (tmp_path / "src" / "pkg" / "__pycache__" / "plugin.cpython-311.pyc").write_bytes(b"\0")
    assert source_digest(tmp_path) == first
    (tmp_path / "src" / "pkg" / "plugin.py").write_text("VALUE = 2\n")
    assert source_digest(tmp_path) not in (first, None)
    assert source_digest(tmp_path / "src" / "pkg") is None  # no src/ folder: no digest


@pytest.mark.parametrize(
    ("version", "level", "minimum"),
    [
        ("0.1.0", MAJOR, "0.2.0"),
        ("0.1.3", MINOR, "0.1.4"),
        ("0.1.3", PATCH, "0.1.4"),
        ("1.4.2", MAJOR, "2.0.0"),
        ("1.4.2", MINOR, "1.5.0"),
        ("1.4.2", PATCH, "1.4.3"),
    ],
)
def test_before_1_0_0_each_bump_moves_one_place_right(version: str, level: int, minimum: str) -> None:
    assert minimum_next(version, level) == minimum


def test_a_0_x_plugin_that_renames_a_field_needs_the_next_minor_version() -> None:
    before = dataclasses.replace(BEFORE, version="0.1.0")
    renamed = fields(sample_value=None, sample_amount=fld())
    assert not check_release(before, dataclasses.replace(before, version="0.1.1", fields=renamed)).ok
    assert check_release(before, dataclasses.replace(before, version="0.2.0", fields=renamed)).ok
