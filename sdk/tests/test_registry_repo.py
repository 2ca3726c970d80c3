"""This repository's registry/plugins.yaml: well formed, and true to the libraries the plugins build into."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.registry import BuiltFacts, check, dump, is_hosted, load_file, read_library
from falco_plugin_tools.registry.check import plugin_folders
from falco_plugin_tools.registry.fields import load_known
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


# -- the fields other extractors declare (registry/fields.yaml of the tools) ------------------------

KNOWN = load_known()
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")


def test_each_plugin_with_known_fields_is_a_registry_entry_extracting_from_those_sources() -> None:
    entries = {e.get("name"): e for e in plugin_entries(load_file(REGISTRY))}
    for name, plugin in KNOWN["plugins"].items():
        assert name in entries, f"{name} is not in the registry"
        extraction = entries[name]["capabilities"]["extraction"]
        assert extraction["supported"] is True and extraction.get("sources") == plugin["sources"], name


def test_the_known_fields_are_well_formed_and_unique() -> None:
    declared = [("falco", n) for n in KNOWN["falco"]["syscall"] + KNOWN["falco"]["plugin_sources"]]
    for name, plugin in KNOWN["plugins"].items():
        assert plugin["facts"] and plugin["fields"], name
        names = [f["name"] for f in plugin["fields"]]
        assert len(names) == len(set(names)), name
        for f in plugin["fields"]:
            assert set(f) <= {"name", "type", "arg"} and f.get("arg", "key") in ("key", "index", "index|key"), f
        declared += [(name, n) for n in names]
    assert all(FIELD_NAME.match(n) for _, n in declared), [n for _, n in declared if not FIELD_NAME.match(n)]
    assert set(KNOWN["falco"]["plugin_sources"]) <= set(KNOWN["falco"]["syscall"])


def test_the_container_plugin_declares_the_pod_fields_falco_loads_by_default() -> None:
    """The names the issue reports Falco 0.44.1 refusing next to the container plugin."""
    container = {f["name"] for f in KNOWN["plugins"]["container"]["fields"]}
    assert {"k8s.pod.name", "k8s.ns.name", "k8s.pod.uid", "k8s.pod.label", "container.id"} <= container
