"""Async events: events a plugin pushes into the host's stream from any thread.

An :class:`AsyncPlugin` declares the names of its async events (and, if it
wants, the event sources they may join). The host hands it a handler when a
live capture starts and takes it back when it stops; the SDK turns that into
a session with a clear lifetime::

    class Ticker(AsyncPlugin, SourcePlugin):
        async_events = ("tick",)

        def start_async(self, session: AsyncSession) -> None:
            session.spawn(self.tick, session)  # a worker the SDK stops and joins

        def tick(self, session: AsyncSession) -> None:
            while not session.wait(1.0):  # True once the host wants it to stop
                session.emit("tick", b"...")

An async event reaches the host as an event of type 402 carrying the event
name and the payload; the same plugin's parser, and Falco's outputs, see it
like any other event. ``self.emit`` works from any thread at any time:
before the host set a handler, or after it took it back, the event is
counted (:meth:`AsyncPlugin.async_stats`) and dropped, and ``emit`` returns
``False``.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple, Protocol

from .errors import PluginError
from .metrics import SdkCounter
from .plugin import Plugin

__all__ = ["AsyncPlugin", "AsyncSession", "AsyncStats", "Emit", "block_sigpipe"]


def block_sigpipe() -> None:
    """Make the calling thread immune to SIGPIPE, leaving the process's disposition alone.

    Falco keeps SIGPIPE at its default action (end the process), and a plugin
    library must not change the host's dispositions. A write to a socket or
    pipe whose peer has gone raises SIGPIPE in the thread that wrote; with the
    signal blocked in that thread's mask the write fails with ``EPIPE``
    (``BrokenPipeError``) instead. Threads the SDK starts (async workers) call
    this first; call it at the start of any thread of your own that writes to
    sockets or pipes. A no-op where the platform has no thread signal masks.
    """
    if hasattr(signal, "pthread_sigmask") and hasattr(signal, "SIGPIPE"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})


class Emit(Protocol):
    """``emit(name, payload, *, ts=None, tid=None) -> bool``.

    Sends one async event; ``name`` must be one of the plugin's
    ``async_events``, ``payload`` any bytes-like object. ``ts`` (nanoseconds
    since the epoch) and ``tid`` default to "let the host fill it in".
    Returns ``True`` when the host took the event, ``False`` when it did not:
    dropped because no handler is set (or this session has stopped), or
    still refused by the host (a full queue) after
    :attr:`AsyncPlugin.async_emit_deadline` seconds of retries (counted as
    refused, and logged: the first refusal of each event name at warning).
    Raises ``ValueError`` for an undeclared name, ``TypeError`` for a payload
    that is not bytes-like. Thread-safe; the GIL is released while the host
    handles it.
    """

    def __call__(self, name: str, payload: Any = b"", *, ts: int | None = None, tid: int | None = None) -> bool: ...


class AsyncStats(NamedTuple):
    """What happened to the async events of one plugin state so far."""

    delivered: int
    """Taken by the host's handler."""
    dropped: int
    """Emitted while no handler was set, or from a session that had stopped."""
    refused: int
    """Handed to the host, which still refused it at the emit deadline (``emit`` returned ``False``)."""


class AsyncSession:
    """The time between the host setting a handler and taking it back.

    :meth:`AsyncPlugin.start_async` receives it. Workers started with
    :meth:`spawn` belong to it: when the session ends (the host clears its
    handler, or destroys the plugin) the SDK sets :attr:`stopping`, calls
    :meth:`AsyncPlugin.stop_async`, and joins them, for at most
    :attr:`AsyncPlugin.async_stop_timeout` seconds in all. Events a worker
    emits after that are dropped, even if a new session has started.
    """

    def __init__(self, emit: Emit, plugin: AsyncPlugin) -> None:
        self.emit: Emit = emit
        """This session's :class:`Emit`: it drops everything once the session has ended."""
        self.stopping = threading.Event()
        """Set when the session is ending; workers should return soon after."""
        self._plugin = plugin
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()  # spawn may race with the end of the session

    @property
    def stopped(self) -> bool:
        """Whether the session is ending (a worker's loop condition)."""
        return self.stopping.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking early when the session ends;
        ``True`` means "stop now"."""
        return self.stopping.wait(timeout)

    def spawn(self, target: Callable[..., object], *args: Any, name: str | None = None) -> threading.Thread:
        """Run ``target(*args)`` on a new daemon thread owned by this session.

        The thread blocks SIGPIPE (see :func:`block_sigpipe`): a write to a peer
        that has gone is a ``BrokenPipeError`` in the worker, never the host's end.

        An exception escaping ``target`` is logged (at error level, with its
        traceback at debug level) and ends only that worker.
        """
        label = name or getattr(target, "__name__", "worker")
        log = self._plugin.log

        def run() -> None:
            try:
                block_sigpipe()
                target(*args)
            except BaseException as exc:
                log.error("async worker %s failed: %s: %s", label, type(exc).__name__, exc)
                log.debug("async worker %s failed", label, exc_info=True)

        thread = threading.Thread(target=run, name=f"{self._plugin.name}-async-{label}", daemon=True)
        with self._lock:
            if self.stopping.is_set():
                raise PluginError("cannot start an async worker: the session has ended")
            self._workers.append(thread)
            thread.start()
        return thread

    def _end(self, timeout: float) -> None:
        """Signal, let the plugin unblock its workers, join them within ``timeout``.

        Raises what ``stop_async`` raised, after the joins.
        """
        with self._lock:
            self.stopping.set()
            workers = list(self._workers)
        error: BaseException | None = None
        try:
            self._plugin.stop_async(self)
        except BaseException as exc:  # noqa: BLE001 - reported once the workers are joined
            error = exc
        deadline = time.monotonic() + timeout
        me = threading.current_thread()
        late = []
        for thread in workers:
            if thread is me:  # the host cleared the handler from inside a worker
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                late.append(thread.name)
        if late:
            self._plugin.log.warning(
                "async workers still running %.1fs after the host stopped async events: %s; "
                "their events are dropped from now on",
                timeout,
                ", ".join(late),
            )
        if error is not None:
            raise error


class AsyncPlugin(Plugin):
    """A plugin that pushes async events into the host's event stream."""

    async_events: ClassVar[Sequence[str]] = ()
    """The names of the events the plugin emits (at least one). Each name is a
    contract on its payload's format; Falco shows it as ``evt.type``."""
    async_event_sources: ClassVar[Sequence[str] | None] = None
    """Event sources whose streams the events may join (``"syscall"`` included);
    ``None``, the default, means any. Exports ``plugin_get_async_event_sources``."""
    async_stop_timeout: ClassVar[float] = 5.0
    """How long, in seconds, the SDK waits for a session's workers when it ends."""
    # Reported with the plugin's metrics (Falco: <plugin>.sdk.async.*), read from the SDK's own counts.
    _sdk_async_delivered = SdkCounter("async.delivered", "Async events the host took", source=1)
    _sdk_async_dropped = SdkCounter("async.dropped", "Async events emitted while no handler was set", source=2)
    _sdk_async_refused = SdkCounter(
        "async.refused", "Async events the host still refused at the emit deadline (lost)", source=3
    )
    async_emit_rate: float | None = None
    """Pacing: at most this many events per second from this plugin state (a token bucket of
    :attr:`async_emit_burst` events), ``emit`` waiting (without the GIL) for its turn; ``None``, the
    default, does not pace. For hosts that drop what they cannot take without saying so (libsinsp's
    queue of 1000 events, shared by all plugins), and so that one plugin's burst does not crowd out
    another's events. Read when the host sets a handler: ``init`` may set it from the config."""
    async_emit_burst: int = 100
    """How many events may go at once before :attr:`async_emit_rate` applies."""
    async_emit_deadline: ClassVar[float] = 1.0
    """Back-pressure: how long, in seconds, ``emit`` keeps offering an event the host refuses (a full
    queue) before it gives up, counts it as refused and returns ``False``; the emitting thread waits
    meanwhile (without the GIL). ``0`` gives up at the first refusal."""

    def emit(self, name: str, payload: Any = b"", *, ts: int | None = None, tid: int | None = None) -> bool:
        """Send an async event now, from any thread (see :class:`Emit`).

        The SDK replaces this method on each plugin object it runs in a host;
        outside one (a unit test of the class) every event is dropped.
        """
        return False

    def start_async(self, session: AsyncSession) -> None:
        """The host set a handler: start producing (``session.spawn`` workers).

        Raising refuses the handler; workers already spawned are stopped.
        """

    def stop_async(self, session: AsyncSession) -> None:
        """The session is ending and ``session.stopping`` is set: unblock the
        workers (close their sockets, wake their queues). They are joined
        after this returns."""

    def dump_state(self, emit: Emit) -> None:
        """Emit, synchronously, the async events that recreate the plugin's
        state, so that a capture file Falco writes carries it.

        Override it to export ``plugin_dump_state``; ``emit`` only works
        while this method runs.
        """
        raise NotImplementedError

    def async_stats(self) -> AsyncStats:
        """Counts of this plugin state's async events (see :class:`AsyncStats`)."""
        return AsyncStats(0, 0, 0)
