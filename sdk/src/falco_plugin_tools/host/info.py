"""What the host learns about a plugin library before ``init`` (:class:`PluginInfo`).

Its own module, below both the loader that fills it and the handle and
capability modules that read it (see :mod:`falco_plugin_tools.host.views`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from falco_plugin._internal.capabilities import API
from falco_plugin_tools.host.fields import FieldInfo

__all__ = ["CAPABILITIES", "PluginInfo"]

# Capability name -> how Falco's --list-plugins titles it.
CAPABILITIES = {cap.name: cap.title for cap in API}


@dataclass(frozen=True)
class PluginInfo:
    """Everything the host learns about a plugin before ``init``."""

    name: str
    version: str
    description: str
    contact: str
    required_api_version: str
    capabilities: frozenset[str]
    id: int
    event_source: str
    fields: list[FieldInfo]
    init_schema: dict[str, Any] | None
    extract_event_sources: frozenset[str]
    """Sources the plugin extracts from; empty means every source."""
    symbols: frozenset[str]
    """The ``plugin_*`` entry points the library exports."""
    parse_event_sources: frozenset[str] = frozenset()
    async_event_sources: frozenset[str] = frozenset()
    async_events: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "contact": self.contact,
            "required_api_version": self.required_api_version,
            "capabilities": [c for c in CAPABILITIES if c in self.capabilities],
            "id": self.id,
            "event_source": self.event_source,
            "extract_event_sources": sorted(self.extract_event_sources),
            "parse_event_sources": sorted(self.parse_event_sources),
            "async_event_sources": sorted(self.async_event_sources),
            "async_events": list(self.async_events),
            "symbols": sorted(self.symbols),
            "fields": [f.to_json() for f in self.fields],
            "init_schema": self.init_schema,
        }
