"""From an API record to an event: its de-duplication key, its time, its payload.

The payload of every event is one compact JSON object, the *envelope*::

    {"url": "https://api.example.com/v1/logs?page=2", "status": 200, "id": "evt-17", "record": {...}}

``url`` and ``status`` describe the HTTP response the record came in,
``id`` is the record id read with the ``id`` pointer (``null`` without one),
``record`` is the record exactly as the API spelled it, only the whitespace
between its tokens left out: the poller gets each record's own bytes from
:func:`falco_plugin.json_records` and wraps them (:func:`wrap`) without
decoding them. Fields read the envelope only, so they work on events read
back from a capture file too.

JSON may hold text that UTF-8 cannot: a lone UTF-16 surrogate such as
``"\\ud800"``, which Python decodes into a ``str`` that refuses to encode. In a
record it stays the escape it came as; in a value this module writes (the
id) it is written back as that escape (:func:`utf8`), so the payload is UTF-8
and still decodes to exactly what the API sent; one odd record never stops
the stream.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from .pointer import MISSING, Pointer

__all__ = [
    "Envelope",
    "envelope_head",
    "wrap",
    "id_text",
    "record_key",
    "record_id",
    "parse_timestamp",
    "encode",
    "decode",
    "utf8",
    "fits_utf8",
    "host_text",
    "UNITS",
]

UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$")
_NUMBER = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_PLAIN = re.compile(r'[^"\\\x00-\x1f\x7f]*')


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def utf8(text: str) -> bytes:
    """``text`` in UTF-8, each lone surrogate written as its ``\\uXXXX`` escape.

    In JSON text a lone surrogate can only sit inside a string, where that
    escape is valid JSON for the very same character: JSON stays lossless.
    """
    return text.encode("utf-8", "backslashreplace")


def fits_utf8(text: str) -> bool:
    """Whether UTF-8 can hold ``text``: a JSON string can carry a lone surrogate that it cannot."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def host_text(text: str) -> str:
    """``text`` as Falco can take it (UTF-8), lone surrogates escaped as :func:`utf8` does."""
    return text if fits_utf8(text) else utf8(text).decode("utf-8")


def id_text(value: Any) -> str | None:
    """A record's id value as text (JSON text when it is not a string); None for null or missing."""
    if value is None or value is MISSING:
        return None
    return value if isinstance(value, str) else _compact(value)


def record_id(record: Any, pointer: Pointer | None) -> str | None:
    """The id of a decoded record, read with ``pointer``, as :func:`id_text` gives it."""
    return None if pointer is None else id_text(pointer.get(record))


def record_key(record: Any, rid: str | None) -> str:
    """What de-duplication compares: the id, or a hash of the content when there is none."""
    if rid is not None:
        return "id:" + rid
    return "sha256:" + hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def parse_timestamp(value: Any, unit: str = "s") -> int | None:
    """Nanoseconds since the epoch for an RFC 3339 text or a number in ``unit``; None if neither.

    Text without a zone is taken as UTC. Fractions are kept to the nanosecond.
    """
    if type(value) is str:  # the usual case first: RFC 3339 text
        m = _RFC3339.match(value)
        if m:
            seconds = _rfc3339_seconds(m.group(1), m.group(3))
            if seconds is None:
                return None
            fraction = m.group(2)
            ns = seconds * 10**9 + (int(fraction[:9].ljust(9, "0")) if fraction else 0)
            return ns if ns >= 0 else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value * UNITS[unit] if value >= 0 else None
    if isinstance(value, float) or (isinstance(value, str) and _NUMBER.match(value)):
        try:
            ns = int(Decimal(str(value)) * UNITS[unit])
        except (InvalidOperation, ValueError, OverflowError):  # NaN, Infinity
            return None
        return ns if ns >= 0 else None
    if not isinstance(value, str):
        return None
    try:  # (RFC 3339 text was taken above) any other ISO 8601 text
        whole = datetime.fromisoformat(value)
    except ValueError:
        return None
    if whole.tzinfo is None:
        whole = whole.replace(tzinfo=UTC)
    ns = ((whole - _EPOCH) // timedelta(microseconds=1)) * 1000
    return ns if ns >= 0 else None


@functools.lru_cache(maxsize=4096)
def _rfc3339_seconds(whole: str, zone: str) -> int | None:
    """Seconds since the epoch of an RFC 3339 time to the second; records of one page share a
    few seconds, so most records find theirs in the cache."""
    try:
        when = datetime.fromisoformat(whole.replace("t", "T") + zone.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when - _EPOCH) // timedelta(seconds=1)


@dataclass(frozen=True)
class Envelope:
    """A decoded event payload."""

    url: str
    status: int
    id: str | None
    record: Any


def encode(url: str, status: int, rid: str | None, record: Any) -> bytes:
    """The payload of the event carrying a decoded ``record``."""
    return utf8(_compact({"url": url, "status": status, "id": rid, "record": record}))


def envelope_head(url: str, status: int) -> bytes:
    """What the payloads of every record of one response start with."""
    return utf8(_compact({"url": url, "status": status}))[:-1] + b',"id":'


def wrap(head: bytes, rid: str | None, raw: bytes) -> bytes:
    """The payload of the event carrying the record whose JSON text is ``raw``.

    The same envelope as :func:`encode` writes, with the record as it came."""
    if rid is None:
        rid_json = b"null"
    elif _PLAIN.fullmatch(rid) and rid.isascii():
        rid_json = b'"' + rid.encode() + b'"'  # what _compact gives for such text, without json.dumps
    else:
        rid_json = utf8(_compact(rid))
    return b"".join((head, rid_json, b',"record":', raw, b"}"))


def decode(payload: bytes) -> Envelope:
    """Read a payload back; raises ValueError when it is not an http_poll envelope."""
    doc = json.loads(payload)
    if not isinstance(doc, dict) or not {"url", "status", "record"} <= doc.keys():
        raise ValueError("not an http_poll event payload")
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise ValueError("not an http_poll event payload")
    return Envelope(str(doc["url"]), int(doc["status"]), rid, doc["record"])
