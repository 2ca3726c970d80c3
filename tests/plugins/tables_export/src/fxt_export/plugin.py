"""Exports a table of its own (``fxt_procs``: int64 key, typed columns) that
it fills while parsing plugin events, and listens to the capture: a routine
on the host's pool counts its calls into row 0."""

from __future__ import annotations

import threading
from typing import Annotated

from falco_plugin import (
    ALL_SOURCES,
    INT64,
    UINT64,
    CaptureListenPlugin,
    Event,
    ParsePlugin,
    PluginError,
    PluginTable,
    Routine,
    Row,
)


class Proc(Row):
    count: Annotated[int, UINT64] = 0
    name: str = ""
    flag: bool = False


class ExportPlugin(ParsePlugin, CaptureListenPlugin):
    name = "fxt_export"
    version = "0.1.0"
    description = "Test fixture: exports a table and runs a routine"
    contact = "sdk tests"
    parse_event_types = (322,)
    parse_event_sources = ALL_SOURCES

    def init(self, config: str) -> None:
        self.procs: PluginTable[int, Proc] = self.tables.export("fxt_procs", INT64, Proc)
        self.procs[7] = Proc(count=1, name="seven")
        self.ticks = 0
        self.lock = threading.Lock()
        self.routine: Routine | None = None
        self.mode = config

    def parse_event(self, event: Event) -> None:
        if self.mode == "subscribe_in_parse":
            self.routines.subscribe(self.tick)
        row = self.procs.setdefault(event.tid)
        row.count += 1
        row.name = event.payload.decode() or row.name
        if self.mode == "bad_row":
            row.count = -5  # the host's read of it fails: the column is uint64

    def capture_open(self) -> None:
        if self.mode == "open_fails":
            raise RuntimeError("capture_open refused")
        try:
            self.routine = self.routines.subscribe(self.tick)
        except PluginError as exc:
            if self.mode == "strict_routine":
                raise
            # Falco replaying a capture has no thread pool: carry on without the routine.
            self.log.warning("no routine: %s", exc)

    def tick(self) -> bool:
        with self.lock:
            self.ticks += 1
            if self.mode == "routine_tables":
                self.tables.list()  # no table context on a routine thread: TableError, logged
            return self.ticks < 1_000_000

    def capture_close(self) -> None:
        if self.mode == "close_fails":
            raise PluginError("not closing today")
        if self.routine is not None and self.routine.active:
            self.routines.unsubscribe(self.routine)
        with self.lock:
            self.procs.setdefault(0).count = self.ticks
