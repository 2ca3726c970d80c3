"""What a built plugin library reports about itself, read through the SDK's host.

The registry checker, the README generator and the packager all describe the
artifact, not the source: a stale or mis-built library must not pass because
the Python class looks right. So they load ``lib<name>.so`` in the host (as
Falco would, before ``init``) and keep only the plain facts they need.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from falco_plugin_tools.host import PluginInfo

__all__ = ["BuiltFacts", "LibraryError", "find_library", "library_info", "read_library"]


class LibraryError(Exception):
    """No usable library: not built, ambiguous, or the host refuses to load it."""


@dataclass(frozen=True)
class BuiltFacts:
    """A library's self-description (``plugin_get_*`` results), as plain data."""

    name: str
    version: str = "0.0.0"
    description: str = ""
    contact: str = ""
    capabilities: frozenset[str] = frozenset()
    id: int = 0
    event_source: str = ""
    extract_event_sources: tuple[str, ...] | None = None
    parse_event_sources: tuple[str, ...] | None = None
    async_event_sources: tuple[str, ...] | None = None
    fields: tuple[dict[str, Any], ...] = ()
    """``get_fields`` entries, in the plugin API's JSON shape (name, type, desc, isList, arg...)."""
    init_schema: dict[str, Any] | None = None


def find_library(folder: Path, name: str | None = None) -> Path:
    """The ``lib*.so`` a build left in ``folder`` (``lib<name>.so`` when there are several)."""
    candidates = sorted(folder.glob("lib*.so"))
    if name is not None and (folder / f"lib{name}.so") in candidates:
        return folder / f"lib{name}.so"
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise LibraryError(f"no library built in {folder} (run `nox -s build` or `falco-plugin build {folder}`)")
    shown = ", ".join(c.name for c in candidates)
    raise LibraryError(f"several libraries in {folder} ({shown}): cannot tell which is the plugin's")


def facts_from_info(info: PluginInfo) -> BuiltFacts:
    """Plain facts from the host's :class:`~falco_plugin_tools.host.PluginInfo`."""

    def sources(cap: str, reported: frozenset[str]) -> tuple[str, ...] | None:
        return tuple(sorted(reported)) if cap in info.capabilities else None

    return BuiltFacts(
        name=info.name,
        version=info.version,
        description=info.description,
        contact=info.contact,
        capabilities=frozenset(info.capabilities),
        id=info.id,
        event_source=info.event_source,
        extract_event_sources=sources("extraction", info.extract_event_sources),
        parse_event_sources=sources("parsing", info.parse_event_sources),
        async_event_sources=sources("async", info.async_event_sources),
        fields=tuple(f.to_json() for f in info.fields),
        init_schema=info.init_schema,
    )


def library_info(path: Path) -> PluginInfo:
    """Load ``path`` in the SDK's host and return what it reports of itself."""
    try:
        from falco_plugin_tools.host import PluginLibrary
    except ImportError as exc:  # the host's extra is not installed
        raise LibraryError(f"the SDK's host is not available ({exc}): reinstall falco-plugin-sdk") from None
    try:
        library = PluginLibrary.load(path)
    except Exception as exc:  # noqa: BLE001 - any load failure is a finding about this library
        raise LibraryError(f"{path} does not load in the host: {exc}") from None
    try:
        return library.info
    finally:
        library.close()


def read_library(path: Path) -> BuiltFacts:
    """Load ``path`` in the SDK's host and return what it reports."""
    return facts_from_info(library_info(path))
