"""Capture listening: be told when the capture opens and closes, and run
routines on the host's thread pool.

``capture_open`` and ``capture_close`` may read and write state tables (like
``parse_event``). Between them the plugin may hand the host routines: the
host's threads call a routine repeatedly until it returns ``False`` or is
unsubscribed. A routine gets no table access (the plugin API gives it no
vtables) and runs concurrently with the plugin's other calls::

    class Poller(CaptureListenPlugin):
        def capture_open(self) -> None:
            self.routine = self.routines.subscribe(self.poll)

        def poll(self) -> bool:
            ...
            return True  # call me again

        def capture_close(self) -> None:
            self.routines.unsubscribe(self.routine)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import PluginError
from .plugin import Plugin

__all__ = ["CaptureListenPlugin", "Routine", "Routines"]


class Routine:
    """A subscribed routine (what :meth:`Routines.unsubscribe` takes)."""

    __slots__ = ("fn", "handle", "active", "__weakref__")

    def __init__(self, fn: Callable[[], bool]) -> None:
        self.fn = fn
        self.handle = 0
        self.active = False

    def __repr__(self) -> str:
        return f"Routine({getattr(self.fn, '__qualname__', self.fn)!r}, active={self.active})"


class Routines:
    """The host's routine pool (``self.routines`` of a :class:`CaptureListenPlugin`)."""

    def __init__(self, impl: Any = None) -> None:
        self._impl = impl

    def subscribe(self, fn: Callable[[], bool]) -> Routine:
        """Have the host's threads call ``fn()`` until it returns ``False``
        (allowed from ``capture_open`` until ``capture_close`` returns)."""
        if self._impl is None:
            raise PluginError("routines: the plugin library has no capture listening support")
        return self._impl.subscribe(fn)  # type: ignore[no-any-return]

    def unsubscribe(self, routine: Routine) -> None:
        """Stop calling ``routine`` (it may still be running on a host thread)."""
        if self._impl is None:
            raise PluginError("routines: the plugin library has no capture listening support")
        self._impl.unsubscribe(routine)


class CaptureListenPlugin(Plugin):
    """A plugin told when the capture opens and closes (plugin API 3.9)."""

    routines: Routines

    def capture_open(self) -> None:
        """The capture is open (before the first event)."""

    def capture_close(self) -> None:
        """The capture is closing (after the last event)."""
