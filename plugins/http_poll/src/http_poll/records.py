"""From an API record to an event: its de-duplication key, its time, its payload.

The payload of every event is one compact JSON object, the *envelope*::

    {"url": "https://api.example.com/v1/logs?page=2", "status": 200, "id": "evt-17", "record": {...}}

``url`` and ``status`` describe the HTTP response the record came in,
``id`` is the record id read with the ``id`` pointer (``null`` without one),
``record`` is the record exactly as the API sent it. Fields read the
envelope only, so they work on events read back from a capture file too.

JSON may hold text that UTF-8 cannot: a lone UTF-16 surrogate such as
``"\\ud800"``, which Python decodes into a ``str`` that refuses to encode. Such
a character is written back as the escape it came as (:func:`utf8`), so the
payload is UTF-8 and still decodes to exactly the record the API sent; one
odd record never stops the stream.
"""

from __future__ import annotations

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


def record_id(record: Any, pointer: Pointer | None) -> str | None:
    """The record's id as text (JSON text when it is not a string), or None."""
    if pointer is None:
        return None
    value = pointer.get(record)
    if value is MISSING or value is None:
        return None
    return value if isinstance(value, str) else _compact(value)


def record_key(record: Any, rid: str | None) -> str:
    """What de-duplication compares: the id, or a hash of the content when there is none."""
    if rid is not None:
        return "id:" + rid
    return "sha256:" + hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def parse_timestamp(value: Any, unit: str = "s") -> int | None:
    """Nanoseconds since the epoch for an RFC 3339 text or a number in ``unit``; None if neither.

    Text without a zone is taken as UTC. Fractions are kept to the nanosecond.
    """
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
    m = _RFC3339.match(value)
    try:
        if m:
            whole = datetime.fromisoformat(m.group(1).replace("t", "T") + m.group(3).upper().replace("Z", "+00:00"))
            fraction = int((m.group(2) or "0")[:9].ljust(9, "0"))
        else:
            whole, fraction = datetime.fromisoformat(value), 0
    except ValueError:
        return None
    if whole.tzinfo is None:
        whole = whole.replace(tzinfo=UTC)
    delta = whole - _EPOCH
    ns = (delta // timedelta(microseconds=1)) * 1000 + fraction
    return ns if ns >= 0 else None


@dataclass(frozen=True)
class Envelope:
    """A decoded event payload."""

    url: str
    status: int
    id: str | None
    record: Any


def encode(url: str, status: int, rid: str | None, record: Any) -> bytes:
    """The payload of the event carrying ``record``."""
    return utf8(_compact({"url": url, "status": status, "id": rid, "record": record}))


def decode(payload: bytes) -> Envelope:
    """Read a payload back; raises ValueError when it is not an http_poll envelope."""
    doc = json.loads(payload)
    if not isinstance(doc, dict) or not {"url", "status", "record"} <= doc.keys():
        raise ValueError("not an http_poll event payload")
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise ValueError("not an http_poll event payload")
    return Envelope(str(doc["url"]), int(doc["status"]), rid, doc["record"])
