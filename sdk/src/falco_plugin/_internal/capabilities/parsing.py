"""Event parsing: ``parse_event`` and the type and source lists.

The glue (``build/glue/parsing.c``) calls the bound ``parse_event`` directly
(vectorcall) with the shared Event, inside a table context carrying the
call's reader and writer vtables (``build/glue/tables.c``).
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import SpecError
from ...parse import ALL_EVENTS, ALL_SOURCES, ParsePlugin
from ...plugin import Plugin
from ...source import SourcePlugin
from ..names import SOURCE_RE
from . import PARSING, CapabilitySpec, Implementation, c_string


class ParsingSpec(CapabilitySpec):
    capability = PARSING

    def __init__(self, event_types: list[int] | None, event_sources: list[str] | None) -> None:
        self.event_types = event_types
        """None: every type (asked for with ALL_EVENTS)."""
        self.event_sources = event_sources
        """None: every source (asked for with ALL_SOURCES)."""

    @property
    def sees_syscall_events(self) -> bool:
        return self.event_sources is None or "syscall" in self.event_sources

    def symbols(self) -> list[str]:
        syms = list(PARSING.required)
        if self.event_types is not None:
            syms.append("get_parse_event_types")
        if self.event_sources is not None:
            syms.append("get_parse_event_sources")
        return syms

    def c_defines(self) -> list[str]:
        d = ["#define FP_HAS_TABLES 1"]
        if self.event_types is not None:
            d.append(f"#define FP_PARSE_TYPES {', '.join(str(t) for t in self.event_types)}")
        if self.event_sources is not None:
            d.append(f"#define FP_PARSE_SOURCES_JSON {c_string(json.dumps(self.event_sources))}")
        return d

    def baked(self) -> Any:
        return [self.event_types, self.event_sources]


def _types(cls: type[ParsePlugin], where: str) -> list[int] | None:
    declared = getattr(cls, "parse_event_types", None)
    if declared is None:
        raise SpecError(
            f"{where}.parse_event_types is required: the event type codes to parse (e.g. (322,) for plugin events), "
            "or ALL_EVENTS to parse every event"
        )
    if declared == ALL_EVENTS:
        return None
    if isinstance(declared, (str, bytes)) or not hasattr(declared, "__iter__"):
        raise SpecError(f"{where}.parse_event_types must be a sequence of event type codes or ALL_EVENTS")
    codes = list(declared)
    if not codes:
        raise SpecError(
            f"{where}.parse_event_types is empty; the host would take that as every event: say ALL_EVENTS if that is "
            "what you mean"
        )
    for c in codes:
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < 2**16:
            raise SpecError(f"{where}.parse_event_types: {c!r} is not an event type code (0..65535)")
    return sorted(set(codes))


def _sources(cls: type[ParsePlugin], where: str) -> list[str] | None:
    declared = cls.parse_event_sources
    if declared is None:
        if issubclass(cls, SourcePlugin):
            return [cls.event_source]
        raise SpecError(
            f"{where}.parse_event_sources is required: the event sources to parse (e.g. ('syscall',)), or ALL_SOURCES"
        )
    if declared == ALL_SOURCES:
        return None
    if isinstance(declared, (str, bytes)) or not hasattr(declared, "__iter__"):
        raise SpecError(f"{where}.parse_event_sources must be a sequence of source names or ALL_SOURCES")
    names = list(declared)
    if not names:
        raise SpecError(
            f"{where}.parse_event_sources is empty; the host would take that as every source: say ALL_SOURCES if "
            "that is what you mean"
        )
    for n in names:
        if not isinstance(n, str) or not SOURCE_RE.match(n):
            raise SpecError(f"{where}.parse_event_sources: {n!r} is not an event source name")
    return list(dict.fromkeys(names))


class ParsingImplementation(Implementation):
    capability = PARSING
    base = ParsePlugin

    def resolve(self, cls: type[Plugin], where: str) -> ParsingSpec:
        assert issubclass(cls, ParsePlugin)
        if cls.parse_event is ParsePlugin.parse_event:
            raise SpecError(f"{where} is a ParsePlugin but does not define parse_event(self, event)")
        return ParsingSpec(event_types=_types(cls, where), event_sources=_sources(cls, where))

    def setup(self, state: Any, spec: CapabilitySpec) -> None:
        state.parse = state.plugin.parse_event


class ParsingState:
    """What ``build/glue/parsing.c`` reads from a runtime state."""

    parse: Any
    """The plugin's bound ``parse_event``."""


ParsingImplementation.state_mixin = ParsingState
PARSING_IMPL = ParsingImplementation()
