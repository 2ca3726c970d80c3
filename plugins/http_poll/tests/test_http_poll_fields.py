"""Fields, read from the event payload alone (so they work on events read back from a capture)."""

from __future__ import annotations

import json

import pytest
from falco_plugin import Event, PluginError
from http_poll.plugin import HttpPollPlugin
from http_poll.records import encode

RECORD = {
    "id": 17,
    "action": "repo.delete",
    "actor": {"login": "alice", "admin": True, "teams": ["a", "b"]},
    "score": 4.5,
    "note": None,
    "name": "ré",
}


@pytest.fixture
def plugin() -> HttpPollPlugin:
    return HttpPollPlugin()


@pytest.fixture
def event() -> Event:
    return Event(num=1, ts=0, payload=encode("https://api.example.com/v1/audit?page=2", 200, "17", RECORD))


def test_url_status_and_id_describe_where_the_record_came_from(plugin: HttpPollPlugin, event: Event) -> None:
    assert plugin.url(event) == "https://api.example.com/v1/audit?page=2"
    assert plugin.status(event) == 200
    assert plugin.record_id(event) == "17"


def test_id_is_absent_without_an_id_pointer(plugin: HttpPollPlugin) -> None:
    assert plugin.record_id(Event(payload=encode("http://h/x", 200, None, {"a": 1}))) is None


@pytest.mark.parametrize(
    ("pointer", "value"),
    [
        ("/action", "repo.delete"),
        ("/actor/login", "alice"),
        ("/id", "17"),
        ("/score", "4.5"),
        ("/actor/admin", "true"),
        ("/actor/teams", '["a","b"]'),
        ("/actor/teams/1", "b"),
        ("/actor", '{"login":"alice","admin":true,"teams":["a","b"]}'),
        ("/name", "ré"),
        ("/note", None),
        ("/missing", None),
    ],
)
def test_value_reads_any_part_of_the_record_as_text(
    plugin: HttpPollPlugin, event: Event, pointer: str, value: str | None
) -> None:
    assert plugin.value(event, pointer) == value


def test_value_with_a_key_that_is_not_a_pointer_is_an_error(plugin: HttpPollPlugin, event: Event) -> None:
    with pytest.raises(PluginError, match="invalid JSON pointer 'actor'"):
        plugin.value(event, "actor")


def test_raw_is_the_record_as_compact_json(plugin: HttpPollPlugin, event: Event) -> None:
    assert plugin.raw(event) == (
        '{"id":17,"action":"repo.delete","actor":{"login":"alice","admin":true,"teams":["a","b"]},'
        '"score":4.5,"note":null,"name":"ré"}'
    )


def test_text_fields_write_a_lone_surrogate_as_its_json_escape(plugin: HttpPollPlugin) -> None:
    # Valid JSON, but no UTF-8 text can hold "\ud800": Falco would get no value at all.
    odd = json.loads(r'{"id": "a\ud800", "note": "x\udfffy", "name": "ré"}')
    event = Event(payload=encode("http://h/x", 200, odd["id"], odd))
    assert plugin.record_id(event) == r"a\ud800"
    assert plugin.value(event, "/note") == r"x\udfffy"
    assert plugin.value(event, "/name") == "ré"  # only what needs escaping is escaped
    assert plugin.raw(event) == r'{"id":"a\ud800","note":"x\udfffy","name":"ré"}'
    assert json.loads(plugin.raw(event)) == odd  # raw stays JSON for exactly that record
    for text in (plugin.record_id(event), plugin.value(event, "/note"), plugin.raw(event)):
        assert text is not None
        text.encode("utf-8")


def test_payload_is_decoded_once_per_event(
    plugin: HttpPollPlugin, event: Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    import http_poll.plugin
    from http_poll.records import Envelope, decode

    calls: list[bytes] = []

    def counting(payload: bytes) -> Envelope:
        calls.append(payload)
        return decode(payload)

    monkeypatch.setattr(http_poll.plugin, "decode", counting)
    plugin.url(event)
    plugin.status(event)
    plugin.value(event, "/action")
    plugin.raw(event)
    assert len(calls) == 1


def test_a_foreign_payload_is_an_extraction_error_not_a_crash(plugin: HttpPollPlugin) -> None:
    with pytest.raises(PluginError, match="not an http_poll record"):
        plugin.url(Event(payload=b"12345"))
