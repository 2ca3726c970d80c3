"""PluginLibrary.load checks a library the way libsinsp does, with its messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools.host import HOST_API_VERSION, LoadError, PluginLibrary
from falco_plugin_tools.host.loader import check_api_version

CPlugin = Callable[..., Path]


def load_error(library: Path) -> str:
    with pytest.raises(LoadError) as info:
        PluginLibrary.load(library)
    assert str(info.value) == f"cannot load plugin {library}: {info.value.reason}"
    return info.value.reason


# -- what a good library reports ------------------------------------------------------


def test_a_python_plugin_reports_its_metadata_capabilities_and_fields(dummy: PluginLibrary) -> None:
    info = dummy.info
    assert (info.name, info.version, info.id, info.event_source) == ("dummy_py", "0.1.0", 29, "dummy_py")
    assert info.capabilities == {"sourcing", "extraction"}
    assert [f.name for f in info.fields] == ["dummy.value", "dummy.strvalue", "dummy.divisible"]
    divisible = info.fields[2]
    assert (divisible.id, divisible.type, divisible.is_index, divisible.arg_required) == (2, "uint64", True, True)
    assert info.init_schema is not None and "jitter" in info.init_schema["properties"]


def test_a_c_plugin_loads_and_lists_exactly_the_symbols_it_exports(ctest: PluginLibrary) -> None:
    info = ctest.info
    assert (info.name, info.description, info.contact) == ("ctest", "A test plugin written in C", "nobody@example.com")
    assert info.capabilities == {"sourcing", "extraction"}
    assert "plugin_next_batch" in info.symbols and "plugin_get_extract_event_sources" not in info.symbols
    assert "plugin_parse_event" not in info.symbols


def test_the_own_event_source_is_always_among_the_extract_sources(c_plugin: CPlugin) -> None:
    with PluginLibrary.load(c_plugin()) as lib:
        assert lib.info.extract_event_sources == {"ctest"}
    with PluginLibrary.load(c_plugin(EXTRACT_SOURCES='["other", ""]')) as lib:
        assert lib.info.extract_event_sources == {"other", "ctest"}  # empty names are dropped


def test_an_extraction_only_plugin_has_no_source_and_extracts_from_every_source(c_plugin: CPlugin) -> None:
    flags = ("-DOMIT_OPEN", "-DOMIT_CLOSE", "-DOMIT_NEXT_BATCH")
    with PluginLibrary.load(c_plugin(*flags)) as lib:
        assert lib.info.capabilities == {"extraction"}
        assert (lib.info.id, lib.info.event_source) == (0, "")
        assert lib.info.extract_event_sources == frozenset()


def test_a_plugin_without_schema_reports_none(c_plugin: CPlugin) -> None:
    with PluginLibrary.load(c_plugin("-DNO_SCHEMA")) as lib:
        assert lib.info.init_schema is None


# -- dlopen and symbols -----------------------------------------------------------------


def test_a_missing_file_is_reported_with_the_dynamic_loader_message(tmp_path: Path) -> None:
    reason = load_error(tmp_path / "libnope.so")
    assert reason.startswith("can't load plugin dynamic library: ")
    assert "No such file or directory" in reason


def test_a_file_that_is_not_a_library_cannot_be_loaded(tmp_path: Path) -> None:
    bogus = tmp_path / "libbogus.so"
    bogus.write_text("not an ELF file")
    assert load_error(bogus).startswith("can't load plugin dynamic library: ")


@pytest.mark.parametrize(
    "symbol", ["get_version", "get_name", "get_description", "get_contact", "init", "destroy", "get_last_error"]
)
def test_a_missing_required_symbol_is_named(c_plugin: CPlugin, symbol: str) -> None:
    assert load_error(c_plugin(f"-DOMIT_{symbol.upper()}")) == f"required symbol not implemented: '{symbol}'"


def test_the_api_version_symbol_is_checked_first(c_plugin: CPlugin) -> None:
    library = c_plugin("-DOMIT_GET_REQUIRED_API_VERSION", "-DOMIT_INIT")
    assert load_error(library) == "plugin_get_required_api_version symbol not implemented"


# -- API version --------------------------------------------------------------------------


def test_the_host_implements_plugin_api_3_12_0() -> None:
    assert HOST_API_VERSION == (3, 12, 0)


@pytest.mark.parametrize(
    ("required", "reason"),
    [
        ("4.0.0", "major versions disagree"),
        ("2.0.0", "major versions disagree"),
        ("3.99.0", "framework's minor is less than the requested one"),
        ("3.13.0", "framework's minor is less than the requested one"),
        ("3.12.1", "framework's patch is less than the requested one"),
    ],
)
def test_an_incompatible_api_version_is_rejected_with_the_reason(c_plugin: CPlugin, required: str, reason: str) -> None:
    assert load_error(c_plugin(API_VERSION=required)) == (
        f"plugin required API version '{required}' not compatible with the framework's API version '3.12.0': {reason}"
    )


@pytest.mark.parametrize("required", ["garbage", "v3.0.0", "3.0", ""])
def test_an_unparsable_api_version_is_rejected(c_plugin: CPlugin, required: str) -> None:
    assert (
        load_error(c_plugin(API_VERSION=required)) == f"plugin provided an invalid required API version: '{required}'"
    )


@pytest.mark.parametrize("required", ["3.12.0", "3.0.0", "3.11.99", " 3.4.0", "3.0.0-rc1"])
def test_api_versions_are_read_leniently_like_sscanf(required: str) -> None:
    assert check_api_version(required) is None


def test_an_older_minor_accepts_any_patch_but_the_same_minor_does_not() -> None:
    assert check_api_version("3.11.500") is None
    assert check_api_version("3.12.1") is not None


def test_a_plugin_version_that_is_not_x_y_z_is_rejected(c_plugin: CPlugin) -> None:
    assert load_error(c_plugin(PLUGIN_VERSION="one")) == "plugin provided an invalid version string: 'one'"


# -- capabilities ----------------------------------------------------------------------------

SOURCING_HALF = "must implement all of 'plugin_open', 'plugin_close', and 'plugin_next_batch' (event sourcing)"
IDENTITY_HALF = "must implement both 'plugin_get_id' and 'plugin_get_event_source' or neither (event sourcing)"


@pytest.mark.parametrize(
    ("flags", "strings", "problem"),
    [
        (("-DOMIT_OPEN",), {}, SOURCING_HALF),
        (("-DOMIT_CLOSE", "-DOMIT_NEXT_BATCH"), {}, SOURCING_HALF),
        (("-DOMIT_GET_ID",), {}, IDENTITY_HALF),
        (("-DPLUGIN_ID=0",), {}, IDENTITY_HALF),
        (("-DOMIT_GET_EVENT_SOURCE",), {}, IDENTITY_HALF),
        ((), {"EVENT_SOURCE": ""}, IDENTITY_HALF),
        (
            ("-DOMIT_GET_FIELDS",),
            {},
            "must implement both 'plugin_get_fields' and 'plugin_extract_fields' (field extraction)",
        ),
        (
            ("-DWITH_ASYNC_HANDLER",),
            {},
            "must implement both 'plugin_get_async_events' and 'plugin_set_async_event_handler' (async events)",
        ),
        (
            ("-DWITH_CAPTURE_OPEN",),
            {},
            "must implement both 'plugin_capture_open' and 'plugin_capture_close' (capture listening)",
        ),
    ],
)
def test_a_half_implemented_capability_is_broken(
    c_plugin: CPlugin, flags: tuple[str, ...], strings: dict[str, str], problem: str
) -> None:
    assert load_error(c_plugin(*flags, **strings)) == f"broken plugin capabilities: {problem}"


def test_every_broken_capability_is_listed(c_plugin: CPlugin) -> None:
    reason = load_error(c_plugin("-DOMIT_OPEN", "-DOMIT_GET_FIELDS"))
    assert reason == "broken plugin capabilities: " + ", ".join(
        [SOURCING_HALF, "must implement both 'plugin_get_fields' and 'plugin_extract_fields' (field extraction)"]
    )


def test_get_fields_alone_is_no_capability_rather_than_broken(c_plugin: CPlugin) -> None:
    with PluginLibrary.load(c_plugin("-DOMIT_EXTRACT_FIELDS")) as lib:
        assert lib.info.capabilities == {"sourcing"}
        assert lib.info.fields == []


def test_a_plugin_with_no_capability_is_rejected(c_plugin: CPlugin) -> None:
    flags = ("-DOMIT_OPEN", "-DOMIT_CLOSE", "-DOMIT_NEXT_BATCH", "-DOMIT_GET_FIELDS", "-DOMIT_EXTRACT_FIELDS")
    assert load_error(c_plugin(*flags)) == "plugin does not implement any capability"


def test_the_syscall_event_source_is_reserved(c_plugin: CPlugin) -> None:
    assert load_error(c_plugin(EVENT_SOURCE="syscall")) == "plugin can't implement the reserved event source 'syscall'"


def test_extract_sources_must_be_a_json_array(c_plugin: CPlugin) -> None:
    reason = load_error(c_plugin(EXTRACT_SOURCES='{"a": 1}'))
    assert reason == "error in plugin ctest: 'get_extract_event_sources' did not return a json array"


# -- several libraries ---------------------------------------------------------------------


def test_two_different_plugin_libraries_load_side_by_side(dummy: PluginLibrary, ctest: PluginLibrary) -> None:
    assert (dummy.info.name, ctest.info.name) == ("dummy_py", "ctest")
    assert dummy.symbol("get_name") is not None and ctest.symbol("get_name") is not None


def test_close_destroys_live_states_and_unloads(c_plugin: CPlugin) -> None:
    lib = PluginLibrary.load(c_plugin())
    handle = lib.init()
    lib.close()
    assert not handle.alive
    assert lib.symbol("init") is None
