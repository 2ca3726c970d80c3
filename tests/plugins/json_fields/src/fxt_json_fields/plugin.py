"""Fields by JSON pointer of every type, with a base and as an argument, beside a Python field.

The open parameters are a JSON array of the payloads to emit, each in hex
(so that a test can send bytes that are not UTF-8 nor JSON), or an object
``{"payloads": [...], "repeat": N}`` emitting them N times (for benchmarks).
``jx.py.str`` reads ``/s`` as a plugin without JSON fields would: a Python field
on a ``@per_event``-cached ``json.loads``, to compare with ``jx.str``.
"""

from __future__ import annotations

import json
from typing import Any

from falco_plugin import (
    Batch,
    EndOfStream,
    Event,
    ExtractPlugin,
    OpenParam,
    SourceInstance,
    SourcePlugin,
    field,
    json_field,
    per_event,
)


class Payloads(SourceInstance):
    def __init__(self, payloads: list[bytes]) -> None:
        self.payloads = payloads

    def next_batch(self) -> Batch:
        if not self.payloads:
            raise EndOfStream
        batch, self.payloads = self.payloads[:4], self.payloads[4:]
        return batch


class JsonFieldsPlugin(SourcePlugin, ExtractPlugin):
    name = "fxt-json-fields"
    version = "0.1.0"
    description = "Emits given payloads; fields by JSON pointer"
    contact = "https://example.invalid/fxt"
    id = 999_119
    event_source = "fxt_json"

    text = json_field("jx.str", "/s", str, "The value at /s as text")
    number = json_field("jx.int", "/n", int, "The integer at /n")
    flag = json_field("jx.bool", "/b", bool, "The boolean at /b")
    items = json_field("jx.list", "/l", list[str], "The array at /l")
    escaped = json_field("jx.escaped", "/a~1b/m~0n", str, "The value at key 'a/b', then 'm~n'")
    first = json_field("jx.first", "/l/0", str, "The first item of /l")
    rec_name = json_field("jx.rec.name", "/name", str, "The name of the record", base="/record")
    value = json_field("jx.value", None, str, "The value at the pointer given as argument")
    rec_value = json_field("jx.rec.value", None, str, "The value at a pointer into /record", base="/record")

    @field("jx.size", "The payload's length, from Python")
    def size(self, event: Event) -> int:
        return len(event.payload)

    @per_event
    def document(self, event: Event) -> Any:
        return json.loads(event.payload)

    @field("jx.py.str", "The string at /s, read in Python")
    def py_str(self, event: Event) -> str | None:
        doc = self.document(event)
        value = doc.get("s") if isinstance(doc, dict) else None
        return value if isinstance(value, str) else None

    def open(self, params: str) -> Payloads:
        spec = json.loads(params or "[]")
        if isinstance(spec, dict):
            return Payloads([bytes.fromhex(p) for p in spec["payloads"]] * int(spec["repeat"]))
        return Payloads([bytes.fromhex(p) for p in spec])

    def list_open_params(self) -> list[OpenParam]:
        return []
