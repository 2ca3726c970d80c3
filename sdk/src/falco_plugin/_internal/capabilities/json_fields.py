"""Fields by JSON pointer (an SDK feature, not a capability): no symbol of its own.

A plugin has it when its :class:`~falco_plugin.ExtractPlugin` declares
:func:`~falco_plugin.json_field` attributes. The glue
(``build/glue/json_fields.c``, with yyjson compiled in) answers those fields in
``extract_fields`` without Python: ``extraction.c`` hands it every requested
field that is a JSON field, and takes the GIL only for the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...extract import ExtractPlugin
from ...plugin import Plugin
from ..fields import fields_of
from . import JSON_FIELDS, CapabilitySpec, FeatureImplementation, c_string

_MODES = {"string": 0, "uint64": 1, "bool": 2, "string_list": 3}  # fp_json_mode in json_fields.c


class JsonFieldsSpec(CapabilitySpec):
    capability = JSON_FIELDS

    def __init__(self, rows: Sequence[tuple[int, str, str, str | None]]) -> None:
        self.rows = list(rows)
        """(field id, type, base, pointer or None for a pointer argument), in field-id order."""

    def c_defines(self) -> list[str]:
        rows = [
            f"{{{fid}u, {_MODES[t]}, {c_string(base)}, {c_string(ptr or '')}, {int(ptr is None)}}}"
            for fid, t, base, ptr in self.rows
        ]
        return [
            "#define FP_HAS_JSON_FIELDS 1",
            f"#define FP_NJSON_FIELDS {len(self.rows)}u",
            f"#define FP_JSON_FIELD_ROWS {', '.join(rows)}",
        ]

    def baked(self) -> Any:
        return [list(r) for r in self.rows]


class JsonFieldsImplementation(FeatureImplementation):
    capability = JSON_FIELDS
    base = ExtractPlugin

    def selects(self, cls: type[Plugin]) -> bool:
        return issubclass(cls, ExtractPlugin) and any(f.json is not None for f in fields_of(cls))

    def resolve(self, cls: type[Plugin], where: str) -> JsonFieldsSpec:
        rows = [
            (fid, f.json.type, f.json.base, f.json.pointer)
            for fid, f in enumerate(fields_of(cls))
            if f.json is not None
        ]
        return JsonFieldsSpec(rows)


class JsonFieldsState:
    """Nothing: the glue needs no Python for these fields."""


JsonFieldsImplementation.state_mixin = JsonFieldsState
JSON_FIELDS_IMPL = JsonFieldsImplementation()
