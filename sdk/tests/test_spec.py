"""``spec.resolve``: a plugin class is checked and turned into what the builder
bakes into the library (identity, capabilities, optional entry points,
required API version, exported symbols)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from falco_plugin import (
    Batch,
    Config,
    Event,
    ExtractPlugin,
    Located,
    OpenParam,
    Plugin,
    SDKError,
    SourceInstance,
    SourcePlugin,
    SpecError,
    field,
    setting,
)
from falco_plugin._internal.spec import resolve


class Cfg(Config):
    """A config."""

    n: int = setting("n", default=1)


class Params(Config):
    count: int = 1


class Inst(SourceInstance):
    def next_batch(self) -> Batch:
        return []


class ProgressInst(Inst):
    def progress(self) -> float:
        return 1.0


class Src(SourcePlugin):
    name = "src"
    id = 7
    event_source = "src"

    def open(self, params: str) -> Inst:
        return Inst()


class Ext(ExtractPlugin):
    name = "ext"

    @field("ext.a", "a")
    def a(self, event: Event) -> int:
        return 0


def make(base: type, **attrs: Any) -> type:
    return type("Made", (base,), attrs)


# -- identity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "dummy_py", "k8s-audit", "x9", "a-b_c"])
def test_valid_plugin_names_are_accepted(name: str) -> None:
    assert resolve(make(Src, name=name)).name == name


@pytest.mark.parametrize("name", ["", "Dummy", "9lives", "_x", "a.b", "a b", None, 3])
def test_invalid_plugin_names_are_rejected(name: Any) -> None:
    with pytest.raises(SpecError, match=r"Made.name must match"):
        resolve(make(Src, name=name))


def test_a_plugin_without_a_name_is_rejected() -> None:
    class Nameless(SourcePlugin):
        id = 1
        event_source = "x"

    with pytest.raises(SpecError, match=r"Nameless\.name must match"):
        resolve(Nameless)


@pytest.mark.parametrize("version", ["0.1.0", "1.2.3", "10.0.0-rc.1", "1.0.0+build.5", "1.0.0-alpha+001"])
def test_semantic_versions_are_accepted(version: str) -> None:
    assert resolve(make(Src, version=version)).version == version


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "1.0.0.0", "latest"])
def test_non_semantic_versions_are_rejected(version: str) -> None:
    with pytest.raises(SpecError, match="version must be a semantic version"):
        resolve(make(Src, version=version))


@pytest.mark.parametrize("pid", [1, 999, 2**32 - 1])
def test_source_ids_are_positive_32_bit_integers(pid: int) -> None:
    sourcing = resolve(make(Src, id=pid)).sourcing
    assert sourcing is not None and sourcing.id == pid


@pytest.mark.parametrize("pid", [0, -1, 2**32, True, "7", 7.0, None])
def test_invalid_source_ids_are_rejected(pid: Any) -> None:
    with pytest.raises(SpecError, match="id must be a positive 32-bit integer"):
        resolve(make(Src, id=pid))


@pytest.mark.parametrize("source", ["", "Upper", "with-dash", "1st", "a.b", None])
def test_invalid_event_sources_are_rejected(source: Any) -> None:
    with pytest.raises(SpecError, match="event_source must match"):
        resolve(make(Src, event_source=source))


@pytest.mark.parametrize("source", ["syscall", "internal", "plugins"])
def test_event_sources_reserved_by_falco_are_rejected(source: str) -> None:
    with pytest.raises(SpecError, match=f"event_source '{source}' is reserved by Falco"):
        resolve(make(Src, event_source=source))


def test_spec_errors_are_sdk_errors_not_type_errors() -> None:
    # A TypeError from a bug in the builder must not pass for a plugin's mistake.
    assert issubclass(SpecError, SDKError) and not issubclass(SpecError, TypeError)


# -- capabilities ----------------------------------------------------------------------------


def test_a_class_with_no_capability_is_rejected() -> None:
    class Nothing(Plugin):
        name = "nothing"

    with pytest.raises(SpecError, match="implements no capability"):
        resolve(Nothing)


@pytest.mark.parametrize("cls", [object, int, "Src"])
def test_something_else_than_a_plugin_class_is_rejected(cls: Any) -> None:
    with pytest.raises(SpecError, match=r"is not a falco_plugin\.Plugin subclass"):
        resolve(cls)


def test_an_extract_plugin_without_fields_is_rejected() -> None:
    with pytest.raises(SpecError, match="is an ExtractPlugin but declares no @field"):
        resolve(make(ExtractPlugin, name="nofields"))


def test_capabilities_follow_the_mixins() -> None:
    both = type("Both", (Src, Ext), {"name": "both"})
    assert resolve(Src).capabilities == ("sourcing",)
    assert resolve(Ext).capabilities == ("extraction",)
    assert resolve(both).capabilities == ("sourcing", "extraction")


def test_optional_source_entry_points_exist_only_when_overridden() -> None:
    plain = resolve(Src).sourcing
    assert plain is not None
    assert (plain.has_progress, plain.has_list_open_params, plain.has_event_to_string) == (False, False, False)

    class Rich(Src):
        name = "rich"

        def open(self, params: str) -> ProgressInst:
            return ProgressInst()

        def open_params(self) -> list[OpenParam]:
            return []

        def event_to_string(self, event: Event) -> str:
            return ""

    rich = resolve(Rich).sourcing
    assert rich is not None
    assert (rich.has_progress, rich.has_list_open_params, rich.has_event_to_string) == (True, True, True)


def test_open_without_a_return_annotation_fails_the_build_instead_of_hiding_progress() -> None:
    class Unannotated(Src):
        name = "unannotated"

        def open(self, params):  # type: ignore[no-untyped-def]
            return ProgressInst()

    with pytest.raises(SpecError, match=r"Unannotated\.open needs a return annotation naming the SourceInstance"):
        resolve(Unannotated)


def test_open_annotated_with_the_base_instance_class_fails_the_build() -> None:
    class Vague(Src):
        name = "vague"

        def open(self, params: str) -> SourceInstance:
            return ProgressInst()

    with pytest.raises(SpecError, match=r"Vague\.open is annotated '-> SourceInstance': name the subclass"):
        resolve(Vague)


def test_open_annotated_with_something_else_fails_the_build() -> None:
    class Odd(Src):
        name = "odd"

        def open(self, params: str) -> int:  # type: ignore[override]
            return 0

    with pytest.raises(SpecError, match=r"Odd\.open must be annotated to return a SourceInstance subclass"):
        resolve(Odd)


def test_set_config_exists_only_when_defined() -> None:
    class WithSetConfig(Src):
        name = "setcfg"

        def set_config(self, config: str) -> None: ...

    assert resolve(Src).has_set_config is False
    assert resolve(WithSetConfig).has_set_config is True


def test_typed_init_and_open_give_the_schema_and_params_types() -> None:
    class Typed(Src):
        name = "typed"

        def init(self, config: Cfg) -> None: ...

        def open(self, params: Params) -> Inst:  # type: ignore[override]
            return Inst()

    spec = resolve(Typed)
    assert spec.sourcing is not None
    assert spec.config_type is Cfg and spec.sourcing.open_params_type is Params
    assert spec.init_schema is not None
    assert json.loads(spec.init_schema) == Cfg.json_schema()
    untyped = resolve(Src)
    assert untyped.sourcing is not None
    assert (untyped.config_type, untyped.init_schema, untyped.sourcing.open_params_type) == (None, None, None)


def test_extract_filters_are_exported_only_when_declared() -> None:
    spec = resolve(Ext).extraction
    assert spec is not None and (spec.event_sources, spec.event_types) == (None, None)
    filtered = resolve(make(Ext, extract_event_sources=("a", "b"), extract_event_types=(322, 402)))
    assert filtered.extraction is not None
    assert (filtered.extraction.event_sources, filtered.extraction.event_types) == (["a", "b"], [322, 402])
    assert {"plugin_get_extract_event_sources", "plugin_get_extract_event_types"} <= set(filtered.symbols())


def test_fields_json_is_compact_get_fields_json() -> None:
    assert resolve(Ext).fields_json == '[{"name":"ext.a","type":"uint64","desc":"a"}]'


# -- required API version ------------------------------------------------------------------------


def test_default_required_api_version_is_the_lowest_with_everything_used() -> None:
    # Logging through the host (log_fn) needs 3.4, so that is the floor.
    assert resolve(Src).required_api_version == "3.4.0"
    assert resolve(Ext).required_api_version == "3.4.0"


def test_a_located_field_raises_the_default_required_api_version_to_3_12() -> None:
    class Loc(ExtractPlugin):
        name = "loc"

        @field("loc.a", "a")
        def a(self, event: Event) -> str | Located:
            return ""

    assert resolve(Loc).required_api_version == "3.12.0"


def test_an_explicit_required_api_version_wins() -> None:
    assert resolve(make(Src, required_api_version="3.10.0")).required_api_version == "3.10.0"


@pytest.mark.parametrize("version", ["3.4", "three", "3.4.0.1"])
def test_an_invalid_explicit_required_api_version_is_rejected(version: str) -> None:
    with pytest.raises(SpecError, match=r"required_api_version must be x\.y\.z"):
        resolve(make(Src, required_api_version=version))


# -- symbols ------------------------------------------------------------------------------------


def test_symbols_of_a_minimal_source_plugin() -> None:
    assert sorted(resolve(Src).symbols()) == sorted(
        [
            "plugin_get_metrics",  # the glue's sdk.errors
            "plugin_get_required_api_version",
            "plugin_get_version",
            "plugin_get_name",
            "plugin_get_description",
            "plugin_get_contact",
            "plugin_init",
            "plugin_destroy",
            "plugin_get_last_error",
            "plugin_get_id",
            "plugin_get_event_source",
            "plugin_open",
            "plugin_close",
            "plugin_next_batch",
        ]
    )


def test_symbols_of_a_minimal_extract_plugin() -> None:
    syms = set(resolve(Ext).symbols())
    assert {"plugin_get_fields", "plugin_extract_fields"} <= syms
    assert not syms & {"plugin_open", "plugin_get_id", "plugin_get_init_schema", "plugin_set_config"}


def test_an_explicit_required_api_version_below_what_the_sdk_always_uses_is_rejected() -> None:
    with pytest.raises(SpecError, match=r"3\.4\.0"):
        resolve(make(Src, required_api_version="3.0.0"))


# -- event schema version ----------------------------------------------------------------------


def test_fields_that_may_see_syscall_events_declare_an_event_schema_current_hosts_accept() -> None:
    # An extract-only plugin applies to every source by default, syscall included.
    spec = resolve(Ext)
    assert spec.event_schema_version == "4.0.0"
    assert "plugin_get_required_event_schema_version" in spec.symbols()


def test_fields_limited_to_plugin_sources_declare_no_event_schema() -> None:
    for cls in (make(Ext, extract_event_sources=("src",)), Src):
        spec = resolve(cls)
        assert spec.event_schema_version is None
        assert "plugin_get_required_event_schema_version" not in spec.symbols()


def test_fields_listing_the_syscall_source_declare_an_event_schema() -> None:
    assert resolve(make(Ext, extract_event_sources=("syscall", "src"))).event_schema_version == "4.0.0"


def test_an_explicit_event_schema_version_wins() -> None:
    spec = resolve(make(Src, required_event_schema_version="4.1.0"))
    assert spec.event_schema_version == "4.1.0"
    assert "plugin_get_required_event_schema_version" in spec.symbols()


def test_an_invalid_event_schema_version_is_rejected() -> None:
    with pytest.raises(SpecError, match=r"required_event_schema_version must be x\.y\.z"):
        resolve(make(Ext, required_event_schema_version="4"))
