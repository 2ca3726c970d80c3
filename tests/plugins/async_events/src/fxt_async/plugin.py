"""Async events on demand: workers that emit, a state dump, failures.

Each of ``workers`` workers emits ``count`` ``sample`` events (``0``: until the
session ends), ``interval`` seconds apart, with payload ``w<worker> <i>``.
``stamp`` makes workers set ``ts`` and ``tid`` (see ``work``).
``stubborn`` adds a worker that ignores the end of its session for two
seconds (longer than ``async_stop_timeout``) and then tries to emit.
``dump`` is how many ``state`` events ``dump_state`` emits before a last one
carrying ``stats <delivered> <dropped> <refused> <late>`` (``late``: what the
stubborn workers' emits returned). ``init`` emits one event,
which no handler can take yet (it counts as dropped). ``fail`` names the
hooks that raise (``start_async``, ``stop_async``, ``dump_state``), or
``bad_name`` to emit an undeclared event name from ``start_async``. The
``emitted`` metric counts the events the host took.

``sink`` (``host:port``) adds a worker that connects there and sends until the
session ends, reconnecting whenever the peer has gone: each write that meets a
closed peer (``EPIPE``, which also raises SIGPIPE) emits ``sample`` ``epipe``;
``stop_async`` shuts the socket down under the worker, mid-``sendall``.
"""

from __future__ import annotations

import socket
import threading
import time

from falco_plugin import (
    AsyncPlugin,
    AsyncSession,
    Batch,
    Config,
    Counter,
    Emit,
    EndOfStream,
    SourceInstance,
    SourcePlugin,
    Timeout,
    setting,
)


class AsyncConfig(Config):
    """How the async workers behave."""

    workers: int = setting("Worker threads per session", default=1, minimum=0)
    count: int = setting("Events per worker (0: until stopped)", default=0, minimum=0)
    interval: float = setting("Seconds between a worker's events", default=0.0, minimum=0)
    stubborn: bool = setting("Add a worker that ignores the stop signal", default=False)
    dump: int = setting("Events dump_state emits", default=2, minimum=0)
    fail: list[str] = setting("Hooks that raise", default=[])
    sink: str = setting("host:port a worker writes to until stopped", default="")
    stamp: bool = setting("Workers set each event's ts and tid themselves", default=False)
    rate: float = setting("async_emit_rate (0: unpaced)", default=0, minimum=0)
    burst: int = setting("async_emit_burst", default=100, minimum=1)


class Idle(SourceInstance):
    """No events of its own; with open params ``eof:<seconds>`` the stream ends after that long."""

    def __init__(self, params: str) -> None:
        self.end = time.monotonic() + float(params[4:]) if params.startswith("eof:") else None

    def next_batch(self) -> Batch:
        if self.end is not None and time.monotonic() >= self.end:
            raise EndOfStream
        time.sleep(0.01)
        raise Timeout


class AsyncFixture(AsyncPlugin, SourcePlugin):
    name = "fxt_async"
    version = "0.0.1"
    description = "Test fixture: async events"
    contact = "sdk tests"
    id = 999_110
    event_source = "fxt_async"
    async_events = ("sample", "state")
    async_stop_timeout = 1.0
    async_emit_deadline = 0.2
    emitted = Counter("emitted", "Async events the host took")

    def init(self, config: AsyncConfig) -> None:
        self.config = config
        self.async_emit_rate = config.rate or None
        self.async_emit_burst = config.burst
        self.sessions = 0
        self.late: list[bool] = []
        """What each stubborn worker's emit returned after its session ended."""
        self.early = self.emit("sample", b"too early")
        self.sock: socket.socket | None = None
        self.sock_lock = threading.Lock()

    def set_config(self, config: AsyncConfig) -> None:
        self.config = config

    def open(self, params: str) -> Idle:
        return Idle(params)

    def start_async(self, session: AsyncSession) -> None:
        if "start_async" in self.config.fail:
            raise RuntimeError("injected failure in start_async")
        if "bad_name" in self.config.fail:
            session.emit("nope", b"")
        self.sessions += 1
        for k in range(self.config.workers):
            session.spawn(self.work, session, k, name=f"w{k}")
        if self.config.stubborn:
            session.spawn(self.stubborn, session, name="stubborn")
        if self.config.sink:
            session.spawn(self.pour, session, name="sink")

    def pour(self, session: AsyncSession) -> None:
        host, _, port = self.config.sink.rpartition(":")
        chunk = b"x" * 65536
        while not session.stopped:
            try:
                sock = socket.create_connection((host, int(port)), timeout=5)
            except OSError:
                session.wait(0.01)
                continue
            with self.sock_lock:
                self.sock = sock
            try:
                while True:
                    sock.sendall(chunk)
            except BrokenPipeError:
                session.emit("sample", b"epipe")
            except OSError:
                pass
            finally:
                with self.sock_lock:
                    self.sock = None
                sock.close()

    def work(self, session: AsyncSession, worker: int) -> None:
        i = 0
        while not session.stopped and (self.config.count == 0 or i < self.config.count):
            # Stamped: ts and tid each differ per event and from each other; the even events set only one.
            stamps = {"ts": 1_700_000_000_000_000_000 + i, "tid": 4_000 + 10 * worker + i} if self.config.stamp else {}
            if stamps and i % 2:
                stamps.pop("tid" if i % 4 == 1 else "ts")
            if session.emit("sample", f"w{worker} {i}".encode(), **stamps):
                self.emitted.inc()
            i += 1
            if self.config.interval and session.wait(self.config.interval):
                break

    def stubborn(self, session: AsyncSession) -> None:
        session.stopping.wait()
        time.sleep(2.0)
        self.late.append(session.emit("sample", b"late"))

    def stop_async(self, session: AsyncSession) -> None:
        with self.sock_lock:
            if self.sock is not None:
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)  # the worker's next write meets EPIPE
                except OSError:
                    pass  # the peer reset it already
        if "stop_async" in self.config.fail:
            raise RuntimeError("injected failure in stop_async")

    def dump_state(self, emit: Emit) -> None:
        if "dump_state" in self.config.fail:
            raise RuntimeError("injected failure in dump_state")
        for i in range(self.config.dump):
            emit("state", f"state {i} of {self.sessions}".encode(), ts=1_000 + i)
        stats = self.async_stats()
        emit("state", f"stats {stats.delivered} {stats.dropped} {stats.refused} {self.late}".encode(), tid=7)
