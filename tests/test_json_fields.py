"""Fields declared by JSON pointer (falco_plugin.json_field), answered by the glue in C.

Each test runs on both hosts: the values and the errors are the same since the
conversion rules live in the glue. The fixture plugin (tests/plugins/json_fields)
emits the payloads a test gives it."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from elf_symbols import exported_symbols
from falco_plugin import Event, ExtractPlugin, PluginError, SourcePlugin, json_field
from falco_plugin._internal.fields import fields_of
from falco_plugin_tools.build import BuildError, build_plugin
from falco_plugin_tools.host import HostEvent, PluginLibrary
from falco_plugin_tools.host.raw import plugin_event
from falco_plugin_tools.host.runners import Extracted, Host, value_text
from harness import REPO, Built

RECORD = {
    "s": "hi",
    "n": 42,
    "b": True,
    "l": ["a", "b", 3, None, {"x": 1}],
    "a/b": {"m~n": "escaped"},
    "record": {"name": "r1", "actor": {"login": "bob"}},
}

Run = Callable[..., list[Extracted]]


@pytest.fixture
def run(built: Built, host: Host) -> Run:
    def go(payloads: list[bytes], fields: list[str]) -> list[Extracted]:
        result = host.run(
            built("json_fields").library, open_params=json.dumps([p.hex() for p in payloads]), fields=fields
        )
        assert result.failure is None, result.failure
        return result.events

    return go


def values(run: Run, payload: object, *fields: str) -> dict[str, str | None]:
    (event,) = run([json.dumps(payload).encode()], list(fields))
    assert event.errors == {}
    return event.values


def test_each_declared_type_reads_its_json_type(run: Run) -> None:
    assert values(run, RECORD, "jx.str", "jx.int", "jx.bool", "jx.list") == {
        "jx.str": "hi",
        "jx.int": "42",
        "jx.bool": "true",
        # nulls left out, other values as compact JSON text
        "jx.list": 'a,b,3,{"x":1}',
    }


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.5, "1.5"),
        (-7, "-7"),
        (True, "true"),
        ({"k": [1, 2]}, '{"k":[1,2]}'),
        ([1, "x"], '[1,"x"]'),
        ("", ""),
        ({"c": "\x1f\n", "u": "é"}, '{"c":"\\u001F\\n","u":"é"}'),
    ],
)
def test_a_string_field_gives_other_json_values_as_compact_json_text(run: Run, value: object, text: str) -> None:
    assert values(run, {"s": value}, "jx.str") == {"jx.str": text}


@pytest.mark.parametrize("value", [-1, 1.0, 2.5, 2**64, "42", True, [1], {"n": 1}])
def test_an_integer_field_has_no_value_for_anything_but_an_integer_in_uint64_range(run: Run, value: object) -> None:
    assert values(run, {"n": value}, "jx.int") == {"jx.int": None}


@pytest.mark.parametrize("spelled", ["1e400", "1E+2", "-0", "0.10", "123456789012345678901234567890", "1.5e-7", "4.50"])
def test_numbers_are_written_as_spelled_in_the_payload(run: Run, spelled: str) -> None:
    (event,) = run(
        [f'{{"s": {spelled}, "l": [{spelled}], "o": {{"x": {spelled}}}}}'.encode()],
        ["jx.str", "jx.list", "jx.value[/o]"],
    )
    assert event.errors == {}
    assert event.values == {"jx.str": spelled, "jx.list": spelled, "jx.value[/o]": f'{{"x":{spelled}}}'}


def test_a_lone_surrogate_escape_is_delivered_as_its_six_characters(run: Run) -> None:
    payload = rb'{"s": "a\ud800!", "l": ["\uDFFF", "\ud83d\ude00"], "o": {"k": "\udbff"}, "n": 7}'
    (event,) = run([payload], ["jx.str", "jx.list", "jx.value[/o]", "jx.int"])
    assert event.errors == {}
    # a pair stays the one character it encodes; the lone ones stay escapes, as they came
    assert event.values == {
        "jx.str": r"a\ud800!",
        "jx.list": "\\uDFFF,\U0001f600",
        "jx.value[/o]": r'{"k":"\\udbff"}',
        "jx.int": "7",
    }


def test_an_integer_field_covers_the_whole_uint64_range(run: Run) -> None:
    assert values(run, {"n": 0}, "jx.int") == {"jx.int": "0"}
    assert values(run, {"n": 2**64 - 1}, "jx.int") == {"jx.int": str(2**64 - 1)}


@pytest.mark.parametrize("value", [0, 1, "true", [], {}])
def test_a_bool_field_has_no_value_for_anything_but_true_or_false(run: Run, value: object) -> None:
    assert values(run, {"b": value}, "jx.bool") == {"jx.bool": None}
    assert values(run, {"b": False}, "jx.bool") == {"jx.bool": "false"}


def test_a_list_field_takes_a_lone_value_as_a_list_of_one_and_an_empty_array_as_no_value(run: Run) -> None:
    assert values(run, {"l": "lone"}, "jx.list") == {"jx.list": "lone"}
    assert values(run, {"l": 7}, "jx.list") == {"jx.list": "7"}
    assert values(run, {"l": []}, "jx.list") == {"jx.list": None}
    assert values(run, {"l": [None, None]}, "jx.list") == {"jx.list": None}


def test_missing_keys_indexes_past_the_end_and_null_give_no_value(run: Run) -> None:
    fields = ("jx.str", "jx.int", "jx.bool", "jx.list", "jx.first", "jx.rec.name", "jx.escaped")
    for payload in ({}, {"s": None, "n": None, "b": None, "l": None, "record": None}, {"l": [], "record": 5}, []):
        assert values(run, payload, *fields) == dict.fromkeys(fields)


def test_pointers_unescape_tilde_one_and_tilde_zero_and_index_arrays(run: Run) -> None:
    assert values(run, RECORD, "jx.escaped", "jx.first", "jx.value[/a~1b/m~0n]", "jx.value[/l/4/x]") == {
        "jx.escaped": "escaped",
        "jx.first": "a",
        "jx.value[/a~1b/m~0n]": "escaped",
        "jx.value[/l/4/x]": "1",
    }
    # the unescaped spelling is another key
    assert values(run, RECORD, "jx.value[/a/b]") == {"jx.value[/a/b]": None}


def test_a_base_pointer_is_prefixed_to_the_declared_pointer_and_to_the_argument(run: Run) -> None:
    assert values(run, RECORD, "jx.rec.name", "jx.rec.value[/actor/login]", "jx.rec.value[/name]", "jx.value[]") == {
        "jx.rec.name": "r1",
        "jx.rec.value[/actor/login]": "bob",
        "jx.rec.value[/name]": "r1",
        # the empty pointer is the whole document
        "jx.value[]": json.dumps(RECORD, separators=(",", ":")),
    }


def test_json_fields_and_python_fields_answer_the_same_event_in_one_request(run: Run) -> None:
    payload = json.dumps(RECORD).encode()
    (event,) = run([payload], ["jx.size", "jx.str", "jx.size", "jx.rec.value[/actor/login]", "jx.int"])
    assert event.errors == {}
    assert event.values == {
        "jx.size": str(len(payload)),
        "jx.str": "hi",
        "jx.rec.value[/actor/login]": "bob",
        "jx.int": "42",
    }


def test_each_event_is_read_anew(run: Run) -> None:
    events = run([json.dumps({"s": str(i), "n": i}).encode() for i in range(9)], ["jx.str", "jx.int"])
    assert [e.values for e in events] == [{"jx.str": str(i), "jx.int": str(i)} for i in range(9)]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "the event payload is not valid JSON: invalid literal"),
        (b'{"s": "open', "the event payload is not valid JSON: unexpected end of data"),
        (b'{"s": "\xff"}', "the event payload is not valid JSON: invalid UTF-8 encoding in string at byte 7 of 10"),
        (b"", "the event payload is not valid JSON: input length is 0"),
        (b'{"s": 1} trailing', "the event payload is not valid JSON: unexpected content after document"),
        (b'{"n": NaN}', "the event payload is not valid JSON: "),
    ],
)
def test_a_payload_that_is_not_json_is_an_error_of_each_json_field_not_of_the_python_ones(
    run: Run, payload: bytes, reason: str
) -> None:
    (event,) = run([payload, b'{"s": "next"}'][:1], ["jx.str", "jx.int", "jx.size", "jx.value[/s]"])
    assert event.values == {"jx.size": str(len(payload))}
    assert set(event.errors) == {"jx.str", "jx.int", "jx.value[/s]"}
    assert event.errors["jx.str"].startswith(f"extracting jx.str: {reason}")
    assert event.errors["jx.value[/s]"].startswith(f"extracting jx.value[/s]: {reason}")


def test_a_bad_payload_does_not_stop_the_events_after_it(run: Run) -> None:
    events = run([b"{", b'{"s": "ok"}'], ["jx.str"])
    assert "jx.str" in events[0].errors
    assert events[1].values == {"jx.str": "ok"}


def test_a_string_with_a_nul_character_is_an_error_naming_it(run: Run) -> None:
    (event,) = run([b'{"s": "a\\u0000b", "l": ["x", "\\u0000"]}'], ["jx.str", "jx.list", "jx.int"])
    assert event.values == {"jx.int": None}
    assert event.errors["jx.str"] == (
        "extracting jx.str: the JSON string holds a NUL character (\\u0000) at offset 1, "
        "which a Falco string field cannot carry"
    )
    assert "NUL character" in event.errors["jx.list"]


@pytest.mark.parametrize(
    ("pointer", "reason"),
    [
        ("s", "invalid JSON pointer 's': it must be empty or start with '/'"),
        ("/a~2", "invalid JSON pointer '/a~2': '~' must be followed by 0 or 1"),
        ("/a~", "invalid JSON pointer '/a~': '~' must be followed by 0 or 1"),
    ],
)
def test_an_argument_that_is_not_a_json_pointer_is_an_error_whatever_the_event(
    run: Run, pointer: str, reason: str
) -> None:
    # the record has no /record: a valid pointer would give no value there
    events = run([json.dumps(RECORD).encode(), b"{}"], [f"jx.value[{pointer}]", f"jx.rec.value[{pointer}]"])
    for event in events:
        for name in ("jx.value", "jx.rec.value"):
            assert event.errors[f"{name}[{pointer}]"] == (f"extracting {name}[{pointer}]: {reason}")


def test_deep_nesting_is_parsed_without_recursion(run: Run) -> None:
    deep = b"[" * 10_000 + b"]" * 10_000
    nested = b'{"s": ' + b'{"a":' * 3_000 + b"1" + b"}" * 3_000 + b"}"
    events = run([deep, nested], ["jx.str", "jx.value[/s/a/a/a]"])
    assert events[0].values == {"jx.str": None, "jx.value[/s/a/a/a]": None}
    assert events[1].values["jx.str"] == '{"a":' * 3_000 + "1" + "}" * 3_000
    assert events[1].values["jx.value[/s/a/a/a]"] == '{"a":' * 2_997 + "1" + "}" * 2_997


def test_a_declaration_checks_its_type_and_pointers() -> None:
    with pytest.raises(ValueError, match="type must be str, int, bool or list\\[str\\]"):
        json_field("x.f", "/a", float, "d")
    with pytest.raises(ValueError, match="is not a JSON pointer: it must be empty or start with '/'"):
        json_field("x.f", "a", str, "d")
    with pytest.raises(ValueError, match="'~' must be followed by 0 or 1"):
        json_field("x.f", "/a~2", str, "d")
    with pytest.raises(ValueError, match="base 'record'"):
        json_field("x.f", "/a", str, "d", base="record")


def test_a_json_field_is_an_ordinary_field_to_the_host() -> None:
    class Audit(SourcePlugin, ExtractPlugin):
        verb = json_field("a.verb", "/verb", str, "The verb", add_output=True)
        groups = json_field("a.groups", "/groups", list[str], "Groups", base="/user")
        value = json_field("a.value", None, int, "Any integer")

    assert [f.to_json() for f in fields_of(Audit)] == [
        {"name": "a.verb", "type": "string", "desc": "The verb", "addOutput": True},
        {"name": "a.groups", "type": "string", "desc": "Groups", "isList": True},
        {
            "name": "a.value",
            "type": "uint64",
            "desc": "Any integer",
            "arg": {"isRequired": True, "isIndex": False, "isKey": True},
        },
    ]


def test_only_a_plugin_with_json_fields_carries_the_parser_and_exports_none_of_it(built: Built) -> None:
    with_json = built("json_fields").library
    marker = b"invalid UTF-8 encoding in string"  # one of yyjson's messages
    assert marker in with_json.read_bytes()
    assert marker not in built("dummy").library.read_bytes()
    assert not [s for s in exported_symbols(with_json) if "yyjson" in s]


def test_a_plugin_that_carries_yyjson_ships_its_notice_and_lists_it_in_its_sbom(built: Built) -> None:
    """yyjson is MIT: its copyright and permission notice go with every copy, so with every plugin
    library that carries it (and with no other)."""
    from falco_plugin_tools.build.sbom import _python_components

    site = built("json_fields").site_dir
    notice = (site / "_licenses" / "compiled_in" / "yyjson-0.10.0" / "LICENSE").read_text()
    assert "Copyright (c) 2020 YaoYuan" in notice and "Permission is hereby granted" in notice
    [component] = [c for c in _python_components(site) if c.name == "yyjson"]
    assert component.license == {"id": "MIT"} and component.purl == "pkg:github/ibireme/yyjson@0.10.0"
    assert component.files == (built("json_fields").library.name,)
    assert not (built("dummy").site_dir / "_licenses" / "compiled_in").exists()


def test_the_readme_audit_log_example_answers_its_fields(tmp_path: Path) -> None:
    text = (REPO / "sdk" / "README.md").read_text()
    section = text.split("\n## JSON fields\n", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"^```python\n(.*?)^```", section, flags=re.S | re.M)
    package = tmp_path / "auditlog" / "src" / "auditlog"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(code)
    (tmp_path / "auditlog" / "pyproject.toml").write_text(
        '[project]\nname = "auditlog"\nversion = "0.1.0"\ndependencies = ["falco-plugin-sdk"]\n\n'
        '[tool.falco-plugin]\nplugin = "auditlog.plugin:AuditLog"\n'
    )
    built = build_plugin(tmp_path / "auditlog")
    record = {
        "verb": "delete",
        "user": {"username": "alice", "groups": ["system:masters", "dev"]},
        "objectRef": {"name": "db-0"},
        "responseStatus": {"code": 200},
    }
    fields = ["audit.verb", "audit.code", "audit.groups", "audit.user", "audit.value[/objectRef/name]", "audit.admin"]
    with PluginLibrary.load(built.library) as lib, lib.init() as plugin:
        event = HostEvent.plugin_event(json.dumps(record).encode(), 999, num=1, source="k8s_audit")
        got = [plugin.extract(event, f) for f in fields]
    assert got == ["delete", 200, ["system:masters", "dev"], "alice", "db-0", True]


AGREEMENT = [
    json.dumps(RECORD).encode(),
    b'{"s": 4.50, "n": 18446744073709551615, "b": false, "l": [1e400, "x", null, {"k": "\\u001f"}], "record": []}',
    rb'{"s": "a\ud800", "l": "lone", "record": {"name": {"n": -0}}, "a/b": {"m~n": [true]}}',
    b'{"s": "a\\u0000", "n": 1.0, "b": null}',
    b"[1, 2]",
    b"not json",
    b'{"s": "\xff"}',
]


@pytest.mark.parametrize("payload", AGREEMENT)
def test_outside_a_library_a_json_field_gives_what_the_hosts_give(built: Built, run: Run, payload: bytes) -> None:
    built("json_fields")  # its source is importable from here on
    from fxt_json_fields.plugin import JsonFieldsPlugin

    plugin = JsonFieldsPlugin()
    declared = {f.name: f.method for f in fields_of(JsonFieldsPlugin) if f.json is not None}
    exprs = [name for name in declared if not name.endswith("value")]
    exprs += ["jx.value[/l/0]", "jx.value[]", "jx.rec.value[/name]", "jx.value[bad]"]
    (event,) = run([payload], exprs)
    for expr in exprs:
        name, _, arg = expr.partition("[")
        method = getattr(plugin, declared[name])
        try:
            value = method(Event(payload=payload), arg[:-1]) if arg else method(Event(payload=payload))
        except PluginError as exc:
            # the same failure; the parsers' own words after the first colon may differ
            assert event.errors[expr].startswith(f"extracting {expr}: {str(exc).split(': ')[0]}"), expr
            continue
        assert expr not in event.errors, (expr, event.errors.get(expr))
        assert event.values[expr] == value_text(value), expr


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_the_json_glue_reads_and_frees_memory_cleanly_under_valgrind(built: Built, chost: Path, tmp_path: Path) -> None:
    payloads = [
        json.dumps(RECORD).encode(),
        rb'{"s": "a\ud800!", "l": ["\uDFFF", "\ud83d\ude00"], "record": {"name": {"k": "\udbff"}}}',
        b'{"s": "a\\u0000b"}',
        b"not json",
        b'{"s": "\xff"}',
        b"[" * 5000 + b"]" * 5000,
        b'{"s": 1e400, "n": 99999999999999999999, "l": {"x": [1, {}]}}',
    ]
    events = tmp_path / "events"
    events.write_bytes(b"".join(struct.pack("<I", len(e)) + e for e in [plugin_event(p) for p in payloads] * 2))
    fields = "jx.str,jx.int,jx.bool,jx.list,jx.escaped,jx.rec.name,jx.value[/l/1],jx.rec.value[/name],jx.value[x]"
    valgrind = ["valgrind", "--error-exitcode=9", "--leak-check=full", "--errors-for-leak-kinds=definite"]
    run = subprocess.run(
        [*valgrind, str(chost), str(built("json_fields").library), "--events", str(events), "--fields", fields],
        capture_output=True,
        text=True,
        env={"PYTHONMALLOC": "malloc"},  # so that valgrind sees Python's allocations as they are
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ERROR SUMMARY: 0 errors" in run.stderr
    assert run.stdout.count("\nevt ") == 2 * len(payloads)


def test_a_plugin_with_json_fields_cannot_build_without_the_parser_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FALCO_PLUGIN_YYJSON_DIR", str(tmp_path / "nothing"))
    with pytest.raises(BuildError, match=r"fxt-json-fields declares JSON fields, which need yyjson: .* does not hold"):
        build_plugin(REPO / "tests" / "plugins" / "json_fields", tmp_path / "out")
