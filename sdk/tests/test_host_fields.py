"""Fields: the get_fields JSON is checked at load like libsinsp does, and field
expressions are parsed like Falco filter checks parse them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from falco_plugin_tools.host import FieldExpressionError, FieldInfo, LoadError, PluginLibrary, parse_field_expression

CPlugin = Callable[..., Path]


def entry(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "t.f", "type": "string", "desc": "a field"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def load_reason(c_plugin: CPlugin, fields: Any, *flags: str) -> str:
    text = fields if isinstance(fields, str) else json.dumps(fields)
    with pytest.raises(LoadError) as info:
        PluginLibrary.load(c_plugin(*flags, FIELDS_JSON=text))
    return info.value.reason


# -- get_fields JSON ----------------------------------------------------------------------

E = "error in plugin ctest: "


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("not json", "get_fields returned an invalid JSON"),
        ('{"name": "t.f"}', "get_fields returned an invalid JSON"),
        ([], "get_fields returned an empty list of fields"),
        ([entry(type=...)], "field JSON entry has no type"),
        ([entry(type="")], "field JSON entry has no type"),
        ([entry(name=...)], "field JSON entry has no name"),
        ([entry(desc=...)], "field JSON entry has no desc"),
        ([entry(type="int32")], "invalid field type int32"),
        ([entry(isList="yes")], "field t.f isList property is not boolean "),
        ([entry(addOutput=1)], "field t.f addOutput property is not boolean "),
        ([entry(arg={"isRequired": "true"})], "field t.f isRequired property is not boolean"),
        ([entry(arg={"isIndex": 1})], "field t.f isIndex property is not boolean"),
        ([entry(arg={"isKey": None})], "field t.f isKey property is not boolean"),
        ([entry(arg={"isRequired": True})], "field t.f arg has isRequired true, but none of isKey nor isIndex is true"),
        ([entry(properties="hidden")], "field t.f properties property is not array "),
        ([entry(properties=["info", 3])], "field t.f properties value is not string "),
    ],
)
def test_invalid_fields_json_is_rejected_with_libsinsp_message(c_plugin: CPlugin, fields: Any, message: str) -> None:
    assert load_reason(c_plugin, fields) == E + message


def test_a_null_fields_string_is_rejected(c_plugin: CPlugin) -> None:
    with pytest.raises(LoadError) as info:
        PluginLibrary.load(c_plugin("-DFIELDS_NULL"))
    assert info.value.reason == E + "get_fields returned a null string"


def test_go_sdk_style_entries_with_every_key_are_accepted(c_plugin: CPlugin) -> None:
    go_style = entry(
        isList=False, display="", properties=None, arg={"isRequired": False, "isIndex": False, "isKey": False}
    )
    with PluginLibrary.load(c_plugin(FIELDS_JSON=json.dumps([go_style]))) as lib:
        (f,) = lib.info.fields
        assert (f.name, f.is_list, f.arg_allowed, f.properties) == ("t.f", False, False, ())


def test_field_flags_are_read(c_plugin: CPlugin) -> None:
    fields = [
        entry(name="t.a", type="uint64", isList=True, addOutput=True, properties=["hidden", "custom"]),
        entry(name="t.b", arg={"isIndex": True, "isKey": True}, display="B"),
    ]
    with PluginLibrary.load(c_plugin(FIELDS_JSON=json.dumps(fields))) as lib:
        a, b = lib.info.fields
        assert (a.id, a.ftype, a.is_list, a.add_output, a.properties) == (0, 8, True, True, ("hidden", "custom"))
        assert (b.id, b.is_index, b.is_key, b.arg_required, b.display) == (1, True, True, False, "B")


# -- field expressions ----------------------------------------------------------------------

FIELDS = [
    FieldInfo(0, "t.plain", "string", "no argument"),
    FieldInfo(1, "t.idx", "uint64", "required index", arg_required=True, is_index=True),
    FieldInfo(2, "t.key", "string", "optional key", is_key=True),
    FieldInfo(3, "t.both", "string", "index or key", is_index=True, is_key=True),
    FieldInfo(4, "t.plainer", "string", "a longer name with the same prefix"),
]


def parse_error(text: str) -> str:
    with pytest.raises(FieldExpressionError) as info:
        parse_field_expression(text, FIELDS)
    return str(info.value)


def test_a_plain_field_has_no_argument() -> None:
    req = parse_field_expression("t.plain", FIELDS)  # no blanks around it: see below
    assert (req.field.id, req.text, req.arg_present, req.arg_index, req.arg_key) == (0, "t.plain", False, 0, None)


def test_the_longest_matching_field_name_wins() -> None:
    assert parse_field_expression("t.plainer", FIELDS).field.id == 4


def test_an_index_argument_is_a_number() -> None:
    req = parse_field_expression("t.idx[42]", FIELDS)
    assert (req.arg_present, req.arg, req.arg_index, req.arg_key) == (True, "42", 42, None)


def test_index_zero_and_the_largest_u64_are_valid() -> None:
    assert parse_field_expression("t.idx[0]", FIELDS).arg_index == 0
    assert parse_field_expression(f"t.idx[{2**64 - 1}]", FIELDS).arg_index == 2**64 - 1


def test_a_key_argument_is_any_text_even_empty() -> None:
    assert parse_field_expression("t.key[some/thing.1]", FIELDS).arg_key == "some/thing.1"
    req = parse_field_expression("t.key[]", FIELDS)
    assert (req.arg_present, req.arg_key) == (True, "")


def test_a_field_taking_index_or_key_uses_an_invalid_index_as_key() -> None:
    number = parse_field_expression("t.both[7]", FIELDS)
    assert (number.arg_index, number.arg_key) == (7, "7")
    word = parse_field_expression("t.both[abc]", FIELDS)
    assert (word.arg_index, word.arg_key) == (0, "abc")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("t.idx", "filter 't.idx': t.idx requires an argument but none provided"),
        ("t.plain[1]", "filter 't.plain[1]': t.plain does not allow nor require an argument but one is provided: 1"),
        ("t.idx[", "filter 't.idx[': t.idx terminates with incomplete argument brackets"),
        ("t.idx[12", "filter 't.idx[12': t.idx has unbalanced argument brackets"),
        ("t.idx[]", "filter t.idx[] t.idx has an invalid index argument starting with 0: "),
        ("t.idx[012]", "filter t.idx[012] t.idx has an invalid index argument starting with 0: 012"),
        ("t.idx[1a]", "filter t.idx[1a] t.idx has an invalid index argument not composed only by digits: 1a"),
        ("t.idx[-1]", "filter t.idx[-1] t.idx has an invalid index argument not composed only by digits: -1"),
        (
            f"t.idx[{2**64}]",
            f"filter t.idx[{2**64}] t.idx has an invalid index argument not representable on 64 bit: {2**64}",
        ),
    ],
)
def test_argument_errors_use_libsinsp_messages(text: str, message: str) -> None:
    assert parse_error(text) == message


@pytest.mark.parametrize("text", ["t.nope", "t.plainx", "t.plai[1]", "x"])
def test_an_unknown_field_is_rejected(text: str) -> None:
    assert parse_error(text) == f"unknown field '{text}'"


@pytest.mark.parametrize("text", ["t.idx[1]x", "t.plain and more", "t.plain ", " t.plain", "t.idx[1]]"])
def test_anything_after_the_field_makes_it_unknown_as_in_libsinsp(text: str) -> None:
    assert parse_error(text) == f"unknown field '{text}'"


@pytest.mark.parametrize(
    ("text", "message"),
    [  # libsinsp reads the field up to the first space, and checks the argument before the end
        ("t.idx x", "filter 't.idx': t.idx requires an argument but none provided"),
        ("t.idx[ 1]", "filter 't.idx[': t.idx terminates with incomplete argument brackets"),
        ("t.idx[1 ]", "filter 't.idx[1': t.idx has unbalanced argument brackets"),
        ("t.plain[1]x", "filter 't.plain[1]x': t.plain does not allow nor require an argument but one is provided: 1"),
        ("t.idx[012]x", "filter t.idx[012]x t.idx has an invalid index argument starting with 0: 012"),
    ],
)
def test_the_argument_is_checked_before_what_follows_it(text: str, message: str) -> None:
    assert parse_error(text) == message
