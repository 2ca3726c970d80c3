"""Refreshing the mirror from a newer upstream registry file.

The result is upstream's ``reserved_sources`` and entries, in upstream's
order, followed by the entries hosted here, unchanged. The report lists what
moved in the mirror (added, removed, changed entries and which of their
keys) and refuses to write when upstream now claims a name or an ID one of
our plugins uses: that needs a new ID for ours, not a silent overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from falco_plugin_tools.registry.check import Finding, check_upstream_rules
from falco_plugin_tools.registry.model import entry_id, is_hosted, plugin_entries

__all__ = ["SyncReport", "sync"]


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)
    reserved_sources: tuple[list[str], list[str]] | None = None
    conflicts: list[str] = field(default_factory=list)
    upstream_findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.conflicts and not self.upstream_findings

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.reserved_sources)

    def lines(self) -> list[str]:
        out = [f"upstream is invalid: {f}" for f in self.upstream_findings]
        out += [f"conflict: {c}" for c in self.conflicts]
        out += [f"added: {a}" for a in self.added]
        out += [f"removed: {r}" for r in self.removed]
        out += [f"changed: {name}: {', '.join(keys)}" for name, keys in self.changed.items()]
        if self.reserved_sources is not None:
            old, new = self.reserved_sources
            out.append(f"reserved_sources: {', '.join(old)} -> {', '.join(new)}")
        if not out:
            out.append("the mirror is up to date")
        return out


def _describe(entry: dict[str, Any]) -> str:
    pid = entry_id(entry)
    return f"{entry.get('name')} (id {pid})" if pid is not None else str(entry.get("name"))


def _diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths of the values that differ (a whole list counts as one value)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in [*old, *(k for k in new if k not in old)]:
            out += _diff(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        return out
    return [] if old == new else [path]


def sync(current: dict[str, Any], upstream: dict[str, Any]) -> tuple[dict[str, Any], SyncReport]:
    """The refreshed registry and what changed; write it only when ``report.ok``."""
    report = SyncReport(upstream_findings=check_upstream_rules(upstream))
    ours = [e for e in plugin_entries(current) if is_hosted(e)]
    mirrored = {e.get("name"): e for e in plugin_entries(current) if not is_hosted(e)}
    theirs = list(plugin_entries(upstream))
    their_names = {e.get("name"): e for e in theirs}
    their_ids = {i: e for e in theirs if (i := entry_id(e)) is not None}
    for entry in ours:
        if entry.get("name") in their_names:
            report.conflicts.append(f"upstream registers the name {entry.get('name')!r}, used by ours")
        pid = entry_id(entry)
        if pid is not None and pid in their_ids:
            report.conflicts.append(
                f"upstream gives ID {pid} to {their_ids[pid].get('name')}, used by ours {entry.get('name')}"
            )
    for entry in theirs:
        old = mirrored.get(entry.get("name"))
        if old is None:
            report.added.append(_describe(entry))
        elif old != entry:
            report.changed[str(entry.get("name"))] = _diff(old, entry)
    report.removed = [_describe(e) for name, e in mirrored.items() if name not in their_names]
    old_reserved = list(current.get("reserved_sources") or [])
    new_reserved = list(upstream.get("reserved_sources") or [])
    if old_reserved != new_reserved:
        report.reserved_sources = (old_reserved, new_reserved)
    refreshed = {"reserved_sources": new_reserved, "plugins": [*theirs, *ours]}
    return refreshed, report
