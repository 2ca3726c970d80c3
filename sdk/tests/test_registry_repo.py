"""This repository's registry/plugins.yaml: well formed, and true to the libraries the plugins build into."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.registry import BuiltFacts, check, dump, is_hosted, load_file, read_library
from falco_plugin_tools.registry.check import plugin_folders
from falco_plugin_tools.registry.model import hosted_folder, plugin_entries

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "registry" / "plugins.yaml"
FOLDERS = plugin_folders(ROOT)


def test_the_registry_is_in_the_layout_the_tools_write() -> None:
    text = REGISTRY.read_text(encoding="utf-8")
    assert dump(load_file(REGISTRY)) == text, (
        "rewrite it with falco_plugin_tools.registry.save_file (see registry/README.md)"
    )


def test_the_registry_passes_every_rule_but_the_library_ones() -> None:
    assert check(load_file(REGISTRY), root=ROOT) == []


def test_the_mirror_keeps_upstreams_reserved_entries() -> None:
    data = load_file(REGISTRY)
    reserved = {e["name"]: e["capabilities"]["sourcing"].get("id") for e in plugin_entries(data) if e.get("reserved")}
    assert reserved == {"plugin-id-zero-value": 0, "test": 999}
    assert data["reserved_sources"] == ["syscall", "internal", "plugins"]


def test_every_hosted_entry_describes_all_five_capabilities() -> None:
    for entry in plugin_entries(load_file(REGISTRY)):
        if is_hosted(entry):
            assert list(entry["capabilities"]) == ["sourcing", "extraction", "parsing", "async", "capture_listening"]


@pytest.fixture(scope="module")
def built(build_plugin_project: Callable[[Path], BuildResult]) -> dict[str, BuiltFacts | str]:
    return {folder: read_library(build_plugin_project(ROOT / folder).library) for folder in FOLDERS}


def test_each_hosted_entry_matches_its_built_library(built: dict[str, BuiltFacts | str]) -> None:
    data = load_file(REGISTRY)
    assert {hosted_folder(e) for e in plugin_entries(data) if is_hosted(e)} == set(FOLDERS)
    assert check(data, root=ROOT, built=built) == []
