"""Reading and writing ``registry/plugins.yaml``.

The file keeps the upstream registry's schema so upstream tools can read it;
entries are plain dictionaries (the checker needs the raw shape to report
unknown keys and wrong types). Writing is canonical: ``dump(load(text))``
gives ``text`` back for any file this module wrote, so a refresh or a new
entry shows up in review as exactly the lines that changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from falco_plugin._internal.capabilities import API, EXTRACTION, SOURCING
from falco_plugin._internal.names import NAME_RE, SOURCE_RE

__all__ = [
    "CAPABILITIES",
    "HEADER",
    "MAX_PUBLIC_ID",
    "NAME_RE",
    "SOURCE_RE",
    "RegistryError",
    "dump",
    "entry_id",
    "entry_source",
    "find_registry",
    "hosted_folder",
    "is_hosted",
    "load",
    "load_file",
    "next_free_id",
    "plugin_entries",
    "save_file",
    "sourcing",
    "supported",
]

# Upstream's naming rules: a plugin name may use '-', an event source may not.
# The public block of plugin IDs (the lowest 30 bits); the blocks above are
# private, reserved and internal, and never appear in the public registry.
MAX_PUBLIC_ID = 2**30 - 1

# Upstream describes sourcing and extraction only; the other three are ours,
# as extra keys that upstream's decoder ignores.
UPSTREAM_CAPABILITIES = (SOURCING.name, EXTRACTION.name)
CAPABILITIES = tuple(c.name for c in API)

HEADER = """\
# The Falco plugin registry as this repository sees it: every entry of the
# upstream registry (falcosecurity/plugins registry.yaml), mirrored verbatim,
# followed by the plugins hosted here (their url is a path in this repository).
#
# Same schema as upstream, plus capabilities.parsing/async/capture_listening.
# Checked by `falco-plugin registry check`; refreshed from a newer upstream file
# by `falco-plugin registry sync FILE`; `falco-plugin new` appends entries.
# This file is written by those tools: see registry/README.md before editing.
"""


class RegistryError(Exception):
    """The registry file cannot be read at all (not YAML, not a mapping)."""


def load(text: str) -> dict[str, Any]:
    """Parse registry YAML; shape problems are left to the checker."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RegistryError(f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RegistryError("the top level must be a mapping with 'plugins' and 'reserved_sources'")
    return data


def load_file(path: Path) -> dict[str, Any]:
    try:
        return load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{path} not found") from None


class _Dumper(yaml.SafeDumper):
    """Block style, lists indented under their key (as upstream writes them)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(data: dict[str, Any]) -> str:
    """The canonical text of a registry: our header, then the data in its own key order."""
    body = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100_000,  # never fold long descriptions: diffs stay one line per value
    )
    return HEADER + "\n" + body


def save_file(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dump(data), encoding="utf-8")
    tmp.replace(path)


def find_registry(start: Path) -> Path | None:
    """``registry/plugins.yaml`` in ``start`` or its nearest ancestor that has one."""
    for folder in [start.resolve(), *start.resolve().parents]:
        candidate = folder / "registry" / "plugins.yaml"
        if candidate.is_file():
            return candidate
    return None


# -- entry accessors (tolerant: the checker reports the shape problems) ----------


def plugin_entries(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    plugins = data.get("plugins")
    if isinstance(plugins, list):
        yield from (p for p in plugins if isinstance(p, dict))


def _capability(entry: dict[str, Any], cap: str) -> dict[str, Any]:
    caps = entry.get("capabilities")
    value = caps.get(cap) if isinstance(caps, dict) else None
    return value if isinstance(value, dict) else {}


def supported(entry: dict[str, Any], cap: str) -> bool:
    return _capability(entry, cap).get("supported") is True


def sourcing(entry: dict[str, Any]) -> dict[str, Any]:
    return _capability(entry, "sourcing")


def entry_id(entry: dict[str, Any]) -> int | None:
    """The sourcing ID, if the entry sources events and has an integer ID."""
    value = sourcing(entry).get("id")
    if supported(entry, "sourcing") and isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def entry_source(entry: dict[str, Any]) -> str | None:
    value = sourcing(entry).get("source")
    return value if supported(entry, "sourcing") and isinstance(value, str) else None


def is_hosted(entry: dict[str, Any]) -> bool:
    """Hosted here: the url is a path in this repository rather than an address."""
    url = entry.get("url")
    return isinstance(url, str) and "://" not in url and not entry.get("reserved")


def hosted_folder(entry: dict[str, Any]) -> str | None:
    """The repository-relative folder of a hosted entry, normalised (``plugins/dummy``)."""
    if not is_hosted(entry):
        return None
    return str(entry["url"]).strip().strip("/").removeprefix("./")


def next_free_id(data: dict[str, Any]) -> int:
    """The lowest public sourcing ID no entry uses (reserved ones included)."""
    used = {i for e in plugin_entries(data) if (i := entry_id(e)) is not None}
    candidate = 1
    while candidate in used:
        candidate += 1
    if candidate > MAX_PUBLIC_ID:
        raise RegistryError("the public ID block is exhausted")
    return candidate
