"""Field extraction: ``get_fields`` (a C constant) and ``extract_fields``.

The glue (``build/glue/extraction.c``) calls the bound extractor methods of
:attr:`ExtractionState.fields` directly (vectorcall, one field per host call)
and converts their results in C.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import SpecError
from ...extract import ExtractPlugin
from ...plugin import Plugin
from ...source import SourcePlugin
from ..fields import TYPE_CODES, FieldSpec, fields_of
from ..tables import uses_tables
from . import EXTRACTION, CapabilitySpec, Implementation, c_string

VALUE_OFFSETS_MINOR = 12
"""Plugin API 3.12 added value offsets (:class:`~falco_plugin.Located`)."""
_ARG_CODES = {None: 0, "index": 1, "key": 2}


class ExtractionSpec(CapabilitySpec):
    capability = EXTRACTION

    def __init__(  # not a dataclass: its generated methods cost ~1 ms of every library's start-up
        self,
        fields: list[FieldSpec],
        event_sources: list[str] | None,
        event_types: list[int] | None,
        own_source: str | None,
        uses_tables: bool = False,
    ) -> None:
        self.fields = fields
        self.event_sources = event_sources
        self.event_types = event_types
        self.own_source = own_source
        """The plugin's own event source, when it is also a source plugin."""
        self.uses_tables = uses_tables
        """Fields read state tables (the table glue is compiled in)."""

    @property
    def fields_json(self) -> str:
        return json.dumps([f.to_json() for f in self.fields], separators=(",", ":"))

    @property
    def uses_offsets(self) -> bool:
        return any(f.located for f in self.fields)

    @property
    def sees_syscall_events(self) -> bool:
        """Whether the host may hand these fields syscall events."""
        if self.event_sources is None:
            return self.own_source is None  # a source plugin's fields default to its own source
        return "syscall" in self.event_sources

    def symbols(self) -> list[str]:
        syms = list(EXTRACTION.required)
        if self.event_sources is not None:
            syms.append("get_extract_event_sources")
        if self.event_types is not None:
            syms.append("get_extract_event_types")
        return syms

    def min_api_minor(self, optional: bool = True) -> int:
        # Without value offsets support in the host the SDK just omits them.
        return VALUE_OFFSETS_MINOR if optional and self.uses_offsets else EXTRACTION.min_api_minor

    def c_defines(self) -> list[str]:
        d = ["#define FP_HAS_TABLES 1"] if self.uses_tables else []
        d += [
            f"#define FP_FIELDS_JSON {c_string(self.fields_json)}",
            f"#define FP_NFIELDS {len(self.fields)}u",
        ]
        if self.event_sources is not None:
            d.append(f"#define FP_EXTRACT_SOURCES_JSON {c_string(json.dumps(self.event_sources))}")
        if self.event_types:
            d.append(f"#define FP_EXTRACT_TYPES {', '.join(str(t) for t in self.event_types)}")
        rows = [
            f"{{{c_string(f.name)}, {TYPE_CODES[f.type]}u, {int(f.is_list)}, "
            f"{_ARG_CODES[f.arg]}, {int(f.arg_required)}}}"
            for f in self.fields
        ]
        d.append(f"#define FP_FIELD_ROWS {', '.join(rows)}")
        return d

    def baked(self) -> Any:
        return self.fields_json


class ExtractionImplementation(Implementation):
    capability = EXTRACTION
    base = ExtractPlugin

    def resolve(self, cls: type[Plugin], where: str) -> ExtractionSpec:
        assert issubclass(cls, ExtractPlugin)
        fields = fields_of(cls)
        if not fields:
            raise SpecError(f"{where} is an ExtractPlugin but declares no @field")
        names = [f.name for f in fields]
        if len(set(names)) != len(names):
            raise SpecError(f"{where}: duplicate field names")
        own = cls.event_source if issubclass(cls, SourcePlugin) else None
        return ExtractionSpec(
            fields=fields,
            event_sources=None if cls.extract_event_sources is None else list(cls.extract_event_sources),
            event_types=None if cls.extract_event_types is None else [int(t) for t in cls.extract_event_types],
            own_source=own,
            uses_tables=uses_tables(cls),
        )

    def setup(self, state: Any, spec: CapabilitySpec) -> None:
        assert isinstance(spec, ExtractionSpec)
        state.fields = tuple(getattr(state.plugin, f.method) for f in spec.fields)


class ExtractionState:
    """What ``build/glue/extraction.c`` reads from a runtime state."""

    fields: tuple[Any, ...]
    """Bound extractor methods, in field-id order."""


ExtractionImplementation.state_mixin = ExtractionState
EXTRACTION_IMPL = ExtractionImplementation()
