"""Event sourcing: open a stream, hand out batches of payloads, close it.

A :class:`SourcePlugin` has a numeric ``id`` and an ``event_source`` name
(both registered in the plugin registry) and an :meth:`~SourcePlugin.open`
method returning a :class:`SourceInstance`. The host then calls
:meth:`SourceInstance.next_batch` in a loop on its own thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from ._internal.records import frozen_record
from .event import Event
from .plugin import Plugin

__all__ = ["SourcePlugin", "SourceInstance", "OpenParam", "Batch"]

Batch = Sequence[bytes | tuple[bytes, int]]
"""What ``next_batch`` returns: payloads, or ``(payload, timestamp_ns)`` pairs.

A payload without a timestamp gets the time its batch was returned (the real-time clock, in ns since
the epoch, read once per batch), as the host would stamp it, without a clock read per event.
"""


class SourceInstance:
    """One open stream of events (the result of one ``open()``)."""

    def next_batch(self) -> Batch:
        """Return the events that are ready now, as many as you have.

        Must not block for long: return an empty batch (or raise
        :class:`~falco_plugin.Timeout`) when nothing is ready and the host
        will ask again. Raise :class:`~falco_plugin.EndOfStream` when the
        stream is over. The SDK writes the event headers and keeps the memory
        valid until the next call.

        The host calls ``next_batch`` again only once it is done with the
        previous batch, so state saved at the start of a call (a checkpoint)
        covers every event handed out before it.
        """
        raise NotImplementedError

    def progress(self) -> float | tuple[float, str] | None:
        """Percentage of the stream read so far (0-100), optionally with a text.

        Override it when the stream has an end; the SDK exports
        ``plugin_get_progress`` only for instance classes that do.
        """
        return None

    def close(self) -> None:
        """Release what the instance holds (sockets, threads, files)."""


@frozen_record  # a frozen dataclass, without its start-up cost
class OpenParam:
    """A suggested value for the open parameters, listed by ``list_open_params``."""

    __match_args__ = ("value", "desc", "separator")
    value: str
    desc: str
    separator: str

    def __init__(self, value: str, desc: str = "", separator: str = "") -> None:
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "desc", desc)
        object.__setattr__(self, "separator", separator)


class SourcePlugin(Plugin):
    """A plugin that produces events of its own event source."""

    id: ClassVar[int]
    """The plugin id, unique among sourcing plugins (see the plugin registry)."""
    event_source: ClassVar[str]
    """Name of the event source; Falco rules select it with ``source:``."""

    def open(self, params: Any) -> SourceInstance:
        """Start a stream. Annotate ``params`` with a ``Config`` subclass to
        receive the open parameters parsed from JSON, or with ``str``."""
        raise NotImplementedError

    def open_params(self) -> Sequence[OpenParam]:
        """Suggested open parameters (override to export ``list_open_params``)."""
        return ()

    def event_to_string(self, event: Event) -> str:
        """A one-line text form of an event (override to export ``event_to_string``)."""
        return event.payload.decode("utf-8", "replace")
