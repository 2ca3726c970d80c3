"""Event parsing: a plugin that follows the event stream and keeps state.

The host calls :meth:`ParsePlugin.parse_event` for every event of the types
and sources the plugin declares, in order, before any field is extracted
from it; the parser reads and writes state tables during the call (see
:mod:`falco_plugin.tables`)::

    class OpenCounter(ParsePlugin):
        parse_event_types = (PPME_SYSCALL_OPEN_X,)  # or ALL_EVENTS, explicitly
        parse_event_sources = ("syscall",)

        def parse_event(self, event: Event) -> None: ...

Both declarations are required: an empty list is an error rather than the
host's "everything" default, which a parser should ask for by name
(:data:`ALL_EVENTS`, :data:`ALL_SOURCES`). A source plugin's parser defaults
to its own source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Final, Literal

from .event import Event
from .plugin import Plugin

__all__ = ["ALL_EVENTS", "ALL_SOURCES", "ParsePlugin"]

ALL_EVENTS: Final = "all events"
"""``parse_event_types = ALL_EVENTS``: every event type the sources carry."""
ALL_SOURCES: Final = "all sources"
"""``parse_event_sources = ALL_SOURCES``: every event source, ``syscall`` included."""


class ParsePlugin(Plugin):
    """A plugin with the event parsing capability (and state table access)."""

    parse_event_types: ClassVar[Sequence[int] | Literal["all events"]]
    """Event type codes to parse (e.g. ``(322,)`` for plugin events), or :data:`ALL_EVENTS`."""
    parse_event_sources: ClassVar[Sequence[str] | Literal["all sources"] | None] = None
    """Event sources to parse, or :data:`ALL_SOURCES`; required unless the plugin is a source plugin
    (then its own source)."""

    def parse_event(self, event: Event) -> None:
        """Update the plugin's state from one event; raise to make the host's call fail."""
        raise NotImplementedError
