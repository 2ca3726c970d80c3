"""Exceptions in plugin code, in every entry point, become a failure code plus a
``get_last_error`` message naming the entry point; the host keeps working.

Driven in-process through the host's raw layer (:mod:`falco_plugin_tools.host.raw`)
with the ``faulty`` fixture plugin, whose config says which entry points raise
(``set_config`` changes it between calls). The end-to-end checks run on both
hosts (the ``host`` fixture).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from falco_plugin_tools.host import Rc
from falco_plugin_tools.host.raw import Event, Library, State, plugin_event
from falco_plugin_tools.host.runners import Failure, Host
from harness import Built, RunChost

FIELDS = ["faulty.text", "faulty.number", "faulty.flag", "faulty.item[3]", "faulty.names"]


def config(*fail: str, exc: str = "ValueError", count: int = 6) -> str:
    return json.dumps({"fail": list(fail), "exc": exc, "count": count})


@pytest.fixture
def lib(loaded: Callable[[str], Library]) -> Library:
    return loaded("faulty")


@pytest.fixture
def state(lib: Library) -> Iterator[State]:
    st = lib.init(config())
    assert st.rc == Rc.SUCCESS, st.last_error
    yield st
    st.destroy()


EVENT = Event.from_bytes(plugin_event(b"faulty 7"), num=1)


def works(st: State, *, reset: bool = True) -> None:
    """The state still sources and extracts normally (after clearing the injected failures)."""
    if reset:
        assert st.set_config(config()) == Rc.SUCCESS, st.last_error
    rc, inst = st.open()
    assert rc == Rc.SUCCESS and inst is not None, st.last_error
    rc, events = inst.next_batch()
    assert rc == Rc.SUCCESS, st.last_error
    assert st.values(events[0], "faulty.number", "faulty.item[2]") == [[1], [20]]
    inst.close()


# -- init ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        ("ValueError", "init: ValueError: injected failure in init"),
        ("PluginError", "init: injected failure in init"),  # operator-facing text, verbatim
        ("SystemExit", "init: SystemExit: injected failure in init"),
        ("KeyboardInterrupt", "init: KeyboardInterrupt: injected failure in init"),
        ("MemoryError", "init: MemoryError: injected failure in init"),
    ],
)
def test_exception_in_init_is_a_failure_with_the_entry_point_named(lib: Library, exc: str, message: str) -> None:
    st = lib.init(config("init", exc=exc))
    assert st.rc == Rc.FAILURE
    assert st.last_error == message
    st.destroy()
    good = lib.init(config())
    assert good.rc == Rc.SUCCESS
    works(good)
    good.destroy()


# -- every other entry point --------------------------------------------------------


def test_exception_in_open_fails_open_and_the_next_open_works(state: State) -> None:
    assert state.set_config(config("open")) == Rc.SUCCESS
    rc, inst = state.open()
    assert (rc, inst) == (Rc.FAILURE, None)
    assert state.last_error == "open: ValueError: injected failure in open"
    works(state)


def test_open_returning_something_else_than_an_instance_fails_open(state: State) -> None:
    assert state.set_config(config("badvalue:open")) == Rc.SUCCESS
    assert state.open()[0] == Rc.FAILURE
    assert state.last_error == "open: FaultyPlugin.open returned str, not a SourceInstance"
    works(state)


def test_exception_in_next_batch_fails_the_batch_and_the_stream_goes_on(state: State) -> None:
    rc, inst = state.open()
    assert inst is not None
    assert state.set_config(config("next_batch")) == Rc.SUCCESS
    assert inst.next_batch() == (Rc.FAILURE, [])
    assert state.last_error == "next_batch: ValueError: injected failure in next_batch"
    assert state.set_config(config()) == Rc.SUCCESS
    rc, events = inst.next_batch()
    assert rc == Rc.SUCCESS and [e.bytes()[-8:] for e in events] == [b"faulty 1", b"faulty 2"]


def test_next_batch_returning_a_bad_payload_fails_naming_the_event(state: State) -> None:
    _rc, inst = state.open()
    assert inst is not None
    assert state.set_config(config("badvalue:next_batch")) == Rc.SUCCESS
    assert inst.next_batch()[0] == Rc.FAILURE
    assert state.last_error == "next_batch: TypeError: event 1: payload must be bytes-like, not int"
    works(state)


@pytest.mark.parametrize("spec", FIELDS)
def test_exception_in_a_field_fails_extraction_naming_the_field(state: State, spec: str) -> None:
    name = spec.partition("[")[0]
    assert state.set_config(config(f"extract:{name}")) == Rc.SUCCESS
    got = state.extract(EVENT, spec)
    assert got.rc == Rc.FAILURE
    assert state.last_error == f"extracting {spec}: ValueError: injected failure in extract:{name}"
    others = [s for s in FIELDS if s != spec]
    assert state.extract(EVENT, *others).rc == Rc.SUCCESS, state.last_error


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("faulty.text", "TypeError: expected str, got int"),
        ("faulty.number", "TypeError: expected an int between 0 and 2**64-1, got -1"),
        ("faulty.item[3]", "TypeError: expected an int between 0 and 2**64-1, got 'ten'"),
        ("faulty.names", "TypeError: expected str, got int"),
    ],
)
def test_field_value_of_the_wrong_type_fails_extraction_naming_the_field(state: State, spec: str, reason: str) -> None:
    name = spec.partition("[")[0]
    assert state.set_config(config(f"badvalue:extract:{name}")) == Rc.SUCCESS
    assert state.extract(EVENT, spec).rc == Rc.FAILURE
    assert state.last_error == f"extracting {spec}: {reason}"
    assert state.set_config(config()) == Rc.SUCCESS
    assert state.extract(EVENT, spec).rc == Rc.SUCCESS


def test_failing_field_in_a_multi_field_request_fails_the_whole_call(state: State) -> None:
    assert state.set_config(config("extract:faulty.flag")) == Rc.SUCCESS
    assert state.extract(EVENT, "faulty.text", "faulty.flag", "faulty.number").rc == Rc.FAILURE
    assert state.last_error.startswith("extracting faulty.flag: ")


def test_exception_in_event_to_string_gives_an_empty_string_and_an_error(state: State) -> None:
    assert state.set_config(config("event_to_string")) == Rc.SUCCESS
    assert state.event_to_string(EVENT)[1] == ""
    assert state.last_error == "event_to_string: ValueError: injected failure in event_to_string"
    assert state.set_config(config()) == Rc.SUCCESS
    assert state.event_to_string(EVENT)[1] == "faulty event"


def test_exception_in_progress_gives_zero_and_an_error(state: State) -> None:
    _rc, inst = state.open()
    assert inst is not None
    assert state.set_config(config("get_progress")) == Rc.SUCCESS
    assert inst.progress() == (0, "")
    assert state.last_error == "get_progress: ValueError: injected failure in get_progress"
    assert state.set_config(config()) == Rc.SUCCESS
    assert inst.progress() == (5000, "50.00")


def test_exception_in_list_open_params_is_a_failure(state: State) -> None:
    assert state.set_config(config("list_open_params")) == Rc.SUCCESS
    assert state.list_open_params() == (Rc.FAILURE, None)
    assert state.last_error == "list_open_params: ValueError: injected failure in list_open_params"
    assert state.set_config(config()) == Rc.SUCCESS
    assert state.list_open_params() == (Rc.SUCCESS, '[{"value": "", "desc": "the only stream", "separator": ""}]')


def test_exception_in_close_is_reported_and_the_next_open_works(state: State) -> None:
    _rc, inst = state.open()
    assert inst is not None
    assert state.set_config(config("close")) == Rc.SUCCESS
    inst.close()
    assert state.last_error == "close: ValueError: injected failure in close"
    works(state)


def test_exception_in_set_config_is_a_failure_and_keeps_the_old_config(state: State) -> None:
    assert state.set_config(config("set_config", count=2)) == Rc.SUCCESS
    assert state.set_config(config(count=4)) == Rc.FAILURE
    assert state.last_error == "set_config: ValueError: injected failure in set_config"
    _rc, inst = state.open()
    assert inst is not None
    assert inst.next_batch()[0] == Rc.SUCCESS
    assert inst.next_batch()[0] == Rc.EOF  # still count=2


def test_invalid_set_config_names_the_key(state: State) -> None:
    assert state.set_config('{"fail": "open"}') == Rc.FAILURE
    assert state.last_error == "set_config: invalid config: fail: expected an array, got a string"


def test_exception_in_destroy_neither_crashes_nor_breaks_the_library(lib: Library) -> None:
    st = lib.init(config("destroy"))
    assert st.rc == Rc.SUCCESS
    before = len(lib.logs)
    st.destroy()
    assert any("destroy: ValueError: injected failure in destroy" in msg for _, _, msg in lib.logs[before:])
    good = lib.init(config())
    works(good)
    good.destroy()


@pytest.mark.parametrize("exc", ["SystemExit", "KeyboardInterrupt"])
@pytest.mark.parametrize(
    "where", ["open", "next_batch", "extract:faulty.text", "event_to_string", "list_open_params", "set_config"]
)
def test_system_exit_and_keyboard_interrupt_never_leave_plugin_code(state: State, exc: str, where: str) -> None:
    _rc, inst = state.open()
    assert inst is not None
    assert state.set_config(config(where, exc=exc)) == Rc.SUCCESS
    call: dict[str, Callable[[], object]] = {
        "open": lambda: state.open()[0],
        "next_batch": lambda: inst.next_batch()[0],
        "extract:faulty.text": lambda: state.extract(EVENT, "faulty.text").rc,
        "event_to_string": lambda: state.event_to_string(EVENT)[1],
        "list_open_params": lambda: state.list_open_params()[0],
        "set_config": lambda: state.set_config(config()),
    }
    assert call[where]() in (Rc.FAILURE, "")
    assert state.last_error.endswith(f"{exc}: injected failure in {where}")
    works(state, reset=where != "set_config")


def test_error_text_is_bounded_by_the_api_maximum(state: State) -> None:
    huge = "k" * 5000
    assert state.set_config(json.dumps({huge: 1})) == Rc.FAILURE
    error = state.last_error
    assert error.startswith("set_config: invalid config: kkk")
    assert len(error.encode()) <= 1023  # PLUGIN_MAX_ERRLEN includes the NUL


def test_plugin_errors_are_logged_at_warning_and_with_their_traceback_at_debug(lib: Library, state: State) -> None:
    before = len(lib.logs)
    assert state.set_config(config("event_to_string")) == Rc.SUCCESS
    state.event_to_string(EVENT)
    logged = lib.logs[before:]
    assert [(sev, comp) for sev, comp, _ in logged] == [(4, "fxt_faulty"), (7, "fxt_faulty")]
    assert logged[0][2] == "event_to_string: ValueError: injected failure in event_to_string"
    message = logged[1][2]
    assert message.startswith("event_to_string: ValueError: injected failure in event_to_string\nTraceback")
    assert "in event_to_string" in message


def test_only_the_first_failure_of_an_entry_point_is_logged_then_a_count(lib: Library, state: State) -> None:
    """Without debug logging a failing entry point still shows, once: the message at warning; the
    failures after it are counted and summed up at most every FailureLog.INTERVAL seconds."""
    assert state.set_config(config("event_to_string", exc="PluginError")) == Rc.SUCCESS
    before = len(lib.logs)
    for _ in range(50):
        state.event_to_string(EVENT)
    assert lib.logs[before:] == [(4, "fxt_faulty", "event_to_string: injected failure in event_to_string")]


def test_operator_facing_plugin_errors_are_logged_without_tracebacks(lib: Library, state: State) -> None:
    before = len(lib.logs)
    assert state.set_config(config("event_to_string", exc="PluginError")) == Rc.SUCCESS
    state.event_to_string(EVENT)
    assert state.last_error == "event_to_string: injected failure in event_to_string"
    assert lib.logs[before:] == [(4, "fxt_faulty", "event_to_string: injected failure in event_to_string")]


def test_timeout_is_not_an_error(loaded: Callable[[str], Library]) -> None:
    st = loaded("source_only").init("")
    rc, inst = st.open("timeouts:1")
    assert inst is not None
    assert inst.next_batch() == (Rc.TIMEOUT, [])  # an empty batch
    assert inst.next_batch() == (Rc.TIMEOUT, [])  # raise Timeout
    assert st.last_error == ""
    rc, events = inst.next_batch()
    assert (rc, len(events)) == (Rc.SUCCESS, 1)
    st.destroy()


# -- end to end, through the C host ---------------------------------------------------------


@pytest.mark.parametrize("exc", ["SystemExit", "KeyboardInterrupt"])
def test_system_exit_in_plugin_code_does_not_exit_the_c_host(built: Built, run_chost: RunChost, exc: str) -> None:
    out = run_chost(built("faulty").library, "--config", config("next_batch", exc=exc))
    assert out.stderr == f"error: next_batch: next_batch: {exc}: injected failure in next_batch\n"
    assert out.stdout.splitlines()[-1] == "done events=0 rc=1"  # the host went on to close and unload
    assert out.returncode == 1


# -- in both hosts -----------------------------------------------------------------------------


@pytest.mark.parametrize("exc", ["ValueError", "PluginError", "SystemExit", "KeyboardInterrupt"])
@pytest.mark.parametrize("where", ["init", "open", "next_batch"])
def test_an_exception_ends_the_run_with_the_plugins_message_in_both_hosts(
    host: Host, built: Built, where: str, exc: str
) -> None:
    run = host.run(built("faulty").library, init_config=config(where, exc=exc), fields=["faulty.number"])
    shown = "" if exc == "PluginError" else f"{exc}: "
    assert run.failure == Failure(where, f"{where}: {shown}injected failure in {where}")  # type: ignore[arg-type]
    assert run.events == []


def test_a_bad_payload_from_next_batch_ends_the_run_in_both_hosts(host: Host, built: Built) -> None:
    run = host.run(built("faulty").library, init_config=config("badvalue:next_batch"))
    assert run.failure == Failure("next_batch", "next_batch: TypeError: event 1: payload must be bytes-like, not int")


def test_field_errors_do_not_stop_either_host(host: Host, built: Built) -> None:
    run = host.run(
        built("faulty").library, init_config=config("extract:faulty.text"), fields=["faulty.text", "faulty.number"]
    )
    assert run.failure is None
    assert [e.errors for e in run.events] == [
        {"faulty.text": "extracting faulty.text: ValueError: injected failure in extract:faulty.text"}
    ] * 6
    assert run.column("faulty.number") == ["1", "2", "3", "4", "5", "6"]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("faulty.text", "TypeError: expected str, got int"),
        ("faulty.number", "TypeError: expected an int between 0 and 2**64-1, got -1"),
        ("faulty.item[3]", "TypeError: expected an int between 0 and 2**64-1, got 'ten'"),
        ("faulty.names", "TypeError: expected str, got int"),
    ],
)
def test_a_field_value_of_the_wrong_type_is_that_fields_error_in_both_hosts(
    host: Host, built: Built, spec: str, reason: str
) -> None:
    name = spec.partition("[")[0]
    run = host.run(built("faulty").library, init_config=config(f"badvalue:extract:{name}", count=2), fields=[spec])
    assert run.failure is None
    assert [e.errors for e in run.events] == [{spec: f"extracting {spec}: {reason}"}] * 2


def test_falco_plugin_run_prints_a_field_error_next_to_the_field_and_exits_1(
    built: Built, capsys: pytest.CaptureFixture[str]
) -> None:
    """Falco shows a failed field as <NA> and says nothing; the SDK's runner says what failed, where."""
    from falco_plugin_tools.cli import main

    library = str(built("faulty").library)
    args = ["run", library, "--fields", "faulty.text,faulty.number", "-n", "2"]
    rc = main([*args, "--init-config", config("extract:faulty.number", count=2)])
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    error = "<error: extracting faulty.number: ValueError: injected failure in extract:faulty.number>"
    fields = [line.split(" ", 2)[2] for line in out[:2]]
    assert fields == [f"faulty.text=faulty {n} faulty.number={error}" for n in (1, 2)]
    assert out[2].endswith(" errors=2")
    assert main([*args, "--init-config", config(count=2)]) == 0  # nothing failed: status 0


def test_after_the_first_failure_a_count_is_logged_at_most_every_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """FailureLog, the runtime's: the first failure of a kind at once, then one line per INTERVAL with
    how many failed since and the latest message; kinds are independent."""
    import logging

    from falco_plugin._internal import runtime

    now = [100.0]
    monkeypatch.setattr(runtime.time, "monotonic", lambda: now[0])
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(f"{record.levelname} {record.getMessage()}")

    log = logging.Logger("t")
    log.addHandler(Keep())
    failures = runtime.FailureLog(log)
    for i in range(5):
        failures("parse_event", f"parse_event: bad {i}")
        now[0] += 1
    failures("extracting a.b", "extracting a.b: no")
    now[0] += runtime.FailureLog.INTERVAL
    failures("parse_event", "parse_event: bad 5")
    assert records == [
        "WARNING parse_event: bad 0",
        "WARNING extracting a.b: no",
        "WARNING parse_event: bad 5 (5 failures of parse_event in the last 15 s)",
    ]
