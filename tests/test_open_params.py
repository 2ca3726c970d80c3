"""Open parameters: typed params are parsed and validated with key-naming
errors, untyped ones reach the plugin as the host's string, and
``list_open_params`` lists the suggestions."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from falco_plugin_tools.host import Rc
from falco_plugin_tools.host.raw import Library, State
from falco_plugin_tools.host.runners import Failure, Host
from harness import Built, RunChost


@pytest.fixture
def full(loaded: Callable[[str], Library]) -> State:
    st = loaded("full").init("{}")
    assert st.rc == Rc.SUCCESS, st.last_error
    return st


def counters(st: State, params: str) -> list[int]:
    _rc, inst = st.open(params)
    assert inst is not None, st.last_error
    events = inst.batches()
    inst.close()
    return [st.values(e, "full.counter")[0][0] for e in events]


def test_typed_open_params_are_parsed(full: State) -> None:
    assert counters(full, '{"count": 3, "start": 40}') == [40, 41, 42]


@pytest.mark.parametrize("params", ["", "{}", "  \n"])
def test_empty_open_params_mean_all_defaults(full: State, params: str) -> None:
    assert counters(full, params) == list(range(10))


INVALID = [
    ('{"count": -1}', "count: must be >= 0, got -1"),
    ('{"count": "3"}', "count: expected an integer, got a string"),
    ('{"count": 3, "stop": 9}', "stop: unknown setting (expected one of: count, start)"),
    ("count=3", "not valid JSON: Expecting value at line 1 column 1"),
    ("[3]", "expected an object, got an array"),
]


@pytest.mark.parametrize(("params", "message"), INVALID)
def test_invalid_open_params_fail_open_naming_the_key(full: State, params: str, message: str) -> None:
    assert full.open(params) == (Rc.FAILURE, None)
    assert full.last_error == f"open: invalid open params: {message}"
    assert counters(full, '{"count": 1}') == [0]  # the next open works


def test_open_params_declared_as_str_arrive_as_str(loaded: Callable[[str], Library]) -> None:
    st = loaded("legacy").init("")
    _, inst = st.open("anything")
    assert inst is not None, st.last_error
    _rc, events = inst.next_batch()
    assert st.values(events[0], "legacy.params_type") == [["str"]]


def test_list_open_params_lists_the_suggestions(full: State) -> None:
    rc, text = full.list_open_params()
    assert rc == Rc.SUCCESS and text is not None
    assert json.loads(text) == [
        {"value": '{"count": 3}', "desc": "three events", "separator": ""},
        {"value": '{"count": 100, "start": 5}', "desc": "a hundred events from 5", "separator": "|"},
    ]


def test_each_open_is_an_independent_stream(full: State) -> None:
    _rc1, first = full.open('{"count": 2, "start": 0}')
    _rc2, second = full.open('{"count": 2, "start": 100}')
    assert first is not None and second is not None
    a = first.next_batch()[1]
    b = second.next_batch()[1]
    assert [full.values(e, "full.counter")[0][0] for e in a] == [0, 1]
    assert [full.values(e, "full.counter")[0][0] for e in b] == [100, 101]
    assert first.next_batch()[0] == Rc.EOF
    first.close()
    second.close()


def test_invalid_open_params_reach_the_c_host_as_one_line(built: Built, run_chost: RunChost) -> None:
    out = run_chost(built("dummy").library, "--open", '{"maxEvents": -1}')
    assert out.returncode == 1
    assert out.stderr == "error: open: open: invalid open params: maxEvents: must be >= 0, got -1\n"


# -- in both hosts --------------------------------------------------------------------------


def test_typed_open_params_reach_the_plugin_in_both_hosts(host: Host, built: Built) -> None:
    run = host.run(built("full").library, open_params='{"count": 3, "start": 40}', fields=["full.counter"])
    assert (run.failure, run.column("full.counter")) == (None, ["40", "41", "42"])


@pytest.mark.parametrize("params", ["", "{}", "  \n"])
def test_empty_open_params_mean_all_defaults_in_both_hosts(host: Host, built: Built, params: str) -> None:
    run = host.run(built("full").library, open_params=params, fields=["full.counter"])
    assert (run.failure, run.column("full.counter")) == (None, [str(i) for i in range(10)])


@pytest.mark.parametrize(("params", "message"), INVALID)
def test_invalid_open_params_fail_open_with_the_plugins_message_in_both_hosts(
    host: Host, built: Built, params: str, message: str
) -> None:
    run = host.run(built("full").library, open_params=params, fields=["full.counter"])
    assert (run.failure, run.events) == (Failure("open", f"open: invalid open params: {message}"), [])


def test_untyped_open_params_arrive_as_the_hosts_string_in_both_hosts(host: Host, built: Built) -> None:
    run = host.run(built("legacy").library, open_params="anything", fields=["legacy.params_type"], n=1)
    assert (run.failure, run.column("legacy.params_type")) == (None, ["str"])
