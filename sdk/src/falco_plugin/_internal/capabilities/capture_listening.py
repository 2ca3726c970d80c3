"""Capture listening: ``capture_open``/``capture_close`` and the routine pool.

The glue (``build/glue/capture_listening.c``) calls :meth:`CaptureListeningState.capture_open`
and ``capture_close`` inside a table context, and implements the routine
trampoline the host's threads call; :class:`RoutinePool` keeps the
subscribed routines alive until they end.
"""

from __future__ import annotations

import threading
from typing import Any

from ...capture import CaptureListenPlugin, Routine, Routines
from ...errors import PluginError
from ...plugin import Plugin
from . import CAPTURE_LISTENING, CapabilitySpec, Implementation


class CaptureListeningSpec(CapabilitySpec):
    capability = CAPTURE_LISTENING

    def c_defines(self) -> list[str]:
        return ["#define FP_HAS_TABLES 1"]

    def baked(self) -> Any:
        return True


class RoutinePool:
    """One state's routines; ``glue`` is the C module of capture_listening.c."""

    def __init__(self, glue: Any, state_addr: int, plugin_name: str) -> None:
        self._g = glue
        self._addr = state_addr
        self._name = plugin_name
        self._lock = threading.Lock()
        self.live: dict[int, Routine] = {}

    def subscribe(self, fn: Any) -> Routine:
        if not callable(fn):
            raise PluginError(f"routines.subscribe: {fn!r} is not callable")
        routine = Routine(fn)
        with self._lock:
            try:
                routine.handle = self._g.subscribe(self._addr, routine)
            except RuntimeError as exc:  # outside capture_open..capture_close, or no pool in the host
                raise PluginError(str(exc)) from None
            routine.active = True
            self.live[routine.handle] = routine
        return routine

    def unsubscribe(self, routine: Routine) -> None:
        with self._lock:
            if not routine.active or self.live.get(routine.handle) is not routine:
                raise PluginError(f"routines.unsubscribe: {routine!r} is not subscribed")
            try:
                self._g.unsubscribe(self._addr, routine.handle)
            except RuntimeError as exc:
                raise PluginError(str(exc)) from None
            routine.active = False

    def ended(self, routine: Routine) -> None:
        """The routine returned False or raised: the host calls it no more."""
        routine.active = False


class CaptureListeningImplementation(Implementation):
    capability = CAPTURE_LISTENING
    base = CaptureListenPlugin

    def resolve(self, cls: type[Plugin], where: str) -> CaptureListeningSpec:
        return CaptureListeningSpec()


class CaptureListeningState:
    """What ``build/glue/capture_listening.c`` calls on a runtime state."""

    plugin: Plugin
    routine_pool: RoutinePool

    def attach_routines(self, glue: Any, state_addr: int) -> None:
        self.routine_pool = RoutinePool(glue, state_addr, type(self.plugin).__name__)
        plugin = self.plugin
        assert isinstance(plugin, CaptureListenPlugin)
        plugin.routines = Routines(self.routine_pool)

    def capture_open(self) -> None:
        plugin = self.plugin
        assert isinstance(plugin, CaptureListenPlugin)
        plugin.capture_open()

    def capture_close(self) -> None:
        plugin = self.plugin
        assert isinstance(plugin, CaptureListenPlugin)
        plugin.capture_close()

    def run_routine(self, routine: Routine) -> bool:
        """One call of a routine on a host thread; False ends it."""
        try:
            again = bool(routine.fn())
        except Exception as exc:  # noqa: BLE001 - a host thread has nobody to raise to: log it and stop
            self.log.error("routine %r failed, it will not be called again: %s", routine, exc)  # type: ignore[attr-defined]
            again = False
        if not again:
            self.routine_pool.ended(routine)
        return again


CaptureListeningImplementation.state_mixin = CaptureListeningState
CAPTURE_LISTENING_IMPL = CaptureListeningImplementation()
