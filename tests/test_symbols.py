"""A built library exports exactly the plugin API symbols of the capabilities its class implements.

libsinsp decides what a plugin can do from which ``plugin_*`` symbols exist
(e.g. ``plugin_get_progress`` makes it poll progress), so an extra symbol is
as wrong as a missing one.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from elf_symbols import exported_symbols, plugin_symbols
from falco_plugin_tools.abi import ENTRY_POINTS
from harness import Built

BASE = {
    "plugin_get_required_api_version",
    "plugin_get_version",
    "plugin_get_name",
    "plugin_get_description",
    "plugin_get_contact",
    "plugin_init",
    "plugin_destroy",
    "plugin_get_last_error",
    "plugin_get_metrics",  # every plugin reports sdk.errors (hosts before API 3.5 never look it up)
}
SOURCING = {"plugin_get_id", "plugin_get_event_source", "plugin_open", "plugin_close", "plugin_next_batch"}
EXTRACTION = {"plugin_get_fields", "plugin_extract_fields"}

EXPECTED: dict[str, set[str]] = {
    # source only, no config schema, no optional entry point
    "source_only": BASE | SOURCING,
    # extract only, with a config schema and both extract filters
    "extract_only": BASE
    | EXTRACTION
    | {"plugin_get_init_schema", "plugin_get_extract_event_sources", "plugin_get_extract_event_types"},
    # source + extract with every optional entry point
    "full": BASE
    | SOURCING
    | EXTRACTION
    | {
        "plugin_get_init_schema",
        "plugin_set_config",
        "plugin_get_progress",
        "plugin_event_to_string",
        "plugin_list_open_params",
    },
    # source + extract with nothing optional
    "legacy": BASE | SOURCING | EXTRACTION,
    # source only with a config schema
    "threaded": BASE | SOURCING | {"plugin_get_init_schema"},
    # the reference plugin: everything but set_config
    "dummy": BASE
    | SOURCING
    | EXTRACTION
    | {"plugin_get_init_schema", "plugin_get_progress", "plugin_event_to_string", "plugin_list_open_params"},
}


@pytest.mark.parametrize("plugin", sorted(EXPECTED))
def test_exported_plugin_symbols_are_exactly_the_implemented_capabilities(built: Built, plugin: str) -> None:
    assert plugin_symbols(built(plugin).library) == EXPECTED[plugin]


@pytest.mark.parametrize("plugin", sorted(EXPECTED))
def test_spec_symbols_list_matches_the_library_exports(built: Built, plugin: str) -> None:
    result = built(plugin)
    assert sorted(result.spec.symbols()) == sorted(plugin_symbols(result.library))


@pytest.mark.parametrize("plugin", ["source_only", "full", "extract_only"])
def test_library_exports_nothing_outside_the_plugin_api(built: Built, plugin: str) -> None:
    # Python, cffi and glue internals stay hidden so two plugin libraries
    # (or a plugin and the host) can never bind to each other's symbols.
    extra = exported_symbols(built(plugin).library) - EXPECTED[plugin]
    assert extra == set()


def test_every_expected_symbol_is_a_known_plugin_api_entry_point() -> None:
    known = {"plugin_" + name for name in ENTRY_POINTS}
    assert set().union(*EXPECTED.values()) <= known


@pytest.mark.skipif(shutil.which("nm") is None, reason="binutils nm not installed")
def test_elf_reader_agrees_with_nm(built: Built) -> None:
    library = built("full").library
    out = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True, check=True)
    from_nm = {line.split()[-1] for line in out.stdout.splitlines() if line.split()[-2:-1] in (["T"], ["D"], ["R"])}
    assert {s for s in from_nm if s.startswith("plugin_")} == plugin_symbols(library)
