"""Async events: ``get_async_events``, ``set_async_event_handler`` and the
optional ``get_async_event_sources`` and ``dump_state``.

The glue (``build/glue/async.c``) owns the handler: a gate that every emit goes
through, built in C (the 402 event is written and the host's handler called
with the GIL released), so that emitting is thread-safe, costs one C call,
and is dropped and counted when no handler is set. The session logic (start,
signal, join) is Python: :class:`AsyncState` below, called by the glue.
"""

from __future__ import annotations

import json
import re
from functools import partial
from typing import TYPE_CHECKING, Any

from ...asyncevents import AsyncPlugin, AsyncSession, AsyncStats, Emit
from ...errors import PluginError, SpecError
from ...plugin import Plugin
from ..names import SOURCE_RE
from . import ASYNC, CapabilitySpec, Implementation, c_string

if TYPE_CHECKING:
    from ..runtime import State as _StateBase
else:
    _StateBase = object

DUMP_STATE_MINOR = 10
"""Plugin API 3.10 added ``plugin_dump_state``; older hosts just never call it."""
NAME_MAX = 31
"""libsinsp copies each name into its event table (32 bytes with the NUL)."""
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class AsyncSpec(CapabilitySpec):
    capability = ASYNC

    def __init__(
        self,
        names: list[str],
        sources: list[str] | None,
        has_dump_state: bool,
        stop_timeout: float,
        emit_deadline: float = 1.0,
    ) -> None:
        self.names = names
        self.sources = sources
        self.has_dump_state = has_dump_state
        self.stop_timeout = stop_timeout
        self.emit_deadline = emit_deadline

    def symbols(self) -> list[str]:
        syms = list(ASYNC.required)
        if self.sources is not None:
            syms.append("get_async_event_sources")
        if self.has_dump_state:
            syms.append("dump_state")
        return syms

    def min_api_minor(self, optional: bool = True) -> int:
        return max(ASYNC.min_api_minor, DUMP_STATE_MINOR if optional and self.has_dump_state else 0)

    def c_defines(self) -> list[str]:
        d = [
            f"#define FP_ASYNC_EVENTS_JSON {c_string(json.dumps(self.names))}",
            f"#define FP_ASYNC_NAMES {', '.join(c_string(n) for n in self.names)}",
            f"#define FP_ASYNC_NNAMES {len(self.names)}u",
            f"#define FP_HAS_DUMP_STATE {int(self.has_dump_state)}",
            f"#define FP_ASYNC_EMIT_DEADLINE_NS {round(self.emit_deadline * 1e9)}ull",
        ]
        if self.sources is not None:
            d.append(f"#define FP_ASYNC_SOURCES_JSON {c_string(json.dumps(self.sources))}")
        return d

    def baked(self) -> Any:
        return [self.names, self.sources, self.has_dump_state, self.emit_deadline]


def _names(cls: type[AsyncPlugin], where: str) -> list[str]:
    declared = cls.async_events
    if isinstance(declared, str) or not isinstance(declared, (list, tuple)) or not declared:
        raise SpecError(f"{where}.async_events must be a non-empty tuple of event names, got {declared!r}")
    names = list(declared)
    for name in names:
        if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > NAME_MAX:
            raise SpecError(
                f"{where}.async_events: {name!r} is not a valid event name (letters, digits, '_', '.', '-', "
                f"at most {NAME_MAX} characters, not starting with a digit)"
            )
    if len(set(names)) != len(names):
        raise SpecError(f"{where}.async_events: duplicate names")
    return names


def _sources(cls: type[AsyncPlugin], where: str) -> list[str] | None:
    declared = cls.async_event_sources
    if declared is None:
        return None
    if isinstance(declared, str) or not isinstance(declared, (list, tuple)):
        raise SpecError(f"{where}.async_event_sources must be a tuple of event source names or None")
    for src in declared:
        if not isinstance(src, str) or not SOURCE_RE.match(src):
            raise SpecError(f"{where}.async_event_sources: {src!r} must match {SOURCE_RE.pattern}")
    return list(declared)


class AsyncImplementation(Implementation):
    capability = ASYNC
    base = AsyncPlugin

    def resolve(self, cls: type[Plugin], where: str) -> AsyncSpec:
        assert issubclass(cls, AsyncPlugin)
        timeout = cls.async_stop_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= 3600:
            raise SpecError(f"{where}.async_stop_timeout must be a number of seconds in [0, 3600], got {timeout!r}")
        deadline = cls.async_emit_deadline
        if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not 0 <= deadline <= 60:
            raise SpecError(f"{where}.async_emit_deadline must be a number of seconds in [0, 60], got {deadline!r}")
        return AsyncSpec(
            names=_names(cls, where),
            sources=_sources(cls, where),
            has_dump_state=getattr(cls, "dump_state", None) is not AsyncPlugin.dump_state,
            stop_timeout=float(timeout),
            emit_deadline=float(deadline),
        )

    def setup(self, state: Any, spec: CapabilitySpec) -> None:
        assert isinstance(spec, AsyncSpec)
        state.async_spec = spec
        state._async_session = None
        state._async_close = None
        state.async_refused = partial(_log_refusal, state.failures, spec.emit_deadline)


def _log_refusal(failures: Any, deadline: float, name: str, reason: str) -> None:
    """What the glue calls when the host still refused an event at the emit deadline (it is counted
    as refused there, and emit returns False). Bound to the state's FailureLog only: the emitters that
    call it belong to the plugin, which must not keep its state alive."""
    failures(
        f"async event {name}",
        f"emit: the host did not take async event '{name}' within {deadline:g} s ({reason}); it is dropped",
    )


class AsyncState(_StateBase):
    """What ``build/glue/async.c`` calls on a runtime state."""

    async_spec: AsyncSpec
    _async_session: AsyncSession | None
    _async_close: Any

    def async_attach(self, emit_any: Emit, close: Any, stats: Any) -> None:
        """The glue's builtins for this state: the any-time emit, closing the
        gate, and its counters."""
        plugin = self.plugin
        assert isinstance(plugin, AsyncPlugin)
        self._async_close = close
        # Instance attributes shadow the class's placeholders: a direct C call.
        plugin.emit = emit_any  # type: ignore[method-assign]
        plugin.async_stats = lambda: AsyncStats(*stats())  # type: ignore[method-assign]

    def async_start(self, emit: Emit) -> None:
        """The host set a handler; ``emit`` is bound to this new session."""
        plugin = self.plugin
        assert isinstance(plugin, AsyncPlugin)
        session = AsyncSession(emit, plugin)
        self._async_session = session
        try:
            plugin.start_async(session)
        except BaseException:
            try:
                self.async_stop()
            except BaseException as exc:  # noqa: BLE001 - the start failure is the one to report
                self.log.debug("stopping the refused async session failed too: %s", exc)
            raise

    def async_pacing(self) -> tuple[float, float]:
        """(events per second, burst) for the session the host is starting; (0, 0): unpaced. Read
        from the plugin object, so that its ``init`` may set them from its config."""
        plugin = self.plugin
        assert isinstance(plugin, AsyncPlugin)
        rate, burst = plugin.async_emit_rate, plugin.async_emit_burst
        if rate is None:
            return (0.0, 0.0)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise PluginError(f"async_emit_rate must be a positive number of events per second or None, not {rate!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise PluginError(f"async_emit_burst must be a whole number of events >= 1, not {burst!r}")
        return (float(rate), float(burst))

    def async_stop(self) -> None:
        """End the session (if any) and close the gate: after this returns no
        event reaches the host's current handler."""
        session, self._async_session = self._async_session, None
        try:
            if session is not None:
                session._end(self.async_spec.stop_timeout)
        finally:
            if self._async_close is not None:
                self._async_close()

    def dump_state(self, emit: Emit) -> None:
        plugin = self.plugin
        assert isinstance(plugin, AsyncPlugin)
        plugin.dump_state(emit)

    def destroy(self) -> None:
        # The workers go before the plugin's own destroy releases what they use.
        try:
            self.async_stop()
        except BaseException as exc:  # noqa: BLE001 - destroy goes on; the log says why
            self.log.warning("destroy: stopping async events failed: %s: %s", type(exc).__name__, exc)
        super().destroy()


AsyncImplementation.state_mixin = AsyncState
ASYNC_IMPL = AsyncImplementation()
