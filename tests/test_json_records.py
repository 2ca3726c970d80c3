"""falco_plugin.json_records: the records of a JSON document as raw bytes, with a few values each.

Two implementations answer it: the glue of a library that carries yyjson (C,
installed into this interpreter when such a library is initialised here) and
Python (everywhere else). Every behaviour below is checked on both, through
the ``split`` fixture; the C one may decline a document (None) and leave it to
Python, which the last tests bound: it declines only what it must.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import falco_plugin._internal
import pytest
from falco_plugin import JsonRecord, JsonRecordsError, NoRecordsError, NotJsonError, json_records
from falco_plugin import jsonrecords as jr
from falco_plugin_tools.build import build_plugin
from falco_plugin_tools.host import PluginLibrary
from falco_plugin_tools.host.raw import Library
from harness import REPO

Split = Callable[[bytes, str, Sequence[str]], list[JsonRecord]]
CSplit = Callable[[bytes, str, Sequence[str]], "list[JsonRecord] | None"]


@pytest.fixture(scope="module")
def c_split(loaded: Callable[[str], Library]) -> CSplit:
    loaded("json_fields").init("")  # its glue offers the C splitter to this interpreter's falco_plugin
    split = falco_plugin._internal.json_split
    assert split is not None, "a library with JSON fields did not install the C splitter"

    def run(document: bytes, at: str, values: Sequence[str]) -> list[JsonRecord] | None:
        tokens = jr._c_tokens(at)
        value_tokens = tuple(jr._c_tokens(v) for v in values)
        assert tokens is not None and None not in value_tokens
        records: list[JsonRecord] | None = split(document, tokens, value_tokens, json.loads)  # type: ignore[arg-type]
        return records

    return run


@pytest.fixture(params=["c", "python"])
def split(request: pytest.FixtureRequest, c_split: CSplit) -> Split:
    """One implementation; the C one must not decline the documents of these tests."""
    if request.param == "python":
        return jr.python_json_records

    def run(document: bytes, at: str = "", values: Sequence[str] = ()) -> list[JsonRecord]:
        records = c_split(document, at, values)
        assert records is not None, "the C path declined an ordinary document"
        return records

    return run


def test_each_record_comes_as_its_own_bytes_without_the_whitespace_between_tokens(split: Split) -> None:
    doc = b'{"total": 2,\n "items": [\n  {"id": "a", "n": [1, 2],\n   "s": "two  words"},\n  {"id": "b"}\n ]\n}'
    assert split(doc, "/items", ["/id"]) == [
        (b'{"id":"a","n":[1,2],"s":"two  words"}', ("a",)),  # the spaces inside a string stay
        (b'{"id":"b"}', ("b",)),
    ]


def test_a_record_keeps_its_spelling_numbers_and_escapes_included(split: Split) -> None:
    record = rb'{"f":1.50,"e":1E+2,"big":123456789012345678901234567890,"u":"\u00e9\/\n","odd":"\ud800"}'
    ((raw, _),) = split(b"[" + record + b"]", "", [])
    assert raw == record  # nothing decoded and written again: a lone surrogate stays its escape


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'"plain"', "plain"),
        (b'"caf\xc3\xa9"', "café"),
        (rb'"tab\tnew\nline \"q\" \u00e9 \ud83d\ude00"', 'tab\tnew\nline "q" é 😀'),
        (rb'"\ud800"', "\ud800"),
        (b"42", 42),
        (b"-0", 0),
        (b"1" + b"0" * 70, 10**70),
        (b"1.5", 1.5),
        (b"-2.5e-3", -0.0025),
        (b"1e400", float("inf")),
        (b"true", True),
        (b"false", False),
        (b"null", None),
        (b'{"a": [1, {"b": null}]}', {"a": [1, {"b": None}]}),
        (b"[ ]", []),
    ],
)
def test_a_value_is_what_json_loads_makes_of_it(split: Split, value: bytes, expected: Any) -> None:
    ((_, (got,)),) = split(b'[{"v": ' + value + b"}]", "", ["/v"])
    assert got == expected and type(got) is type(expected)


def test_a_pointer_that_leads_nowhere_gives_none(split: Split) -> None:
    doc = b'[{"a": {"b": [10, 20]}, "s": "text"}]'
    pointers = ["/missing", "/a/c", "/a/b/2", "/a/b/-", "/a/b/01", "/s/0", "/a/b/0/x"]
    ((_, values),) = split(doc, "", pointers)
    assert values == (None,) * len(pointers)


def test_pointers_follow_rfc_6901(split: Split) -> None:
    doc = rb'{"x/y": {"m~n": [{"records": [{"a": {"": "empty key", "b": [7, 8]}, "k\"q": 1, "\u00e9": 2}]}]}}'
    (record,) = split(doc, "/x~1y/m~0n/0/records", ["/a/", "/a/b/1", '/k"q', "/é", ""])
    assert record[1] == ("empty key", 8, 1, 2, json.loads(record[0]))


def test_the_records_may_be_the_whole_document_and_any_json_values(split: Split) -> None:
    assert split(b' [1, "two", null, [3], {}] ', "", ["/0"]) == [
        (b"1", (None,)),
        (b'"two"', (None,)),
        (b"null", (None,)),
        (b"[3]", (3,)),
        (b"{}", (None,)),
    ]
    assert split(b'{"data": []}', "/data", ["/id"]) == []


def test_of_duplicate_keys_in_a_record_the_last_one_counts_as_in_json_loads(split: Split) -> None:
    doc = b'[{"id": 1, "o": {"k": "first"}, "id": 2, "o": {"k": "second", "k": "third"}}]'
    ((raw, values),) = split(doc, "", ["/id", "/o/k"])
    assert values == (2, "third")
    assert raw == b'{"id":1,"o":{"k":"first"},"id":2,"o":{"k":"second","k":"third"}}'


# -- what is not a document of records: json.loads's errors, whichever path ------------------


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"", "Expecting value"),
        (b'{"data": [tru', "Expecting value"),
        (b'{"data": []} x', "Extra data"),
        (b'{"data": [NaN]', "Expecting ',' delimiter"),
        (b'{"data": ["\xff"]}', "UnicodeDecodeError"),
        (b"[" * 100_000 + b"]" * 100_000, "RecursionError"),
    ],
)
def test_a_document_that_is_not_json_is_refused_with_json_loads_reason(
    c_split: CSplit, document: bytes, reason: str
) -> None:
    with pytest.raises(NotJsonError) as refused:
        json_records(document, "/data")
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    ("document", "found"),
    [(b'{"items": []}', "nothing"), (b'{"data": {"id": 1}}', "dict"), (b'{"data": "x"}', "str")],
)
def test_a_pointer_to_anything_but_an_array_is_refused(c_split: CSplit, document: bytes, found: str) -> None:
    with pytest.raises(NoRecordsError, match=f"expected an array of records at '/data', found {found}"):
        json_records(document, "/data")


@pytest.mark.parametrize("pointer", ["data", "/a~2b", "/a~"])
def test_an_invalid_pointer_is_refused_before_the_document_is_read(pointer: str) -> None:
    with pytest.raises(ValueError, match="invalid JSON pointer"):
        json_records(b"not even JSON", pointer)
    with pytest.raises(ValueError, match="invalid JSON pointer"):
        json_records(b"[]", "", ["/ok", pointer])


def test_json_that_python_reads_but_yyjson_does_not_still_splits(c_split: CSplit) -> None:
    """NaN, a byte order mark, UTF-16: json.loads takes them, the C path leaves them to it."""
    nan, bom, utf16 = b'[{"v": NaN}]', b'\xef\xbb\xbf[{"v": 1}]', '[{"v": "é"}]'.encode("utf-16")
    for document in (nan, bom, utf16):
        assert c_split(document, "", ["/v"]) is None
    ((raw, (value,)),) = json_records(nan, "", ["/v"])
    assert raw == b'{"v":NaN}' and math.isnan(value)
    assert json_records(bom, "", ["/v"]) == [(b'{"v":1}', (1,))]
    assert json_records(utf16, "", ["/v"]) == [('{"v":"é"}'.encode(), ("é",))]  # bytes out are UTF-8


# -- the C path: declines only what it must, and agrees with Python on everything else ------


def test_the_c_path_declines_only_what_python_must_decide(c_split: CSplit) -> None:
    assert c_split(b'{"data": [], "data": [{"id": 1}]}', "/data", []) is None  # which array? the last one
    assert c_split(b'[{"\\ud800": 1}]', "", ["/x"]) is None  # a key with a lone surrogate escape
    assert c_split(b'{"\\ud800": 1, "data": []}', "/data", []) is None  # on the way to the records too
    deep = b"[" + b'{"a":' * (jr.C_MAX_DEPTH + 1) + b"1" + b"}" * (jr.C_MAX_DEPTH + 1) + b"]"
    assert c_split(deep, "", []) is None
    assert json_records(deep, "", [])[0][0] == deep[1:-1]  # Python reads that deep


def _spell(value: Any, rnd: random.Random) -> str:
    """JSON text of ``value`` in one of the many ways a server may write it."""

    def ws() -> str:
        return rnd.choice(["", "", "", " ", "\n  ", "\t", "\r\n"])

    if isinstance(value, dict):
        members = [f"{ws()}{_spell(k, rnd)}{ws()}:{ws()}{_spell(v, rnd)}{ws()}" for k, v in value.items()]
        return "{" + ",".join(members) + ws() + "}"
    if isinstance(value, list):
        return "[" + ",".join(ws() + _spell(v, rnd) + ws() for v in value) + ws() + "]"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=rnd.random() < 0.5)
        return text.replace("/", "\\/") if rnd.random() < 0.2 else text
    if isinstance(value, float):
        return rnd.choice([repr(value), f"{value:e}", f"{value:.3E}"])
    return json.dumps(value)


def _value(rnd: random.Random, depth: int) -> Any:
    kind = rnd.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rnd.choice([None, True, False])
    if kind == 1:
        return rnd.choice([0, -1, 7, 2**64, -(2**80), 10**30])
    if kind == 2:
        return rnd.uniform(-1e6, 1e6)
    if kind in (3, 4, 5):
        return "".join(rnd.choice('ab é"\\/\n\t\x01😀~') for _ in range(rnd.randrange(12)))
    if kind in (6, 7):
        return {_key(rnd): _value(rnd, depth + 1) for _ in range(rnd.randrange(5))}
    return [_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]


def _key(rnd: random.Random) -> str:
    return rnd.choice(["id", "ts", "a/b", "m~n", "é", "", "x", "user", 'q"'])


def test_c_and_python_agree_on_a_thousand_documents_as_servers_write_them(c_split: CSplit) -> None:
    rnd = random.Random(19)
    pointers = ["/id", "/user/x", "/a~1b", "/m~0n/0", "/é", "/", '/q"', "", "/ts/1/x"]
    declined = 0
    for _ in range(1000):
        records = [_value(rnd, 1) for _ in range(rnd.randrange(6))]
        document = _spell({"meta": _value(rnd, 2), "items": records}, rnd).encode()
        values = rnd.sample(pointers, rnd.randrange(4))
        python = jr.python_json_records(document, "/items", values)
        assert [json.loads(raw) for raw, _ in python] == json.loads(document)["items"]
        assert not any(re.search(rb"[ \t\r\n]", re.sub(rb'"(?:[^"\\]|\\.)*"', b"", raw)) for raw, _ in python)
        c = c_split(document, "/items", values)
        if c is None:
            declined += 1
            continue
        assert c == python, document
    assert declined == 0  # none of these needed Python: no duplicates, no lone surrogate, shallow


# -- the SDK README's example ----------------------------------------------------------------


def test_the_readme_audit_pages_source_gives_each_record_with_its_time_and_fields(tmp_path: Path) -> None:
    text = (REPO / "sdk" / "README.md").read_text()
    section = text.split("\n## JSON records for sources\n", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"^```python\n(.*?)^```", section, flags=re.S | re.M)
    project = tmp_path / "auditpages"
    (project / "src" / "auditpages").mkdir(parents=True)
    (project / "src" / "auditpages" / "plugin.py").write_text(code)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "auditpages"\nversion = "0.1.0"\ndependencies = ["falco-plugin-sdk"]\n\n'
        '[tool.falco-plugin]\nplugin = "auditpages.plugin:AuditPages"\n'
    )
    built = build_plugin(project)
    pages = tmp_path / "pages"
    pages.mkdir()
    first = [
        {"verb": "get", "user": {"username": "alice"}, "stageTimestamp": "2024-05-01T12:00:00.000001Z"},
        {"verb": "delete", "user": {"username": "bob"}, "objectRef": {"name": "db-0"}},
    ]
    (pages / "1.json").write_text(json.dumps({"kind": "EventList", "items": first}, indent=2))
    (pages / "2.json").write_text('{"items": [{"verb": "list", "stageTimestamp": "2024-05-01T12:00:01Z"}]}')
    fields = ["audit.verb", "audit.user", "audit.value[/objectRef/name]"]
    with PluginLibrary.load(built.library) as lib, lib.init() as plugin, plugin.open(str(pages)) as capture:
        events = [(e.ts, e.payload, [plugin.extract(e, f) for f in fields]) for e in capture.events()]
    assert [(payload, values) for _, payload, values in events] == [
        (json.dumps(first[0], separators=(",", ":")).encode(), ["get", "alice", None]),
        (json.dumps(first[1], separators=(",", ":")).encode(), ["delete", "bob", "db-0"]),
        (b'{"verb":"list","stageTimestamp":"2024-05-01T12:00:01Z"}', ["list", None, None]),
    ]
    assert events[0][0] == 1714564800_000001000 and events[2][0] == 1714564801_000000000
    (pages / "3.json").write_text('{"items": {"verb": "get"}}')
    (pages / "1.json").unlink()
    (pages / "2.json").unlink()
    with PluginLibrary.load(built.library) as lib, lib.init() as plugin, plugin.open(str(pages)) as capture:
        with pytest.raises(Exception, match=r"3\.json: expected an array of records at '/items', found dict"):
            list(capture.events())


def test_a_mangled_document_never_gets_a_c_answer_python_would_not_give(c_split: CSplit) -> None:
    """Bytes flipped, cut or doubled anywhere: the C path answers as Python does, or declines."""
    rnd = random.Random(23)
    answered = 0
    for _ in range(3000):
        document = bytearray(_spell({"items": [_value(rnd, 1) for _ in range(3)]}, rnd).encode())
        for _ in range(rnd.randrange(1, 4)):
            if not document:
                break
            at = rnd.randrange(len(document))
            action = rnd.randrange(3)
            if action == 0:
                document[at] = rnd.choice(b'{}[]",:\\ 0eE-.tfn\x00\xff\xc3')
            elif action == 1:
                del document[at:]
            else:
                document[at:at] = document[at : at + rnd.randrange(1, 8)]
        values = rnd.sample(["/id", "/user/x", "/0", ""], 2)
        try:
            python: list[JsonRecord] | str = jr.python_json_records(bytes(document), "/items", values)
        except JsonRecordsError as exc:
            python = repr(exc)
        c = c_split(bytes(document), "/items", values)
        if c is not None:
            answered += 1
            assert c == python, bytes(document)
    assert answered > 100  # some mangled documents are still JSON, and the C path answers those
