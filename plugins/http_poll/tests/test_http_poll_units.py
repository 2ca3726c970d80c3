"""The building blocks, without HTTP: JSON pointers, timestamps, keys, Retry-After, checkpoints, redaction."""

from __future__ import annotations

import json
import logging
from email.utils import formatdate
from pathlib import Path

import pytest
from http_poll.checkpoint import Checkpoint, CheckpointError, Delivered
from http_poll.pointer import MISSING, Pointer, PointerError
from http_poll.poller import retry_after
from http_poll.records import decode, encode, envelope_head, parse_timestamp, record_id, record_key, wrap
from http_poll.redact import MASK, RedactingFilter, Redactor

DOC = {"data": [{"id": 7, "a/b": 1, "m~n": 2, "": 3}], "n": None}


# -- JSON pointers (RFC 6901) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", DOC),
        ("/data/0/id", 7),
        ("/data/0/a~1b", 1),
        ("/data/0/m~0n", 2),
        ("/data/0/", 3),
        ("/n", None),
    ],
)
def test_pointer_designates_members_and_indexes(text: str, expected: object) -> None:
    assert Pointer(text).get(DOC) == expected


@pytest.mark.parametrize("text", ["/missing", "/data/1", "/data/01", "/data/-", "/data/x", "/data/0/id/deeper"])
def test_pointer_to_nothing_is_missing_not_an_error(text: str) -> None:
    assert Pointer(text).get(DOC) is MISSING


@pytest.mark.parametrize("text", ["data", "/a~2", "/a~"])
def test_malformed_pointer_is_rejected(text: str) -> None:
    with pytest.raises(PointerError, match="invalid JSON pointer"):
        Pointer(text)


def test_tilde_escapes_unescape_in_the_rfc_order() -> None:
    assert Pointer("/~01").tokens == ("~1",)


# -- record timestamps --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "ns"),
    [
        ("2024-05-01T12:00:00Z", "s", 1714564800_000000000),
        ("2024-05-01T12:00:00.123456789Z", "s", 1714564800_123456789),
        ("2024-05-01T14:00:00.5+02:00", "s", 1714564800_500000000),
        ("2024-05-01t12:00:00z", "s", 1714564800_000000000),
        ("2024-05-01 12:00:00", "s", 1714564800_000000000),
        (1714564800, "s", 1714564800_000000000),
        (1714564800.25, "s", 1714564800_250000000),
        ("1714564800", "s", 1714564800_000000000),
        (1714564800123, "ms", 1714564800_123000000),
        (1714564800123456789, "ns", 1714564800_123456789),
    ],
)
def test_timestamps_are_rfc3339_or_numbers_in_the_configured_unit(value: object, unit: str, ns: int) -> None:
    assert parse_timestamp(value, unit) == ns


@pytest.mark.parametrize("value", ["yesterday", "", None, True, -5, {"t": 1}, float("nan"), float("inf")])
def test_unusable_timestamps_are_none(value: object) -> None:
    assert parse_timestamp(value) is None


# -- record keys and payloads --------------------------------------------------------------


def test_record_key_is_the_id_when_there_is_one() -> None:
    assert record_key({"id": 42}, record_id({"id": 42}, Pointer("/id"))) == "id:42"
    assert record_id({"id": "x"}, Pointer("/id")) == "x"
    assert record_id({"other": 1}, Pointer("/id")) is None


def test_record_key_without_id_is_a_content_hash_independent_of_member_order() -> None:
    a, b = {"x": 1, "y": [1, 2]}, {"y": [1, 2], "x": 1}
    assert record_key(a, None) == record_key(b, None)
    assert record_key(a, None) != record_key({"x": 2, "y": [1, 2]}, None)


def test_payload_is_a_json_envelope_around_the_record() -> None:
    payload = encode("https://h/x?page=2", 200, "e1", {"k": "é"})
    assert json.loads(payload) == {"url": "https://h/x?page=2", "status": 200, "id": "e1", "record": {"k": "é"}}
    assert decode(payload).record == {"k": "é"}
    with pytest.raises(ValueError):
        decode(b'{"some": "json"}')


@pytest.mark.parametrize("rid", ["e1", None, 'say "hi"', "caf\u00e9", "a\ud800", "tab\there"])
def test_a_record_wrapped_as_it_came_gives_the_envelope_encode_writes(rid: str | None) -> None:
    record = {"k": "é", "n": [1, 2.5, None], "o": {}}
    raw = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
    head = envelope_head("https://h/x?page=2", 200)
    assert wrap(head, rid, raw) == encode("https://h/x?page=2", 200, rid, record)


def test_delivered_keys_admit_each_key_once_and_forget_the_oldest_beyond_capacity() -> None:
    delivered = Delivered(3)
    assert [delivered.admit(k) for k in ["a", "b", "a", "c", "d"]] == [True, True, False, True, True]
    assert delivered.keys() == ["b", "c", "d"]  # "a", the oldest, is forgotten
    assert delivered.admit("a") and not delivered.admit("d")


def test_payload_keeps_a_lone_surrogate_as_its_json_escape() -> None:
    odd = json.loads(r'{"k": "\ud800", "é": "\udbff\udfff"}')  # a lone surrogate, then a pair (U+10FFFF)
    payload = encode("https://h/x", 200, "\ud800", odd)
    expected = '{"url":"https://h/x","status":200,"id":"\\ud800","record":{"k":"\\ud800","é":"\U0010ffff"}}'
    assert payload == expected.encode("utf-8")  # only what UTF-8 cannot hold is escaped
    assert decode(payload).record == odd and decode(payload).id == "\ud800"


# -- Retry-After ---------------------------------------------------------------------------


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after("7") == 7.0
    assert retry_after(formatdate(1000.0 + 30, usegmt=True), now=1000.0) == 30.0
    assert retry_after(formatdate(1000.0 - 30, usegmt=True), now=1000.0) == 0.0
    assert retry_after("soon") is None
    assert retry_after(None) is None


# -- checkpoints ---------------------------------------------------------------------------


def test_delivered_keys_forget_the_oldest_beyond_capacity() -> None:
    d = Delivered(3, ["a", "b"])
    d.add("c")
    d.add("d")
    assert d.keys() == ["b", "c", "d"]
    assert "a" not in d and "d" in d


def test_checkpoint_round_trips_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    Checkpoint("https://h/x", "2024-05-01T12:00:00Z", ["id:1", "id:2"]).save(path)
    Checkpoint("https://h/x", "2024-05-01T12:00:09Z", ["id:3"]).save(path)
    assert Checkpoint.load(path, "https://h/x") == Checkpoint("https://h/x", "2024-05-01T12:00:09Z", ["id:3"])
    assert [p.name for p in tmp_path.iterdir()] == ["cp.json"]


def test_no_checkpoint_file_means_a_fresh_start(tmp_path: Path) -> None:
    assert Checkpoint.load(tmp_path / "none.json", "https://h/x") is None


def test_checkpoint_of_another_url_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    Checkpoint("https://h/x", None, []).save(path)
    with pytest.raises(CheckpointError, match="written for another URL"):
        Checkpoint.load(path, "https://h/y")


@pytest.mark.parametrize(
    "text", ["{", "[]", '{"version": 1}', '{"version": 1, "url": "u", "cursor": 5, "delivered": []}']
)
def test_unreadable_checkpoint_is_refused_rather_than_ignored(tmp_path: Path, text: str) -> None:
    path = tmp_path / "cp.json"
    path.write_text(text)
    with pytest.raises(CheckpointError, match="not a checkpoint file"):
        Checkpoint.load(path, "u")


# -- redaction -----------------------------------------------------------------------------


def test_redactor_masks_every_known_secret_longest_first() -> None:
    redact = Redactor(["Bearer s3cr3t-token", "s3cr3t"])
    assert redact("auth=Bearer s3cr3t-token, again s3cr3t") == f"auth={MASK}, again {MASK}"


def test_credentials_of_an_authorization_value_are_masked_on_their_own() -> None:
    assert Redactor(["Bearer s3cr3t-token"])("url=/cb?t=s3cr3t-token") == f"url=/cb?t={MASK}"


def test_values_too_short_to_be_secrets_are_not_masked() -> None:
    assert Redactor(["1", "abc"])("a1 abc") == "a1 abc"


def test_logging_filter_masks_arguments_and_exception_text() -> None:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    log = logging.Logger("t")
    log.addHandler(Collect())
    log.addFilter(RedactingFilter(Redactor(["hunter22"])))
    log.warning("token %s", "hunter22")
    try:
        raise ValueError("bad header hunter22")
    except ValueError:
        log.exception("failed")
    assert lines == [f"token {MASK}", f"failed: bad header {MASK}"]
