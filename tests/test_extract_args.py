"""Field extraction from a host's point of view: value types, field arguments
(index/key, required/optional) and what the plugin sees of the event."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin.event import PLUGIN_EVENT
from falco_plugin_tools.host import Rc
from falco_plugin_tools.host.raw import Event, Library, Request, State, plugin_event, raw_event
from falco_plugin_tools.host.runners import Host, PythonHost, SinspHost
from harness import Built

PAYLOAD = b"alpha be gamma"
TS = 1_650_000_000_123_456_789
EVENT = Event.from_bytes(plugin_event(PAYLOAD, ts=TS, plugin_id=999_102), num=41, source="fxt_full")


@pytest.fixture(scope="module")
def xo(loaded: Callable[[str], Library]) -> State:
    st = loaded("extract_only").init('{"name": "args"}')
    assert st.rc == Rc.SUCCESS, st.last_error
    return st


def one(st: State, spec: str, event: Event = EVENT) -> list[object]:
    return st.values(event, spec)[0]


def error(st: State, spec: str | Request, event: Event = EVENT) -> str:
    assert st.extract(event, spec).rc == Rc.FAILURE
    return st.last_error


@pytest.mark.parametrize(
    ("spec", "values"),
    [
        ("xo.payload", ["alpha be gamma"]),
        ("xo.len", [14]),
        ("xo.even", [1]),
        ("xo.reltime", [1500]),
        ("xo.abstime", [TS]),
        ("xo.ipv4", [bytes([192, 168, 0, 1])]),
        ("xo.ipv6", [bytes(15) + b"\x01"]),
        ("xo.net", [bytes([10, 0, 0, 0])]),
        ("xo.words", ["alpha", "be", "gamma"]),
        ("xo.lengths", [5, 2, 5]),
        ("xo.num", [41]),
        ("xo.source", ["fxt_full"]),
        ("xo.evtype", [PLUGIN_EVENT]),
    ],
)
def test_each_field_type_is_returned_in_its_c_representation(xo: State, spec: str, values: list[object]) -> None:
    assert one(xo, spec) == values


def test_none_means_the_field_has_no_value(xo: State) -> None:
    empty = Event.from_bytes(plugin_event(b""), num=2)
    got = xo.extract(empty, "xo.maybe", "xo.words")
    assert got.rc == Rc.SUCCESS
    assert [f.res_len for f in got.fields] == [0, 0]


def test_several_fields_in_one_call_each_get_their_values(xo: State) -> None:
    got = xo.values(EVENT, "xo.words", "xo.len", "xo.word[2]", "xo.lengths", "xo.payload", "xo.even")
    assert got == [["alpha", "be", "gamma"], [14], ["gamma"], [5, 2, 5], ["alpha be gamma"], [1]]


def test_many_fields_in_one_call(xo: State) -> None:
    specs = [f"xo.word[{i % 3}]" for i in range(40)]
    assert xo.values(EVENT, *specs) == [[["alpha", "be", "gamma"][i % 3]] for i in range(40)]


# -- arguments ---------------------------------------------------------------------------


def test_required_index_argument_is_passed_as_an_int(xo: State) -> None:
    assert one(xo, "xo.word[1]") == ["be"]
    assert one(xo, "xo.word[7]") == []  # the extractor returned None


def test_optional_index_argument_may_be_omitted(xo: State) -> None:
    assert one(xo, "xo.opt") == ["none"]
    assert one(xo, "xo.opt[5]") == ["index=5"]
    assert one(xo, f"xo.opt[{2**64 - 1}]") == [f"index={2**64 - 1}"]


def test_required_key_argument_is_passed_as_a_str(xo: State) -> None:
    assert one(xo, "xo.key[user.name]") == ["key=user.name"]
    assert one(xo, "xo.key[é/ü]") == ["key=é/ü"]


def test_optional_key_argument_may_be_omitted(xo: State) -> None:
    assert one(xo, "xo.optkey") == ["none"]
    assert one(xo, "xo.optkey[k]") == ["key=k"]


@pytest.mark.parametrize(("spec", "shape"), [("xo.word", "xo.word[<index>]"), ("xo.key", "xo.key[<key>]")])
def test_missing_required_argument_is_an_error(xo: State, spec: str, shape: str) -> None:
    assert error(xo, spec) == f"extracting {spec}: ValueError: this field requires an argument: {shape}"


def test_argument_given_to_a_field_without_one_is_an_error(xo: State) -> None:
    assert error(xo, "xo.payload[3]") == "extracting xo.payload[3]: ValueError: this field takes no argument"


def test_key_field_flagged_with_an_argument_but_no_key_is_an_error(xo: State) -> None:
    request = Request(xo.library.field_id("xo.key"), "xo.key", arg_present=True)
    assert error(xo, request) == "extracting xo.key: ValueError: the host passed no key argument"


def test_unknown_field_id_is_an_error(xo: State) -> None:
    request = Request(len(xo.library.fields))
    assert error(xo, request) == f"extract_fields: unknown field id {len(xo.library.fields)}"


def test_argument_errors_do_not_break_later_extractions(xo: State) -> None:
    error(xo, "xo.word")
    assert one(xo, "xo.word[0]") == ["alpha"]


# -- what the plugin sees of the event ---------------------------------------------------------


def test_a_non_plugin_event_has_an_empty_payload_and_its_own_type(xo: State) -> None:
    syscall_like = Event.from_bytes(raw_event(293, [b"\x01\x00", b"hello"], ts=5), num=9, source="syscall")
    assert xo.values(syscall_like, "xo.evtype", "xo.len", "xo.abstime", "xo.source") == [[293], [0], [5], ["syscall"]]


def test_event_source_is_empty_when_the_host_gives_none(xo: State) -> None:
    anonymous = Event.from_bytes(plugin_event(b"x"), num=3, source=None)
    assert one(xo, "xo.source", anonymous) == [""]


# -- field metadata ---------------------------------------------------------------------------


def test_get_fields_describes_types_lists_and_arguments(loaded: Callable[[str], Library]) -> None:
    fields = {f["name"]: f for f in loaded("extract_only").fields}
    assert fields["xo.payload"] == {
        "name": "xo.payload",
        "type": "string",
        "desc": "The payload as text",
        "display": "Payload",
        "addOutput": True,
    }
    assert fields["xo.even"] == {
        "name": "xo.even",
        "type": "bool",
        "desc": "Payload length is even",
        "properties": ["info"],
    }
    assert fields["xo.words"]["isList"] is True and fields["xo.lengths"]["type"] == "uint64"
    assert fields["xo.word"]["arg"] == {"isRequired": True, "isIndex": True, "isKey": False}
    assert fields["xo.opt"]["arg"] == {"isRequired": False, "isIndex": True, "isKey": False}
    assert fields["xo.key"]["arg"] == {"isRequired": True, "isIndex": False, "isKey": True}
    assert fields["xo.optkey"]["arg"] == {"isRequired": False, "isIndex": False, "isKey": True}
    assert [fields[n]["type"] for n in ("xo.reltime", "xo.abstime", "xo.ipv4", "xo.net")] == [
        "reltime",
        "abstime",
        "ipaddr",
        "ipnet",
    ]


# -- in both hosts ----------------------------------------------------------------------------

# A bad field expression: libsinsp refuses it when it parses the field (a rule using it would not
# compile), and the Python host refuses it in libsinsp's words; the C host checks nothing and sends
# it, so the plugin's own check answers.
ARGUMENT_ERRORS: dict[str, dict[str, str]] = {
    "python": {
        "dummy.divisible": "filter 'dummy.divisible': dummy.divisible requires an argument but none provided",
        "dummy.value[2]": (
            "filter 'dummy.value[2]': dummy.value does not allow nor require an argument but one is provided: 2"
        ),
    },
    "c": {
        "dummy.divisible": (
            "extracting dummy.divisible: ValueError: this field requires an argument: dummy.divisible[<index>]"
        ),
        "dummy.value[2]": "extracting dummy.value[2]: ValueError: this field takes no argument",
    },
}
ARGUMENT_ERRORS["sinsp"] = ARGUMENT_ERRORS["python"]


def test_field_arguments_reach_the_plugin_in_both_hosts(built: Built, host: Host) -> None:
    fields = ["dummy.value", "dummy.divisible[3]", "dummy.divisible", "dummy.value[2]"]
    run = host.run(
        built("dummy").library, init_config='{"jitter": 0}', open_params='{"start": 0, "maxEvents": 6}', fields=fields
    )
    assert run.failure is None
    assert run.column("dummy.value") == ["1", "2", "3", "4", "5", "6"]
    assert run.column("dummy.divisible[3]") == ["0", "0", "1", "0", "0", "1"]
    assert all(e.errors == ARGUMENT_ERRORS[host.name] for e in run.events)


def test_index_and_key_arguments_of_every_kind_in_both_hosts(built: Built, host: Host) -> None:
    fields = ["faulty.item[0]", "faulty.item[7]", f"faulty.item[{2**32}]", "faulty.names", "faulty.flag"]
    run = host.run(built("faulty").library, init_config='{"count": 2}', fields=fields)
    assert run.failure is None
    assert [e.values for e in run.events] == [
        {
            "faulty.item[0]": "0",
            "faulty.item[7]": "70",
            f"faulty.item[{2**32}]": str(2**32 * 10),
            "faulty.names": "a,b",
            "faulty.flag": "true",
        }
    ] * 2


def test_the_field_extract_one_returns_owns_its_memory(xo: State) -> None:
    """``extract_one`` hands back the ``ss_plugin_extract_field`` the plugin filled: it must stay valid
    while the caller reads it, however much the host allocates in between (the Python host replaying a
    capture read a freed one and crashed)."""
    from falco_plugin_tools.host._ffi import ffi

    request = xo.request("xo.words")
    rc, field = xo.extract_one(EVENT, request)
    assert rc == Rc.SUCCESS
    # Allocations of the same size take freed blocks first: scribble over any the field may sit in.
    scribbled = [ffi.new("ss_plugin_extract_field[]", 1) for _ in range(64)]
    for s in scribbled:
        s[0].field_id = 0xDEAD
        s[0].res_len = 0xBEEF
    assert (field.field_id, field.res_len) == (request.field_id, 3)
    assert xo.decode(field) == ["alpha", "be", "gamma"]


# The field expressions a test or a rule may get wrong, refused by the Python host in libsinsp's
# words (compared with real libsinsp): libsinsp reads the field up to the first space and checks
# the argument before checking that the expression ended (tests fail on the old Python host,
# which trimmed blanks and refused trailing text in words of its own).
ODD_EXPRESSIONS = [
    "dummy.nope",
    "dummy.valuex",
    " dummy.value",
    "dummy.value ",
    "dummy.value x",
    "dummy.value[",
    "dummy.value[2]x",
    "dummy.divisible x",
    "dummy.divisible[ 2]",
    "dummy.divisible[2 ]",
    "dummy.divisible[2]x",
    "dummy.divisible[2]]",
    "dummy.divisible[[2]]",
    "dummy.divisible[012]x",
    "dummy.divisible[a b]",
    "dummy.divisible[-1]",
]


def test_the_python_host_refuses_odd_field_expressions_as_libsinsp_does(built: Built, sinsphost: Path) -> None:
    options = {"init_config": '{"jitter": 0}', "open_params": '{"maxEvents": 1}', "fields": ODD_EXPRESSIONS}
    python = PythonHost().run(built("dummy").library, **options)
    sinsp = SinspHost(sinsphost).run(built("dummy").library, **options)
    assert sinsp.failure is None and set(sinsp.events[0].errors) == set(ODD_EXPRESSIONS)
    assert python.events == sinsp.events
