"""The registry checker: upstream's rules, then this repository's.

Every rule has a short name (the keys of :data:`RULES`); a :class:`Finding`
names the entry and the rule, so a failing CI line says what to fix where.

Upstream's validator applies: the name and source patterns, unique names,
unique IDs among sourcing plugins, the public ID range and the reserved
sources. On top of those this checker wants the file to be well formed
(strict keys, required fields, types), the plugin folders and the hosted
entries to match one to one, and each hosted entry to describe what its
built library actually reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from falco_plugin_tools.registry.built import BuiltFacts
from falco_plugin_tools.registry.fields import Declarer, concrete_sources, falco_and_known
from falco_plugin_tools.registry.model import (
    CAPABILITIES,
    MAX_PUBLIC_ID,
    NAME_RE,
    SOURCE_RE,
    entry_id,
    entry_source,
    hosted_folder,
    is_hosted,
    plugin_entries,
    supported,
)

__all__ = ["RULES", "Finding", "check", "check_upstream_rules", "plugin_folders"]

RULES: dict[str, str] = {
    # shape of the file
    "structure": "the file is a mapping with a 'plugins' list of mappings and a 'reserved_sources' list",
    "strict-keys": "only keys of the registry schema (plus our capabilities) appear",
    "required": "every entry has the fields its kind needs",
    "type": "every field has the type of the schema",
    # upstream's rules
    "name-pattern": "plugin names match ^[a-z]+[a-z0-9-_]*$",
    "unique-name": "no two entries share a name",
    "source-pattern": "event sources match ^[a-z]+[a-z0-9_]*$",
    "reserved-source": "no plugin sources events of a reserved source",
    "unique-id": "no two sourcing entries share an ID",
    "id-range": "sourcing IDs are in the public block (0 to 2^30-1)",
    # ours
    "capability": "every registered plugin supports at least one capability",
    "upstream-collision": "a hosted plugin takes no name or ID of an upstream entry",
    "folder-entry": "every plugin folder has a hosted entry",
    "entry-folder": "every hosted entry has a plugin folder",
    "rules-url": "a hosted plugin with rules/*.yaml has a rules_url, and a rules_url points at rules",
    "built-library": "every plugin folder has a built library that loads",
    "built-name": "the entry's name is the library's name",
    "built-id": "the entry's sourcing ID is the library's ID",
    "built-source": "the entry's event source is the library's",
    "built-capabilities": "the entry's supported capabilities are the library's",
    "built-sources": "the entry's extraction/parsing/async sources are the library's",
    "field-overlap": "no field of a hosted plugin is declared for one of its event sources by Falco, a registry plugin "
    "whose fields are known (fields.yaml) or another hosted plugin: Falco would refuse to load both",
    "field-prefix": "the prefixes of a hosted plugin's fields (before the first dot) are used by no other extractor "
    "of its event sources",
}

_TOP_KEYS = {"plugins", "reserved_sources"}
_ENTRY_KEYS = {
    "name", "description", "authors", "contact", "maintainers", "keywords",
    "url", "rules_url", "license", "reserved", "signature", "capabilities",
}  # fmt: skip
_STR_KEYS = ("name", "description", "authors", "contact", "url", "rules_url", "license")
_CAP_KEYS: dict[str, set[str]] = {
    "sourcing": {"supported", "id", "source"},
    "extraction": {"supported", "sources"},
    "parsing": {"supported", "sources"},
    "async": {"supported", "sources"},
    "capture_listening": {"supported"},
}
_MAINTAINER_KEYS = {"name", "email"}
_COSIGN_KEYS = {
    "certificate-oidc-issuer", "certificate-oidc-issuer-regexp", "certificate-identity",
    "certificate-identity-regexp", "certificate-github-workflow-repository",
}  # fmt: skip
_REQUIRED_REGISTERED = ("name", "description", "authors", "contact", "url", "license", "capabilities")
_REQUIRED_RESERVED = ("name", "description", "capabilities")


@dataclass(frozen=True, order=True)
class Finding:
    """One broken rule: which entry (or file, or folder), which rule, what is wrong."""

    entry: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.entry}: {self.message} [{self.rule}]"


class _Report:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def add(self, entry: str, rule: str, message: str) -> None:
        assert rule in RULES, rule
        self.findings.append(Finding(entry, rule, message))


def _label(entry: dict[str, Any], index: int) -> str:
    name = entry.get("name")
    return name if isinstance(name, str) and name else f"plugins[{index}]"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# -- shape -------------------------------------------------------------------------


def _check_structure(data: dict[str, Any], r: _Report) -> list[tuple[str, dict[str, Any]]]:
    for key in data:
        if key not in _TOP_KEYS:
            r.add("registry", "strict-keys", f"unknown top-level key {key!r} (expected: plugins, reserved_sources)")
    reserved = data.get("reserved_sources")
    if not _str_list(reserved):
        r.add("registry", "structure", "'reserved_sources' must be a list of source names")
    plugins = data.get("plugins")
    if not isinstance(plugins, list):
        r.add("registry", "structure", "'plugins' must be a list of entries")
        return []
    entries = []
    for i, entry in enumerate(plugins):
        if isinstance(entry, dict):
            entries.append((_label(entry, i), entry))
        else:
            r.add(f"plugins[{i}]", "structure", f"an entry must be a mapping, got {type(entry).__name__}")
    return entries


def _unknown(r: _Report, label: str, where: str, keys: Iterable[Any], allowed: set[str]) -> None:
    for key in keys:
        if key not in allowed:
            r.add(label, "strict-keys", f"unknown key {where}{key!r} (expected one of: {', '.join(sorted(allowed))})")


def _check_entry_shape(label: str, entry: dict[str, Any], r: _Report) -> None:
    _unknown(r, label, "", entry, _ENTRY_KEYS)
    reserved = entry.get("reserved", False)
    if not isinstance(reserved, bool):
        r.add(label, "type", "'reserved' must be true or false")
    required = _REQUIRED_RESERVED if reserved is True else _REQUIRED_REGISTERED
    for key in required:
        if entry.get(key) in (None, ""):
            r.add(label, "required", f"missing required field {key!r}")
    for key in _STR_KEYS:
        if key in entry and not isinstance(entry[key], str):
            r.add(label, "type", f"{key!r} must be a string")
    if "keywords" in entry and not _str_list(entry["keywords"]):
        r.add(label, "type", "'keywords' must be a list of strings")
    maintainers = entry.get("maintainers")
    if maintainers is not None:
        if not isinstance(maintainers, list) or not all(isinstance(m, dict) for m in maintainers):
            r.add(label, "type", "'maintainers' must be a list of {name, email} mappings")
        else:
            for m in maintainers:
                _unknown(r, label, "maintainers[].", m, _MAINTAINER_KEYS)
                if not isinstance(m.get("name"), str):
                    r.add(label, "required", "every maintainer needs a 'name'")
    signature = entry.get("signature")
    if signature is not None:
        if not isinstance(signature, dict) or not isinstance(signature.get("cosign"), dict):
            r.add(label, "type", "'signature' must be a mapping with a 'cosign' mapping")
        else:
            _unknown(r, label, "signature.", signature, {"cosign"})
            _unknown(r, label, "signature.cosign.", signature["cosign"], _COSIGN_KEYS)
    _check_capabilities_shape(label, entry, r)


def _check_capabilities_shape(label: str, entry: dict[str, Any], r: _Report) -> None:
    caps = entry.get("capabilities")
    if caps is None:
        return  # already reported as missing
    if not isinstance(caps, dict):
        r.add(label, "type", "'capabilities' must be a mapping")
        return
    _unknown(r, label, "capabilities.", caps, set(_CAP_KEYS))
    for cap, allowed in _CAP_KEYS.items():
        if cap not in caps:
            if is_hosted(entry):  # ours describe every capability, supported or not
                r.add(label, "required", f"missing capabilities.{cap} (entries hosted here describe all five)")
            continue
        value = caps[cap]
        if not isinstance(value, dict):
            r.add(label, "type", f"capabilities.{cap} must be a mapping")
            continue
        _unknown(r, label, f"capabilities.{cap}.", value, allowed)
        if not isinstance(value.get("supported"), bool):
            r.add(label, "required", f"capabilities.{cap}.supported must be true or false")
        if "sources" in value and not _str_list(value["sources"]):
            r.add(label, "type", f"capabilities.{cap}.sources must be a list of strings")
    src = caps.get("sourcing")
    if isinstance(src, dict) and src.get("supported") is True:
        if "id" not in src:
            r.add(label, "required", "a sourcing plugin needs capabilities.sourcing.id")
        elif not _is_int(src["id"]):
            r.add(label, "type", "capabilities.sourcing.id must be an integer")
        # ID 0 is the one registered without a source (it means "no plugin").
        if src.get("id") != 0:
            if "source" not in src:
                r.add(label, "required", "a sourcing plugin needs capabilities.sourcing.source")
            elif not isinstance(src["source"], str):
                r.add(label, "type", "capabilities.sourcing.source must be a string")
    if entry.get("reserved") is not True and not any(supported(entry, c) for c in CAPABILITIES):
        r.add(label, "capability", "supports no capability")


# -- upstream's rules -------------------------------------------------------------------


def _check_upstream(data: dict[str, Any], entries: list[tuple[str, dict[str, Any]]], r: _Report) -> None:
    reserved = set(data.get("reserved_sources") or []) if _str_list(data.get("reserved_sources")) else set()
    names: dict[str, str] = {}
    ids: dict[int, str] = {}
    for label, entry in entries:
        name = entry.get("name")
        if isinstance(name, str):
            if not NAME_RE.match(name):
                r.add(label, "name-pattern", f"name {name!r} does not match {NAME_RE.pattern}")
            if name in names:
                r.add(label, "unique-name", f"name {name!r} is already used by an earlier entry")
            names.setdefault(name, label)
        pid = entry_id(entry)
        if pid is not None:
            if not 0 <= pid <= MAX_PUBLIC_ID:
                r.add(label, "id-range", f"sourcing ID {pid} is outside the public block 0..{MAX_PUBLIC_ID}")
            if pid in ids:
                r.add(label, "unique-id", f"sourcing ID {pid} is already used by {ids[pid]}")
            ids.setdefault(pid, label)
            source = entry_source(entry)
            if pid != 0 and source is not None:
                if source in reserved:
                    r.add(label, "reserved-source", f"event source {source!r} is reserved")
                if not SOURCE_RE.match(source):
                    r.add(label, "source-pattern", f"event source {source!r} does not match {SOURCE_RE.pattern}")
        caps = entry.get("capabilities")
        for cap in ("extraction", "parsing", "async"):
            value = caps.get(cap) if isinstance(caps, dict) else None
            if isinstance(value, dict) and _str_list(value.get("sources")):
                for source in value["sources"]:
                    if not SOURCE_RE.match(source):
                        r.add(label, "source-pattern", f"{cap} source {source!r} does not match {SOURCE_RE.pattern}")


def check_upstream_rules(data: dict[str, Any]) -> list[Finding]:
    """Only the rules upstream's own validator applies (used to vet an upstream file before a sync)."""
    r = _Report()
    entries = _check_structure(data, r)
    r.findings = [f for f in r.findings if f.rule == "structure"]
    _check_upstream(data, entries, r)
    return r.findings


# -- this repository ----------------------------------------------------------------------


def plugin_folders(root: Path) -> list[str]:
    """Repository-relative folders of the plugin projects (``plugins/*/pyproject.toml``)."""
    return sorted(p.parent.relative_to(root).as_posix() for p in root.glob("plugins/*/pyproject.toml"))


def _check_collisions(entries: list[tuple[str, dict[str, Any]]], upstream: dict[str, Any] | None, r: _Report) -> None:
    """Hosted entries against the mirrored ones (and a given upstream file, maybe newer than the mirror)."""
    theirs: list[tuple[str, dict[str, Any]]] = [(lbl, e) for lbl, e in entries if not is_hosted(e)]
    if upstream is not None:
        theirs += [(f"upstream {e.get('name')}", e) for e in plugin_entries(upstream)]
    for label, entry in entries:
        if not is_hosted(entry):
            continue
        for _, their in theirs:
            if their.get("name") == entry.get("name"):
                r.add(label, "upstream-collision", f"name {entry.get('name')!r} is registered upstream")
                break
        pid = entry_id(entry)
        for their_label, their in theirs:
            if pid is not None and entry_id(their) == pid:
                who = their_label if their_label.startswith("upstream ") else f"upstream {their_label}"
                r.add(label, "upstream-collision", f"sourcing ID {pid} is taken by {who}")
                break


def _check_folders(entries: list[tuple[str, dict[str, Any]]], folders: list[str], r: _Report) -> None:
    hosted = {f: label for label, e in entries if (f := hosted_folder(e)) is not None}
    for folder in folders:
        if folder not in hosted:
            r.add(folder, "folder-entry", f"plugin folder {folder} has no registry entry (url: {folder})")
    for folder, label in hosted.items():
        if folder not in folders:
            r.add(label, "entry-folder", f"url {folder} is not a plugin folder (no {folder}/pyproject.toml)")


def _check_rules_url(entries: list[tuple[str, dict[str, Any]]], root: Path, r: _Report) -> None:
    for label, entry in entries:
        folder = hosted_folder(entry)
        if folder is None or not (root / folder / "pyproject.toml").is_file():
            continue
        has_rules = any(p.suffix in (".yaml", ".yml") for p in (root / folder / "rules").glob("*"))
        rules_url = entry.get("rules_url")
        if has_rules and not rules_url:
            r.add(label, "rules-url", f"{folder}/rules has rules files but the entry has no rules_url")
        elif isinstance(rules_url, str) and "://" not in rules_url:
            target = root / rules_url.strip("/")
            if not (target.is_dir() and any(p.suffix in (".yaml", ".yml") for p in target.glob("*"))):
                r.add(label, "rules-url", f"rules_url {rules_url} is not a folder with rules files")


def _norm_sources(value: Any) -> list[str]:
    return sorted(value) if _str_list(value) else []


def _check_built(label: str, entry: dict[str, Any], facts: BuiltFacts, r: _Report) -> None:
    if entry.get("name") != facts.name:
        r.add(label, "built-name", f"the library's name is {facts.name!r}")
    declared = {c for c in CAPABILITIES if supported(entry, c)}
    if declared != set(facts.capabilities):
        extra = ", ".join(sorted(declared - facts.capabilities)) or "-"
        missing = ", ".join(sorted(facts.capabilities - declared)) or "-"
        r.add(
            label,
            "built-capabilities",
            f"capabilities differ from the library's (declared, not built: {extra}; built, not declared: {missing})",
        )
    if "sourcing" in facts.capabilities and supported(entry, "sourcing"):
        if entry_id(entry) != facts.id:
            r.add(label, "built-id", f"sourcing ID is {entry_id(entry)}, the library's is {facts.id}")
        if entry_source(entry) != facts.event_source:
            r.add(
                label,
                "built-source",
                f"event source is {entry_source(entry)!r}, the library's is {facts.event_source!r}",
            )
    caps = entry.get("capabilities") if isinstance(entry.get("capabilities"), dict) else {}
    assert isinstance(caps, dict)
    reported = {
        "extraction": facts.extract_event_sources,
        "parsing": facts.parse_event_sources,
        "async": facts.async_event_sources,
    }
    for cap, lib_sources in reported.items():
        if cap not in facts.capabilities or not supported(entry, cap):
            continue
        value = caps.get(cap)
        declared_sources = _norm_sources(value.get("sources") if isinstance(value, dict) else None)
        built = sorted(lib_sources or [])
        # A sourcing plugin also works on its own source, listed or not.
        own = {facts.event_source} if "sourcing" in facts.capabilities else set()
        if set(declared_sources) | own != set(built):
            shown = ", ".join(declared_sources) or "none (all/own)"
            r.add(label, "built-sources", f"{cap} sources are {shown}, the library's are {', '.join(built) or 'none'}")


def extract_sources(facts: BuiltFacts) -> frozenset[str] | None:
    """The event sources a library's fields apply to (``None``: every source), as the plugin API defines them."""
    if "extraction" not in facts.capabilities:
        return frozenset()
    if facts.extract_event_sources:
        return frozenset(facts.extract_event_sources)
    return frozenset({facts.event_source}) if "sourcing" in facts.capabilities else None


def _check_fields(hosted: list[tuple[str, BuiltFacts]], known: Mapping[str, Any] | None, r: _Report) -> None:
    ours = [
        (label, Declarer(f"hosted plugin {label}", frozenset(f["name"] for f in facts.fields), extract_sources(facts)))
        for label, facts in hosted
    ]
    others = falco_and_known(known)
    for label, me in ours:
        theirs = others + [d for other, d in ours if other != label]
        overlaps: set[tuple[str, str]] = set()
        shared: set[tuple[str, str]] = set()
        for source in concrete_sources(me.sources):
            for them in (d for d in theirs if d.applies(source)):
                for name in sorted(me.fields & them.fields):
                    if (name, them.who) not in overlaps:
                        overlaps.add((name, them.who))
                        r.add(
                            label,
                            "field-overlap",
                            f"field {name!r} is also declared by {them.who} for source {source!r}: "
                            "Falco refuses to load both",
                        )
                their_prefixes = them.prefixes()
                for pfx, mine in sorted(me.prefixes().items()):
                    if pfx in their_prefixes and (pfx, them.who) not in shared:
                        shared.add((pfx, them.who))
                        r.add(
                            label,
                            "field-prefix",
                            f"field prefix {pfx + '.'!r} ({mine}) is also used by {them.who} for source {source!r} "
                            f"({their_prefixes[pfx]}): give the fields a prefix of their own",
                        )


def check(
    data: dict[str, Any],
    *,
    root: Path | None = None,
    built: Mapping[str, BuiltFacts | str] | None = None,
    upstream: dict[str, Any] | None = None,
    known_fields: Mapping[str, Any] | None = None,
) -> list[Finding]:
    """Every finding for a loaded registry.

    ``root`` enables the folder rules (plugin folders under ``root/plugins``).
    ``built`` maps a plugin folder (``plugins/dummy``) to what its library
    reports, or to why there is none; folders absent from it are not matched
    against a library. ``upstream`` is an upstream registry to check hosted
    entries against, for collisions the mirror does not know yet.
    ``known_fields`` replaces the packaged ``fields.yaml`` (Falco's fields and
    the known upstream plugins') the field rules hold built libraries against.
    """
    r = _Report()
    entries = _check_structure(data, r)
    for label, entry in entries:
        _check_entry_shape(label, entry, r)
    _check_upstream(data, entries, r)
    _check_collisions(entries, upstream, r)
    if root is not None:
        _check_folders(entries, plugin_folders(root), r)
        _check_rules_url(entries, root, r)
    by_folder = {hosted_folder(e): (label, e) for label, e in entries if is_hosted(e)}
    extractors: list[tuple[str, BuiltFacts]] = []
    for folder, facts in (built or {}).items():
        if isinstance(facts, str):
            r.add(folder, "built-library", facts)
        elif folder in by_folder:
            _check_built(*by_folder[folder], facts, r)
            extractors.append((by_folder[folder][0], facts))
    _check_fields(extractors, known_fields, r)
    return r.findings
