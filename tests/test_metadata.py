"""What a host reads before init: identity, schema, fields and extraction
filters, exactly as the class declares them (they are C constants, so reading
them never starts Python)."""

from __future__ import annotations

import json
from collections.abc import Callable

from falco_plugin.event import PLUGIN_EVENT
from falco_plugin_tools.host.raw import Library, ffi
from harness import Built


def test_identity_strings_survive_quotes_backslashes_trigraphs_and_non_ascii(loaded: Callable[[str], Library]) -> None:
    lib = loaded("full")
    assert (lib.name, lib.version, lib.contact) == ("fxt_full", "1.2.3", "https://example.invalid/fxt_full")
    assert lib.description == 'Test fixture: "full" \\ every ??= entry point \u2013 \u00e9'


def test_source_identity(loaded: Callable[[str], Library]) -> None:
    lib = loaded("full").lib
    assert lib.plugin_get_id() == 999_102
    assert ffi.string(lib.plugin_get_event_source()) == b"fxt_full"


def test_init_schema_is_the_json_schema_of_the_config_class(built: Built, loaded: Callable[[str], Library]) -> None:
    for name in ("full", "extract_only"):
        config_type = built(name).spec.config_type
        assert config_type is not None
        kind, text = loaded(name).init_schema()
        assert kind == 1  # SS_PLUGIN_SCHEMA_JSON
        assert json.loads(text) == config_type.json_schema()
        assert json.loads(text)["required" if name == "extract_only" else "properties"]


def test_get_fields_is_the_compact_json_of_the_declared_fields(built: Built, loaded: Callable[[str], Library]) -> None:
    for name in ("full", "extract_only", "dummy"):
        assert loaded(name).text("plugin_get_fields") == built(name).spec.fields_json


def test_extraction_filters_are_the_declared_sources_and_types(loaded: Callable[[str], Library]) -> None:
    lib = loaded("extract_only").lib
    assert json.loads(ffi.string(lib.plugin_get_extract_event_sources())) == ["fxt_full", "fxt_source_only"]
    count = ffi.new("uint32_t *")
    types = lib.plugin_get_extract_event_types(count, ffi.NULL)
    assert [types[i] for i in range(count[0])] == [PLUGIN_EVENT]


def test_metadata_is_readable_before_init(built: Built) -> None:
    # A fresh library object, no plugin_init call: identity, schema, fields.
    lib = Library.open(built("extract_only").library)
    assert lib.name == "fxt_extract_only"
    assert lib.required_api_version == "3.4.0"
    assert lib.init_schema()[0] == 1
    assert [f["name"] for f in lib.fields][:3] == ["xo.payload", "xo.len", "xo.even"]
