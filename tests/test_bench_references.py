"""The C reference of http_poll (bench/reference/http_poll.c) stays a reference: it compiles, and in the
C host it gives every ``http_poll.value[...]`` the value the SDK-built http_poll gives on the same records.

bench/falco_http_poll.py compares their speed in the real Falco; that comparison means something only
while the two plugins do the same thing, which these tests pin down (no timing is asserted).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.host.raw import Library, event_header, payload_of
from falco_plugin_tools.host.runners import CHost, HostRun
from http_poll.records import parse_timestamp

ROOT = Path(__file__).resolve().parents[1]

RECORDS: list[dict[str, Any]] = [
    {
        "id": "a-1",
        "verb": "get",
        "n": 42,
        "big": 18446744073709551616,
        "neg": -7,
        "ratio": 2.5,
        "exp": 1e300,
        "ok": True,
        "gone": None,
        "user": {"name": "alice", "groups": ["dev", "ops"], "meta": {"a/b": 1, "c~d": [None, {"x": "é"}]}},
        "items": [1, "two", None, {"three": 3}],
        "text": 'quote " backslash \\ tab \t end',  # the C host prints one event a line: no newline here
        "lines": {"l": "a\nb\u001f"},
        "published": "2024-05-01T12:00:00.123456Z",
    },
    {
        "id": 17,
        "verb": "delete",
        "n": 0,
        "user": {"name": "bob", "groups": []},
        "items": [],
        "text": "",
        "published": "2024-05-01T12:00:01Z",
    },
    {"id": "a-3", "verb": None, "user": None, "unicode": "日本 ✓", "published": "2024-05-01T12:00:02+02:00"},
    {"id": "a-4", "empty": {}, "nested": {"deep": {"deeper": {"deepest": [[[]]]}}}, "published": 1714564800.25},
    {"id": "a-5", "published": "not a time"},
]

POINTERS = [
    "/verb",
    "/n",
    "/big",
    "/neg",
    "/ratio",
    "/exp",
    "/ok",
    "/gone",
    "/missing",
    "/user",
    "/user/name",
    "/user/groups",
    "/user/groups/1",
    "/user/groups/9",
    "/user/meta/a~1b",
    "/user/meta/c~0d",
    "/user/meta/c~0d/1/x",
    "/items",
    "/items/3/three",
    "/text",
    "/lines",
    "/unicode",
    "/empty",
    "/nested",
    "",
]
FIELDS = [f"http_poll.value[{p}]" for p in POINTERS]


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    """bench/falco_http_poll.py, which compiles the C reference and holds http_poll's fake API."""
    saved = list(sys.path)
    sys.path[:0] = [str(ROOT / "bench")]
    try:
        yield importlib.import_module("falco_http_poll")
    finally:
        sys.path[:] = saved  # bench/ holds modules (run, falco) no other test should import by accident


@pytest.fixture(scope="module")
def c_reference(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        library: Path = bench.compile_c_reference(tmp_path_factory.mktemp("http_poll_c"), fetch_yyjson=False)
    except bench.CReferenceUnavailableError as exc:
        pytest.skip(f"the C reference of http_poll cannot be compiled here: {exc}")
    return library


@pytest.fixture
def api(bench: ModuleType) -> Iterator[Any]:
    server = bench.FakeApi().start()
    server.records = RECORDS
    server.page_size = 3  # two pages: the C reference must follow the Link header
    yield server
    server.stop()


def params(api: Any, **extra: Any) -> str:
    return json.dumps({"url": api.url, "records": "/data", "id": "/id", "timestamp": "/published", **extra})


def run(chost: Path, library: Path, open_params: str, fields: list[str] = FIELDS) -> HostRun:
    return CHost(chost, timeout=60).run(library, open_params=open_params, fields=fields)


def test_the_c_reference_gives_every_value_http_poll_gives(
    c_reference: Path,
    build_plugin_project: Callable[[Path], BuildResult],
    chost: Path,
    api: Any,
) -> None:
    http_poll = build_plugin_project(ROOT / "plugins" / "http_poll").library
    open_params = params(api, max_polls=1, interval=0.05)
    ours, sdk = run(chost, c_reference, open_params), run(chost, http_poll, open_params)
    assert ours.failure is None and sdk.failure is None, (ours.failure, sdk.failure)
    assert [e.values for e in ours.events] == [e.values for e in sdk.events]
    assert [e.errors for e in ours.events] == [e.errors for e in sdk.events] == [{}] * len(RECORDS)
    # What both said, spelled out for the first record: the comparison above is not between two blanks.
    first = {p: ours.events[0].values[f] for p, f in zip(POINTERS, FIELDS, strict=True)}
    assert first["/n"] == "42" and first["/big"] == "18446744073709551616" and first["/ratio"] == "2.5"
    assert first["/ok"] == "true" and first["/gone"] is None and first["/missing"] is None
    assert first["/user/groups"] == '["dev","ops"]' and first["/user/meta/c~0d/1/x"] == "é"
    assert first["/items"] == '[1,"two",null,{"three":3}]' and first["/text"] == RECORDS[0]["text"]
    assert first["/user/meta/a~1b"] == "1" and first["/user/groups/9"] is None
    assert first["/lines"] == '{"l":"a\\nb\\u001F"}'
    assert ours.events[1].values["http_poll.value[/user/groups]"] == "[]"
    assert ours.events[2].values["http_poll.value[/verb]"] is None


def test_the_c_reference_reads_the_whole_listing_once_per_poll(c_reference: Path, chost: Path, api: Any) -> None:
    got = run(chost, c_reference, params(api, max_polls=2, interval=0.05), ["http_poll.value[/id]"])
    assert got.failure is None
    assert [e.values["http_poll.value[/id]"] for e in got.events] == ["a-1", "17", "a-3", "a-4", "a-5"] * 2
    assert [s.query.get("page") for s in api.requests_to()] == [None, "2", None, "2"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"url": "ftp://example.com/"}, "invalid open params: url: an http:// or https:// URL is required"),
        ({"records": "data"}, "invalid open params: records: data is not a JSON pointer (it must start with '/')"),
        ({"id": "/a~2"}, "invalid open params: id: /a~2: '~' must be followed by 0 or 1"),
        ({"max_polls": -1}, "invalid open params: max_polls: must be an integer >= 0"),
        ({"timestamp_unit": "h"}, "invalid open params: timestamp_unit: must be one of s, ms, us, ns"),
    ],
)
def test_the_c_reference_refuses_a_bad_open_param_with_its_reason(
    c_reference: Path, chost: Path, api: Any, extra: dict[str, Any], message: str
) -> None:
    got = run(chost, c_reference, params(api, **extra), ["http_poll.value[/id]"])
    assert got.failure is not None and (got.failure.stage, got.failure.message) == ("open", message)
    assert got.events == []


def test_the_c_reference_fails_the_stream_on_an_http_error_or_a_body_that_is_not_json(
    bench: ModuleType, c_reference: Path, chost: Path, api: Any
) -> None:
    kit = sys.modules["httppoll_kit"]
    api.script.append(kit.Reply(503, b"busy"))
    got = run(chost, c_reference, params(api, max_polls=1), ["http_poll.value[/id]"])
    assert got.failure is not None and got.failure.stage == "next_batch"
    assert got.failure.message == f"GET {api.url}: HTTP status 503"

    api.script.append(kit.Reply(200, b'{"data": [1, 2'))
    got = run(chost, c_reference, params(api, max_polls=1), ["http_poll.value[/id]"])
    assert got.failure is not None and got.failure.stage == "next_batch"
    assert got.failure.message.startswith(f"GET {api.url}: the body is not JSON: ")

    api.script.append(kit.Reply(200, b'{"items": []}'))
    got = run(chost, c_reference, params(api, max_polls=1), ["http_poll.value[/id]"])
    assert got.failure is not None and got.failure.message == f"GET {api.url}: no array of records at '/data'"


def test_the_c_reference_stamps_events_with_the_time_http_poll_reads(c_reference: Path, api: Any) -> None:
    """The record's time where http_poll finds one (RFC 3339, a number in the unit), else the host's."""
    library = Library.open(c_reference)
    state = library.init("")
    try:
        events = [e.bytes() for e in state.opened(params(api, max_polls=1)).batches()]
    finally:
        state.destroy()
    assert [json.loads(payload_of(e))["record"] for e in events] == RECORDS
    expected = [1714564800123456000, 1714564801000000000, 1714557602000000000, 1714564800250000000, None]
    assert expected == [parse_timestamp(r.get("published")) for r in RECORDS]
    assert [event_header(e)[0] for e in events] == [2**64 - 1 if ts is None else ts for ts in expected]
