"""A plugin's life in the host: init, open, events, extraction, teardown, as libsinsp drives it."""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin._internal.layout import NO_VALUE, PLUGIN_EVENT
from falco_plugin_tools.host import (
    ExtractionError,
    HostError,
    HostEvent,
    LogRecord,
    PluginHandle,
    PluginLibrary,
    Rc,
)
from falco_plugin_tools.host.schema import validate_init_config

CPlugin = Callable[..., Path]


# -- init ---------------------------------------------------------------------------------


def test_an_empty_config_becomes_an_empty_json_object_when_there_is_a_schema(ctest_handle: PluginHandle) -> None:
    event = HostEvent.plugin_event(b"x", 999, source="ctest")
    assert ctest_handle.config == "{}"
    assert ctest_handle.extract(event, "ctest.config") == "{}"


def test_without_a_schema_the_config_is_passed_verbatim(c_plugin: CPlugin) -> None:
    with PluginLibrary.load(c_plugin("-DNO_SCHEMA")) as lib, lib.init() as handle:
        assert handle.extract(HostEvent.plugin_event(b"x", 999, source="ctest"), "ctest.config") == ""


def test_the_config_is_passed_unchanged_without_schema_defaults(ctest: PluginLibrary) -> None:
    config = '{ "greeting":"hi" }'
    with ctest.init(config) as handle:
        assert handle.extract(HostEvent.plugin_event(b"x", 999, source="ctest"), "ctest.config") == config


@pytest.mark.parametrize(
    ("config", "message"),
    [
        # libsinsp's words (valijson's), checked against real libsinsp in tests/test_init_config.py
        (
            '{"level": -1}',
            "error in plugin ctest init config: In <root>[level], Expected number greater than or equal to 0.000000",
        ),
        (
            '{"nope": 1}',
            "error in plugin ctest init config: In <root>, Object contains a property that could not be validated "
            "using 'properties' or 'additionalProperties' constraints: 'nope'.",
        ),
        (
            '{"greeting": 5}',
            "error in plugin ctest init config: In <root>[greeting], Value type not permitted by 'type' constraint.",
        ),
        ("{not json", "error in plugin ctest: init config is not a valid json"),
    ],
)
def test_a_config_the_schema_rejects_never_reaches_init(ctest: PluginLibrary, config: str, message: str) -> None:
    with pytest.raises(HostError) as info:
        ctest.init(config)
    assert str(info.value) == message


def test_libsinsps_validation_messages_name_no_value() -> None:
    schema = {"type": "object", "properties": {"token": {"type": "string", "pattern": "^t-", "writeOnly": True}}}
    with pytest.raises(HostError) as info:
        validate_init_config("p", 1, json.dumps(schema), '{"token": "hunter2"}')
    assert str(info.value) == (
        "error in plugin p init config: In <root>[token], Failed to match regex specified by 'pattern' constraint."
    )


# A schema with a keyword libsinsp's errors are not emulated for (uniqueItems, const): jsonschema's
# words, which may quote the value: a secret's is masked.
def test_a_write_only_setting_is_never_echoed_in_validation_errors() -> None:
    schema = {"type": "object", "properties": {"token": {"pattern": "^t-", "uniqueItems": True, "writeOnly": True}}}
    with pytest.raises(HostError) as info:
        validate_init_config("p", 1, json.dumps(schema), '{"token": "hunter2"}')
    assert str(info.value) == "error in plugin p init config: In <root>[token], <secret> does not match '^t-'"


@pytest.mark.parametrize("value", [["hunter2"], 31337, {"pw": "hunter2"}])
def test_a_write_only_setting_of_the_wrong_type_is_never_echoed_either(value: object) -> None:
    schema = {"type": "object", "properties": {"token": {"type": "string", "const": "x", "writeOnly": True}}}
    with pytest.raises(HostError) as info:
        validate_init_config("p", 1, json.dumps(schema), json.dumps({"token": value}))
    assert "hunter2" not in str(info.value) and "31337" not in str(info.value)
    assert str(info.value).startswith("error in plugin p init config: In <root>[token], <secret> ")


def test_a_python_plugin_config_is_validated_against_its_schema_first(dummy: PluginLibrary) -> None:
    with pytest.raises(HostError, match=r"^error in plugin dummy_py init config: In <root>\[jitter\], "):
        dummy.init('{"jitter": -1}')


def test_an_init_failure_reports_the_plugin_error(ctest: PluginLibrary) -> None:
    with pytest.raises(HostError) as info:
        ctest.init('{"fail": true}')
    assert str(info.value) == "could not initialize plugin: init: you asked me to fail"


def test_log_messages_are_collected_with_the_plugin_name_as_default_component(ctest_handle: PluginHandle) -> None:
    assert ctest_handle.logs == [
        LogRecord(6, "ctest", "config is '{}'"),
        LogRecord(4, "ctest-sub", "a warning"),
    ]


def test_log_messages_can_be_forwarded_to_python_logging(
    ctest: PluginLibrary, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="falco_plugin_tools.host"), ctest.init(forward_logs=True):
        pass
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("falco_plugin_tools.host.ctest", logging.INFO, "ctest: config is '{}'"),
        ("falco_plugin_tools.host.ctest", logging.WARNING, "ctest-sub: a warning"),
    ]


def test_several_states_of_one_library_live_side_by_side(ctest: PluginLibrary) -> None:
    event = HostEvent.plugin_event(b"x", 999, source="ctest")
    with ctest.init('{"level": 1}') as one, ctest.init('{"level": 2}') as two:
        assert one.extract(event, "ctest.config") == '{"level": 1}'
        assert two.extract(event, "ctest.config") == '{"level": 2}'


def test_a_destroyed_handle_refuses_calls(ctest: PluginLibrary) -> None:
    handle = ctest.init()
    handle.destroy()
    handle.destroy()  # idempotent
    assert handle.last_error == "plugin handle or 'get_last_error' function not defined"
    with pytest.raises(HostError, match="destroyed"):
        handle.open()


# -- open and events -------------------------------------------------------------------------


def test_events_are_numbered_from_one_and_the_plugin_sees_the_same_number(ctest_handle: PluginHandle) -> None:
    with ctest_handle.open("5") as capture:
        events = list(capture.events())
    assert [e.num for e in events] == [1, 2, 3, 4, 5]
    assert [ctest_handle.extract(e, "ctest.num") for e in events] == [1, 2, 3, 4, 5]
    assert [e.payload for e in events] == [b"event-1", b"event-2", b"event-3", b"event-4", b"event-5"]


def test_numbering_restarts_with_every_open(ctest_handle: PluginHandle) -> None:
    for _ in range(2):
        with ctest_handle.open("2") as capture:
            assert [e.num for e in capture.events()] == [1, 2]


def test_plugin_events_carry_the_source_and_no_thread(ctest_handle: PluginHandle) -> None:
    with ctest_handle.open("1") as capture:
        (event,) = capture.events()
    seen = (event.type, event.plugin_id, event.source, event.ts, event.tid)
    assert seen == (PLUGIN_EVENT, 999, "ctest", 1001, NO_VALUE)
    assert ctest_handle.extract(event, "ctest.source") == "ctest"


def test_next_batch_copies_events_out_of_plugin_memory(ctest_handle: PluginHandle) -> None:
    # ctest rewrites one buffer on every call: kept pointers would now read events 3 and 4.
    with ctest_handle.open("4") as capture:
        rc1, first = capture.next_batch()
        rc2, second = capture.next_batch()
    assert (rc1, rc2) == (Rc.SUCCESS, Rc.EOF)
    assert [e.payload for e in first] == [b"event-1", b"event-2"]
    assert [e.payload for e in second] == [b"event-3", b"event-4"]


def test_a_limit_keeps_the_rest_of_the_batch_for_later(ctest_handle: PluginHandle) -> None:
    with ctest_handle.open("5") as capture:
        assert [e.num for e in capture.events(limit=3)] == [1, 2, 3]
        assert [e.num for e in capture.events()] == [4, 5]


def test_stopping_early_loses_no_event(ctest_handle: PluginHandle) -> None:
    with ctest_handle.open("4") as capture:
        for event in capture.events():
            if event.num == 3:
                break
        assert [e.num for e in capture.events()] == [4]
        assert capture.last_rc == Rc.EOF
        assert list(capture.events()) == []  # asking again after the end gets the end again


def test_timeouts_are_retried(ctest_handle: PluginHandle) -> None:
    with ctest_handle.open("3 timeout") as capture:
        assert capture.next_batch() == (Rc.TIMEOUT, [])
    with ctest_handle.open("3 timeout") as capture:
        assert len(list(capture.events())) == 3
        assert capture.last_rc == Rc.EOF


def test_an_idle_source_ends_the_iteration_after_the_timeout(ctest_handle: PluginHandle) -> None:
    with ctest_handle.open("3 idle") as capture:
        assert list(capture.events(timeout_s=0.01)) == []
        assert capture.last_rc == Rc.TIMEOUT


def test_a_failing_source_delivers_earlier_events_then_raises(ctest_handle: PluginHandle) -> None:
    seen: list[HostEvent] = []
    with ctest_handle.open("6 fail") as capture, pytest.raises(HostError) as info:
        seen.extend(capture.events())
    assert str(info.value) == "next_batch: the source broke"
    assert len(seen) == 2


def test_an_open_failure_reports_the_plugin_error_verbatim(ctest_handle: PluginHandle) -> None:
    with pytest.raises(HostError) as info:
        ctest_handle.open("x")
    assert str(info.value) == "open: bad params 'x'"


def test_a_plugin_without_sourcing_cannot_be_opened(c_plugin: CPlugin) -> None:
    extractor = c_plugin("-DOMIT_OPEN", "-DOMIT_CLOSE", "-DOMIT_NEXT_BATCH", EVENT_SCHEMA="4.0.0")
    with PluginLibrary.load(extractor) as lib, lib.init() as handle:
        with pytest.raises(HostError) as info:
            handle.open()
    assert str(info.value) == "plugin ctest has not event sourcing capabilities and cannot be used as input."


# -- libsinsp's event schema check ----------------------------------------------------------------

EXTRACT_ONLY = ("-DOMIT_OPEN", "-DOMIT_CLOSE", "-DOMIT_NEXT_BATCH", "-DOMIT_GET_ID", "-DOMIT_GET_EVENT_SOURCE")


def test_an_extractor_that_may_see_syscall_events_needs_an_event_schema(c_plugin: CPlugin) -> None:
    with PluginLibrary.load(c_plugin(*EXTRACT_ONLY)) as lib, pytest.raises(HostError) as info:
        lib.init()
    assert "required event schema version '3.0.0' not compatible" in str(info.value)


@pytest.mark.parametrize("schema", ["4.0.0", "4.7.2"])
def test_an_extractor_declaring_a_4x_event_schema_is_accepted(c_plugin: CPlugin, schema: str) -> None:
    with PluginLibrary.load(c_plugin(*EXTRACT_ONLY, EVENT_SCHEMA=schema)) as lib, lib.init() as handle:
        assert handle.info.capabilities == frozenset({"extraction"})


def test_an_extractor_of_plugin_sources_only_needs_no_event_schema(c_plugin: CPlugin) -> None:
    with PluginLibrary.load(c_plugin(*EXTRACT_ONLY, EXTRACT_SOURCES='["dummy_py"]')) as lib, lib.init():
        pass


# -- libscap's checks on produced events ---------------------------------------------------------


def test_a_zero_plugin_id_in_an_event_is_replaced_by_the_plugin_id(ctest_handle: PluginHandle) -> None:
    with ctest_handle.open("2 zeroid") as capture:
        assert [e.plugin_id for e in capture.events()] == [999, 999]


def test_an_event_with_another_plugin_id_is_an_error(ctest_handle: PluginHandle) -> None:
    with ctest_handle.open("2 otherid") as capture, pytest.raises(HostError) as info:
        list(capture.events())
    assert str(info.value) == "unexpected plugin ID in plugin event: plugin='ctest', expected_id=999, actual_id=7"


def test_a_plugin_with_an_id_must_produce_plugin_events(ctest_handle: PluginHandle) -> None:
    with ctest_handle.open("2 badtype") as capture, pytest.raises(HostError) as info:
        list(capture.events())
    assert str(info.value) == "malformed plugin event produced by plugin: 'ctest'"


def test_a_timestamp_of_all_ones_means_now(ctest_handle: PluginHandle) -> None:
    before = time.time_ns()
    with ctest_handle.open("1 maxts") as capture:
        (event,) = capture.events()
    assert before <= event.ts <= time.time_ns()


# -- progress, open params, event_to_string ------------------------------------------------------


def test_progress_is_a_percentage_with_the_plugin_text(ctest_handle: PluginHandle) -> None:
    with ctest_handle.open("5") as capture:
        assert capture.progress() == (0.0, "0/5")
        capture.next_batch()
        assert capture.progress() == (40.0, "2/5")
    assert capture.progress() == (0.0, "")  # closed


def test_open_params_suggestions_are_parsed(ctest_handle: PluginHandle) -> None:
    assert ctest_handle.list_open_params() == [
        {"value": "3", "desc": "three events", "separator": ""},
        {"value": "5 zeroid", "desc": "", "separator": ";"},
    ]


def test_a_plugin_renders_its_own_events(ctest_handle: PluginHandle) -> None:
    with ctest_handle.open("1") as capture:
        (event,) = capture.events()
    assert ctest_handle.event_to_string(event) == "ctest #1 event-1"


def test_only_the_plugin_own_events_can_be_rendered(ctest_handle: PluginHandle) -> None:
    with pytest.raises(HostError) as info:
        ctest_handle.event_to_string(HostEvent.plugin_event(b"x", 5))
    assert str(info.value) == "can't format unknown non-plugin event to string"


def test_without_event_to_string_the_payload_is_shown_like_libsinsp(c_plugin: CPlugin) -> None:
    with PluginLibrary.load(c_plugin("-DOMIT_EVENT_TO_STRING")) as lib, lib.init() as handle:
        assert handle.event_to_string(HostEvent.plugin_event(b"hello", 999)) == "datalen=5 data=hello"
        assert handle.event_to_string(HostEvent.plugin_event(b"a\x00b", 999)) == "datalen=3 data=<binary>"
        assert handle.event_to_string(HostEvent.plugin_event(b"y" * 51, 999)) == f"datalen=51 data={'y' * 50}..."


# -- extraction -----------------------------------------------------------------------------------


@pytest.fixture
def ctest_event(ctest_handle: PluginHandle) -> HostEvent:
    with ctest_handle.open("2") as capture:
        return list(capture.events())[1]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ctest.payload", "event-2"),
        ("ctest.num", 2),
        ("ctest.even", True),
        ("ctest.elapsed", 1500),
        ("ctest.ip", ipaddress.IPv4Address("192.168.0.1")),
        ("ctest.ip6", ipaddress.IPv6Address("::1")),
        ("ctest.net", ipaddress.IPv4Network("10.0.0.0/32")),
        ("ctest.none", None),
    ],
)
def test_values_are_converted_by_field_type(
    ctest_handle: PluginHandle, ctest_event: HostEvent, field: str, value: object
) -> None:
    assert ctest_handle.extract(ctest_event, field) == value


def test_the_field_request_carries_id_type_list_flag_and_argument_presence(
    ctest_handle: PluginHandle, ctest_event: HostEvent
) -> None:
    # ctest.meta is field 7, a list of uint64 (8); libsinsp passes the raw list flag (64).
    assert ctest_handle.extract(ctest_event, "ctest.meta") == [7, 8, 64, 0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ctest.idx[3]", 30),
        ("ctest.key[abc]", "abc"),
        ("ctest.key", "<none>"),
        ("ctest.both[12]", "index=12 key=12"),
        ("ctest.both[x]", "index=0 key=x"),
    ],
)
def test_arguments_reach_the_plugin_parsed(
    ctest_handle: PluginHandle, ctest_event: HostEvent, field: str, value: str
) -> None:
    assert ctest_handle.extract(ctest_event, field) == value


def test_an_extraction_failure_raises_the_plugin_error_unless_lenient(
    ctest_handle: PluginHandle, ctest_event: HostEvent
) -> None:
    with pytest.raises(ExtractionError) as info:
        ctest_handle.extract(ctest_event, "ctest.fail")
    assert str(info.value) == "extraction of ctest.fail failed on purpose"
    assert ctest_handle.extract(ctest_event, "ctest.fail", strict=False) is None


def test_extract_many_returns_values_by_expression(ctest_handle: PluginHandle, ctest_event: HostEvent) -> None:
    assert ctest_handle.extract_many(ctest_event, ["ctest.num", "ctest.idx[1]"]) == {"ctest.num": 2, "ctest.idx[1]": 10}


def test_events_of_an_unrelated_source_give_no_value(ctest_handle: PluginHandle) -> None:
    assert ctest_handle.extract(HostEvent.plugin_event(b"1", 29, source="dummy_py"), "ctest.payload") is None


def test_a_python_plugin_extracts_and_reports_its_errors(dummy: PluginLibrary) -> None:
    with dummy.init('{"jitter": 0}') as handle, handle.open('{"start": 9, "maxEvents": 2}') as capture:
        events = list(capture.events())
        assert [handle.extract(e, "dummy.value") for e in events] == [10, 11]
        assert [handle.extract(e, "dummy.divisible[5]") for e in events] == [1, 0]
        assert handle.extract(events[0], "dummy.strvalue") == "10"
        with pytest.raises(ExtractionError) as info:
            handle.extract(events[0], "dummy.divisible[0]")
        assert str(info.value) == "extracting dummy.divisible[0]: the divisor must be a positive integer"


def test_a_python_plugin_open_failure_is_reported(dummy: PluginLibrary) -> None:
    with dummy.init() as handle, pytest.raises(HostError) as info:
        handle.open('{"maxEvents": -1}')
    assert str(info.value) == "open: invalid open params: maxEvents: must be >= 0, got -1"


# -- two plugins at once ------------------------------------------------------------------------------


def test_a_c_extractor_reads_events_of_a_python_source_in_the_same_process(
    dummy: PluginLibrary, c_plugin: CPlugin
) -> None:
    with (
        PluginLibrary.load(c_plugin(EXTRACT_SOURCES='["dummy_py"]')) as ctest,
        dummy.init('{"jitter": 0}') as source,
        ctest.init() as extractor,
        source.open('{"start": 0, "maxEvents": 3}') as dummy_capture,
        extractor.open("2") as ctest_capture,
    ):
        dummy_events = list(dummy_capture.events())
        ctest_events = list(ctest_capture.events())
        assert [extractor.extract(e, "ctest.payload") for e in dummy_events] == ["1", "2", "3"]
        assert [extractor.extract(e, "ctest.source") for e in dummy_events] == ["dummy_py"] * 3
        assert [source.extract(e, "dummy.value") for e in ctest_events] == [None, None]
        assert [e.num for e in ctest_events] == [1, 2]
