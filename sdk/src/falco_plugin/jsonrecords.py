"""The records of a JSON document as raw byte slices, split in C without building Python objects.

A source plugin that receives pages of JSON records (an audit log API, say)
needs each record as the payload of an event, and a few values of each (an
id, a time). :func:`json_records` gives them::

    for raw, (rid, published) in json_records(body, "/items", ["/id", "/published"]):
        ...  # raw: the record's bytes; rid, published: decoded values (None when missing)

``raw`` is the record's JSON text as the document spells it, with the
whitespace between tokens left out: nothing is decoded and written again, so
numbers keep their spelling and escapes (a lone surrogate's ``\\ud800`` too)
stay as they came. An event payload can wrap it as it is.

The values are what :func:`json.loads` would give for them (``str``, ``int``,
``float``, ``bool``, ``dict``, ``list``); ``None`` for JSON ``null`` and for a
pointer that leads nowhere.

In a plugin library that carries the SDK's JSON parser (one that declares a
:func:`~falco_plugin.json_field`), the work is done in C by the glue, with
yyjson checking the document and the GIL released while it scans: about the
cost of reading the bytes once, instead of a ``json.loads`` of every record
and a ``json.dumps`` to write it back. Elsewhere (the Python host, unit tests,
a library without JSON fields) the same results come from Python. Whatever
the C path cannot vouch for (a document yyjson refuses, nesting deeper than
:data:`C_MAX_DEPTH`, a key holding a lone surrogate escape) takes the Python
path too, so the two never differ: the errors are always those of
:func:`json.loads`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from typing import Any

from . import _internal
from ._internal.jsonpointer import pointer_error, pointer_tokens, resolve

__all__ = ["json_records", "JsonRecord", "JsonRecordsError", "NotJsonError", "NoRecordsError", "C_MAX_DEPTH"]

JsonRecord = tuple[bytes, tuple[Any, ...]]
"""One record: its raw JSON bytes and the values at the requested pointers, in their order."""

C_MAX_DEPTH = 512
"""Deepest nesting the C path scans; a deeper document is left to :func:`json.loads` (which may refuse it)."""


class JsonRecordsError(ValueError):
    """The document has no records to give."""


class NotJsonError(JsonRecordsError):
    """The document is not JSON; :attr:`reason` is :func:`json.loads`'s word for why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"not JSON ({reason})")
        self.reason = reason
        """The decoder's message (``Expecting value``), or the exception's name (``RecursionError``)."""


class NoRecordsError(JsonRecordsError):
    """The pointer does not lead to an array; :attr:`found` says what it leads to."""

    def __init__(self, pointer: str, found: str) -> None:
        super().__init__(f"expected an array of records at '{pointer}', found {found}")
        self.pointer = pointer
        self.found = found
        """``nothing`` when the pointer leads nowhere, else the Python type name of the value (``dict``)."""


_WS = re.compile(r"[ \t\n\r]*")
_MINIFY = re.compile(r'("(?:[^"\\]|\\.)*")|[ \t\n\r]+', re.S)
_DECODER = json.JSONDecoder()


@functools.lru_cache(maxsize=64)
def _tokens(pointer: str) -> tuple[str, ...]:
    bad = pointer_error(pointer)
    if bad:
        raise ValueError(f"invalid JSON pointer {pointer!r}: {bad}")
    return pointer_tokens(pointer)


@functools.lru_cache(maxsize=64)
def _c_tokens(pointer: str) -> tuple[bytes, ...] | None:
    """The tokens as the C path compares them (UTF-8); None when one cannot be UTF-8 (a lone surrogate)."""
    try:
        return tuple(t.encode("utf-8") for t in _tokens(pointer))
    except UnicodeEncodeError:
        return None


def json_records(document: bytes, at: str = "", values: Sequence[str] = ()) -> list[JsonRecord]:
    """The records of the array at pointer ``at`` of ``document``, each with its values at ``values``.

    ``at`` and each of ``values`` (relative to a record) are RFC 6901 JSON
    pointers (``/a/b``, ``/items/0``; ``~1`` for ``/`` and ``~0`` for ``~`` in
    a key); ``""`` is the whole document. Raises :class:`ValueError` for an
    invalid pointer, :class:`NotJsonError` when ``document`` is not JSON and
    :class:`NoRecordsError` when ``at`` does not designate an array."""
    at_tokens = _c_tokens(at)
    value_tokens = tuple(_c_tokens(v) for v in values)
    split = _internal.json_split
    if split is not None and at_tokens is not None and None not in value_tokens:
        records = split(bytes(document), at_tokens, value_tokens, json.loads)  # type: ignore[arg-type]
        if records is not None:
            return records  # type: ignore[no-any-return]
    return python_json_records(document, at, values)


def python_json_records(document: bytes, at: str = "", values: Sequence[str] = ()) -> list[JsonRecord]:
    """:func:`json_records` computed in Python: the statement of what the C path must give."""
    at_tokens = _tokens(at)
    value_tokens = [_tokens(v) for v in values]
    try:
        text = bytes(document).decode(json.detect_encoding(document), "surrogatepass")
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotJsonError(exc.msg) from None
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, absurd nesting
        raise NotJsonError(type(exc).__name__) from None
    found, array = resolve(doc, at_tokens)
    if not isinstance(array, list):
        raise NoRecordsError(at, type(array).__name__ if found else "nothing")
    # The same array again in the text, for the spans of its elements: json.loads has vouched for it.
    start = _locate(text, at_tokens)
    out: list[JsonRecord] = []
    i = _WS.match(text, start + 1).end()  # type: ignore[union-attr]
    for record in array:
        _, end = _DECODER.raw_decode(text, i)
        raw = _MINIFY.sub(lambda m: m.group(1) or "", text[i:end]).encode("utf-8", "backslashreplace")
        out.append((raw, tuple(resolve(record, tokens)[1] for tokens in value_tokens)))
        i = _WS.match(text, end).end()  # type: ignore[union-attr]
        if text[i] == ",":
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
    return out


def _locate(text: str, tokens: tuple[str, ...]) -> int:
    """Where in ``text`` the value at ``tokens`` starts (it exists: the caller found it decoded)."""
    i = _WS.match(text).end()  # type: ignore[union-attr]
    for token in tokens:
        found = -1
        if text[i] == "{":
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
            while text[i] != "}":
                key, i = _DECODER.raw_decode(text, i)
                i = _WS.match(text, _WS.match(text, i).end() + 1).end()  # type: ignore[union-attr]
                if key == token:
                    found = i  # the last of duplicate keys wins, as in json.loads
                _, i = _DECODER.raw_decode(text, i)
                i = _WS.match(text, i).end()  # type: ignore[union-attr]
                if text[i] == ",":
                    i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
        else:
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
            for _ in range(int(token)):
                _, i = _DECODER.raw_decode(text, i)
                i = _WS.match(text, _WS.match(text, i).end() + 1).end()  # type: ignore[union-attr]
            found = i
        i = found
    return i
