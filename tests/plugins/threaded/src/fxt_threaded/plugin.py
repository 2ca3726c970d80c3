"""Leaves Python threads running: one started in init, one in open.

The threads never stop on their own (``close``/``destroy`` do not join them),
so the host unloads the library and exits while Python code is still running
on another thread. ``busy`` makes them spin on the GIL instead of sleeping.
``crash`` also runs, during init, a thread that dies of an exception;
``warn`` issues a Python warning during init; ``log_after_destroy`` leaves a
thread that logs through ``self.log`` once ``destroy`` has returned.
"""

from __future__ import annotations

import threading
import time
import warnings

from falco_plugin import Batch, Config, EndOfStream, SourceInstance, SourcePlugin, setting


class ThreadedConfig(Config):
    """How the background threads behave."""

    daemon: bool = setting("Start daemon threads", default=True)
    busy: bool = setting("Spin instead of sleeping", default=False)
    crash: bool = setting("Run a thread that raises during init", default=False)
    warn: bool = setting("Issue a warning during init", default=False)
    log_after_destroy: bool = setting("Leave a thread that logs once destroy has returned", default=False)


def _crash() -> None:
    raise RuntimeError("background thread failed")


def _work(busy: bool, ticks: list[int]) -> None:
    while True:
        ticks[0] += sum(range(200))
        if not busy:
            time.sleep(0.001)


class ThreadedInstance(SourceInstance):
    def __init__(self, ticks: list[int]) -> None:
        self.ticks = ticks
        self.sent = 0

    def next_batch(self) -> Batch:
        if self.sent >= 5:
            raise EndOfStream
        self.sent += 1
        return [f"tick {self.sent}".encode()]


class ThreadedPlugin(SourcePlugin):
    name = "fxt_threaded"
    version = "0.0.4"
    description = "Test fixture: background threads"
    contact = "sdk tests"
    id = 999_104
    event_source = "fxt_threaded"

    def _start(self, what: str) -> None:
        thread = threading.Thread(
            target=_work, args=(self.config.busy, self.ticks), name=f"fxt-{what}", daemon=self.config.daemon
        )
        thread.start()

    def init(self, config: ThreadedConfig) -> None:
        self.config = config
        self.ticks = [0]
        self._start("init")
        if config.crash:
            doomed = threading.Thread(target=_crash, name="fxt-crash")
            doomed.start()
            doomed.join()
        if config.warn:
            warnings.warn("this option is deprecated", UserWarning, stacklevel=1)

    def destroy(self) -> None:
        if self.config.log_after_destroy:
            late = threading.Timer(0.05, self.log.warning, args=("late message from a plugin thread",))
            late.start()

    def open(self, params: str) -> ThreadedInstance:
        self._start("open")
        return ThreadedInstance(self.ticks)
