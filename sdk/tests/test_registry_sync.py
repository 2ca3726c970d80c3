"""Refreshing the mirror from a newer upstream registry, and the file's canonical layout."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from falco_plugin_tools import cli
from falco_plugin_tools.registry import dump, load, load_file, next_free_id, sync


def entry(name: str, pid: int | None = None, url: str | None = None, **extra: Any) -> dict[str, Any]:
    caps = {"sourcing": {"supported": True, "id": pid, "source": name}} if pid is not None else {}
    caps["extraction"] = {"supported": True}
    return {
        "name": name,
        "description": f"{name} plugin",
        "url": url or f"https://example.com/{name}",
        **extra,
        "capabilities": caps,
    }


@pytest.fixture
def current() -> dict[str, Any]:
    return {
        "reserved_sources": ["syscall", "internal", "plugins"],
        "plugins": [entry("alpha", 1), entry("beta", 2), entry("json"), entry("ours", 40, url="plugins/ours")],
    }


@pytest.fixture
def upstream(current: dict[str, Any]) -> dict[str, Any]:
    return {"reserved_sources": list(current["reserved_sources"]), "plugins": copy.deepcopy(current["plugins"][:3])}


def test_an_unchanged_upstream_changes_nothing(current: dict[str, Any], upstream: dict[str, Any]) -> None:
    refreshed, report = sync(current, upstream)
    assert refreshed == current
    assert report.ok and not report.has_changes
    assert report.lines() == ["the mirror is up to date"]


def test_added_removed_and_changed_entries_are_reported(current: dict[str, Any], upstream: dict[str, Any]) -> None:
    upstream["plugins"].append(entry("gamma", 3))
    del upstream["plugins"][1]  # beta
    upstream["plugins"][0]["description"] = "alpha, improved"
    upstream["plugins"][0]["capabilities"]["sourcing"]["source"] = "alpha_v2"
    _, report = sync(current, upstream)
    assert report.added == ["gamma (id 3)"]
    assert report.removed == ["beta (id 2)"]
    assert report.changed == {"alpha": ["description", "capabilities.sourcing.source"]}
    assert "changed: alpha: description, capabilities.sourcing.source" in report.lines()


def test_the_mirror_follows_upstream_order_and_ours_stay_last(
    current: dict[str, Any], upstream: dict[str, Any]
) -> None:
    upstream["plugins"].reverse()
    upstream["plugins"].insert(1, entry("gamma", 3))
    refreshed, _ = sync(current, upstream)
    assert [e["name"] for e in refreshed["plugins"]] == ["json", "gamma", "beta", "alpha", "ours"]
    assert refreshed["plugins"][-1] == current["plugins"][-1]


def test_reserved_sources_follow_upstream(current: dict[str, Any], upstream: dict[str, Any]) -> None:
    upstream["reserved_sources"].append("container")
    refreshed, report = sync(current, upstream)
    assert refreshed["reserved_sources"] == ["syscall", "internal", "plugins", "container"]
    assert report.reserved_sources is not None and report.has_changes


def test_upstream_taking_our_id_is_a_conflict(current: dict[str, Any], upstream: dict[str, Any]) -> None:
    upstream["plugins"].append(entry("newcomer", 40))
    _, report = sync(current, upstream)
    assert not report.ok
    assert report.conflicts == ["upstream gives ID 40 to newcomer, used by ours ours"]


def test_upstream_taking_our_name_is_a_conflict(current: dict[str, Any], upstream: dict[str, Any]) -> None:
    upstream["plugins"].append(entry("ours", 41))
    _, report = sync(current, upstream)
    assert report.conflicts == ["upstream registers the name 'ours', used by ours"]


def test_an_invalid_upstream_is_refused(current: dict[str, Any], upstream: dict[str, Any]) -> None:
    upstream["plugins"].append(entry("dup", 1))
    _, report = sync(current, upstream)
    assert not report.ok
    assert [f.rule for f in report.upstream_findings] == ["unique-id"]


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump(data))
    return path


def test_cli_sync_writes_the_refreshed_registry(
    tmp_path: Path, current: dict[str, Any], upstream: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    registry = _write(tmp_path / "registry" / "plugins.yaml", current)
    upstream["plugins"].append(entry("gamma", 3))
    up = _write(tmp_path / "upstream.yaml", upstream)
    assert cli.main(["registry", "sync", str(up), "--registry", str(registry)]) == 0
    assert "added: gamma (id 3)" in capsys.readouterr().out
    assert [e["name"] for e in load_file(registry)["plugins"]] == ["alpha", "beta", "json", "gamma", "ours"]


def test_cli_sync_dry_run_and_conflicts_leave_the_file_alone(
    tmp_path: Path, current: dict[str, Any], upstream: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    registry = _write(tmp_path / "registry" / "plugins.yaml", current)
    before = registry.read_text()
    upstream["plugins"].append(entry("gamma", 3))
    up = _write(tmp_path / "upstream.yaml", upstream)
    assert cli.main(["registry", "sync", str(up), "--registry", str(registry), "--dry-run"]) == 0
    upstream["plugins"].append(entry("newcomer", 40))
    _write(up, upstream)
    assert cli.main(["registry", "sync", str(up), "--registry", str(registry)]) == 1
    assert "conflict: upstream gives ID 40 to newcomer" in capsys.readouterr().out
    assert registry.read_text() == before


def test_dump_is_canonical_and_round_trips() -> None:
    data = {
        "reserved_sources": ["syscall"],
        "plugins": [entry("multi", 5, description="line one\nline two\n", keywords=["a-b", "ü"])],
    }
    text = dump(data)
    assert load(text) == data
    assert dump(load(text)) == text
    assert "  - name: multi\n" in text  # lists indented under their key, as upstream writes them
    assert "    description: |\n      line one\n      line two\n" in text


def test_next_free_id_is_the_lowest_unused_one(current: dict[str, Any]) -> None:
    assert next_free_id(current) == 3
    current["plugins"].append(entry("three", 3))
    assert next_free_id(current) == 4
