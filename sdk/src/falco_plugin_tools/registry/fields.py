"""Who else declares a field, per event source: the facts behind the field rules of the checker.

Falco refuses to start when two extractors declare the same field name for
one event source, and since 0.41 it loads its ``container`` plugin (which
declares ``k8s.pod.name``, ``container.id``...) for the syscall source by
default. So a plugin of ours must declare no field that Falco's own
filterchecks, a registry plugin or another plugin of ours declares for a
source it extracts from; and, so that a field upstream adds later cannot
clash either, its fields should sit under a prefix of its own.

Falco's filterchecks and the fields of the upstream plugins whose fields are
known come from ``fields.yaml`` beside this module (see its header for where
each list comes from); our plugins' fields come from their built libraries.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ANY_PLUGIN_SOURCE",
    "DATA",
    "SYSCALL",
    "Declarer",
    "concrete_sources",
    "falco_and_known",
    "load_known",
    "prefix",
]

DATA = Path(__file__).with_name("fields.yaml")
SYSCALL = "syscall"
ANY_PLUGIN_SOURCE = "<any plugin source>"
"""Stands for every source but syscall, for an extractor that works on all sources."""


def prefix(field: str) -> str:
    """The part of a field name before its first dot (``k8s`` of ``k8s.pod.name``): its class."""
    return field.split(".", 1)[0]


@dataclass(frozen=True)
class Declarer:
    """An extractor whose fields ours must not overlap: Falco itself, a known upstream plugin, or one of ours."""

    who: str
    """How a finding names it: ``Falco's own filterchecks``, ``the container plugin``, ``hosted plugin metrics``."""
    fields: frozenset[str]
    sources: frozenset[str] | None
    """The event sources it extracts from; ``None``: every source."""
    plugin_sources_only: bool = False
    """It applies to every source but syscall (Falco's evt.* fields of plugin sources)."""

    def applies(self, source: str) -> bool:
        if self.plugin_sources_only:
            return source != SYSCALL
        if self.sources is None:
            return True
        return source in self.sources

    def prefixes(self) -> dict[str, str]:
        """Each field prefix with one of its fields, for the message."""
        out: dict[str, str] = {}
        for name in sorted(self.fields):
            out.setdefault(prefix(name), name)
        return out


@cache
def load_known(path: Path = DATA) -> dict[str, Any]:
    """``fields.yaml`` parsed (its shape is checked by the SDK's tests)."""
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def falco_and_known(data: Mapping[str, Any] | None = None) -> list[Declarer]:
    """Falco's filterchecks and the known upstream plugins, as declarers."""
    data = load_known() if data is None else data
    falco = data["falco"]
    out = [
        Declarer(f"Falco {falco['version']}'s own filterchecks", frozenset(falco["syscall"]), frozenset({SYSCALL})),
        Declarer(
            f"Falco {falco['version']}'s own filterchecks",
            frozenset(falco["plugin_sources"]),
            None,
            plugin_sources_only=True,
        ),
    ]
    for name, plugin in data["plugins"].items():
        sources = plugin.get("sources")
        out.append(
            Declarer(
                f"the {name} plugin",
                frozenset(f["name"] for f in plugin["fields"]),
                None if sources is None else frozenset(sources),
            )
        )
    return out


def concrete_sources(sources: Iterable[str] | None) -> Iterator[str]:
    """The sources to check an extractor on: its own, or for one that takes every source, syscall
    and any plugin source."""
    yield from (SYSCALL, ANY_PLUGIN_SOURCE) if sources is None else sorted(sources)
