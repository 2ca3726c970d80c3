"""What the capability modules see of a plugin handle and of its library.

The host's modules import in one direction. At the bottom, the building
blocks: ``_ffi``, ``errors``, ``events``, ``fields``, ``info``, ``raw``,
``schema``, ``metrics`` and these protocols. Above them, the capability
modules, each driving one capability of an initialised plugin: ``capture``
(sourcing), ``parsing``, ``async_events``, ``routines`` (capture listening).
Then :class:`~falco_plugin_tools.host.handle.PluginHandle`, which combines
them; then :class:`~falco_plugin_tools.host.loader.PluginLibrary`, which
creates handles; then the runners, the replay and the command line.

A capability module needs a handle's plugin state and a few of its
properties, not the class: :class:`HandleView` says which, so it never
imports ``handle`` (``sdk/tests/test_host_layering.py`` checks that the
import graph has no cycle).
"""

from __future__ import annotations

from typing import Any, Protocol

from falco_plugin_tools.host import raw as _raw
from falco_plugin_tools.host.fields import FieldRequest
from falco_plugin_tools.host.info import PluginInfo
from falco_plugin_tools.host.tables import TableRegistry

__all__ = ["HandleView", "LibraryView"]


class LibraryView(Protocol):
    """A loaded plugin library (:class:`~falco_plugin_tools.host.loader.PluginLibrary`), as handles use it."""

    @property
    def info(self) -> PluginInfo: ...

    @property
    def raw(self) -> _raw.Library: ...

    @property
    def init_schema_raw(self) -> tuple[int, str]: ...

    def has(self, name: str) -> bool: ...

    def symbol(self, name: str) -> Any | None: ...

    def field(self, expression: str) -> FieldRequest: ...

    def _forget(self, handle: Any) -> None: ...


class HandleView(Protocol):
    """An initialised plugin (:class:`~falco_plugin_tools.host.handle.PluginHandle`), as capability modules use it."""

    @property
    def info(self) -> PluginInfo: ...

    @property
    def library(self) -> LibraryView: ...

    @property
    def last_error(self) -> str: ...

    @property
    def raw(self) -> _raw.State: ...

    @property
    def _state(self) -> _raw.State:
        """The live state (raises when destroyed)."""
        ...

    @property
    def tables(self) -> TableRegistry | None: ...

    @property
    def routines(self) -> Any:
        """The host's :class:`~falco_plugin_tools.host.routines.RoutinePool`, or ``None``."""
        ...

    @property
    def parse_event_types(self) -> frozenset[int] | None: ...

    parse_failures: int
    """Failed parse calls so far (counted by ``parsing.parse_event`` when not strict)."""

    def _forget(self, capture: Any) -> None: ...
