"""Parse + tables: counts the events of each thread in a column of its own
in the host's ``threads`` table, and extracts fields that read it back.

``misuse`` (init config) makes the plugin do one wrong thing on purpose, so
that tests see the SDK's error for it. ``widths:lo|hi|under|over`` adds a
column of each integer width and writes each its lowest or highest value (or
one past it) at every event; ``fxt.widths`` says what each column then holds,
or that the write was refused.
"""

from __future__ import annotations

from typing import Any, cast

from falco_plugin import (
    ALL_EVENTS,
    BOOL,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    Config,
    Entry,
    Event,
    ExtractPlugin,
    ParsePlugin,
    TableError,
    field,
    setting,
)

WIDTHS = {
    "int8": (INT8, -(2**7), 2**7 - 1),
    "int16": (INT16, -(2**15), 2**15 - 1),
    "int32": (INT32, -(2**31), 2**31 - 1),
    "int64": (INT64, -(2**63), 2**63 - 1),
    "uint8": (UINT8, 0, 2**8 - 1),
    "uint16": (UINT16, 0, 2**16 - 1),
    "uint32": (UINT32, 0, 2**32 - 1),
    "uint64": (UINT64, 0, 2**64 - 1),
}


class TablesConfig(Config):
    misuse: str = setting("Which mistake to make (tests)", default="")


class TablesPlugin(ParsePlugin, ExtractPlugin):
    name = "fxt_tables"
    version = "0.1.0"
    description = "Test fixture: parsing with state tables"
    contact = "sdk tests"
    parse_event_types = ALL_EVENTS
    parse_event_sources = ("syscall",)
    extract_event_sources = ("syscall",)

    def init(self, config: TablesConfig) -> None:
        self.misuse = m = config.misuse
        self.table_names = [name for name, _ in self.tables.list()]
        if m == "unknown_table":
            self.tables.get("no_such_table", INT64)
        if m == "wrong_key":
            self.tables.get("threads", STRING)
        self.threads = self.tables.get("threads", INT64)
        if m == "unknown_field":
            self.threads.field("no_such_field", STRING)
        if m == "wrong_type":
            self.threads.field("comm", INT64)
        if m == "int_no_width":
            self.threads.field("pid", int)  # integers need a width: an error at init
        if m == "add_conflict":
            self.threads.add_field("comm", UINT64)
        self.comm = self.threads.field("comm", str)
        self.pid = self.threads.field("pid", INT64)
        self.cwd = self.threads.field("cwd", STRING)
        self.count = self.threads.add_field("fxt.count", UINT64)
        self.tag = self.threads.add_field("fxt.tag", STRING)
        self.flag = self.threads.add_field("fxt.flag", BOOL)
        self.fds = self.threads.subtable("file_descriptors", INT64)
        self.fd_name = self.fds.field("name", STRING)
        self.fd_seen = self.fds.add_field("fxt.seen", BOOL)
        self.args = self.threads.subtable("args", UINT64)
        self.arg_value = self.args.field("value", STRING)
        self.kept: Entry | None = None
        self.widths_seen = ""
        if m.startswith("widths:"):
            self.width_fields = {t: self.threads.add_field(f"fxt.w.{t}", st) for t, (st, _, _) in WIDTHS.items()}

    # -- parsing ---------------------------------------------------------------

    def parse_event(self, event: Event) -> None:
        m = self.misuse
        if m == "field_outside_init":
            self.threads.field("comm", STRING)
        if m == "missing_entry":
            self.threads[999_999]
        if m == "use_kept" and self.kept is not None:
            self.kept[self.count]
        entry = self.threads.get(event.tid)
        if entry is None:
            return
        if m == "keep_entry" or m == "use_kept":
            self.kept = entry
        if m == "write_readonly":
            entry[self.cwd] = "/"
        if m == "bad_value":
            entry[self.count] = cast(Any, "many")  # a str in a uint64 field
        if m == "overflow":
            entry[self.count] = -1
        if m.startswith("widths:"):
            self.write_widths(entry, m.partition(":")[2])
        if m == "foreign_read":
            entry[self.fd_name]  # an accessor of the file_descriptors subtable on a threads entry
        if m == "foreign_write":
            entry[self.fd_name] = "x"
        if m == "released":
            entry.release()
            entry[self.count]
        entry[self.count] = entry[self.count] + 1
        entry[self.tag] = f"{entry[self.comm]}#{entry[self.count]}"
        entry[self.flag] = True
        fds = entry[self.fds]
        fd = fds.get(3)
        if fd is not None:
            with fd:  # released here rather than when parse_event returns
                fd[self.fd_seen] = True
        if m == "fd_add":
            new = fds.create()
            new[self.fd_name] = f"made by {self.name}"
            fds.add(100 + entry[self.count], new)
        if m == "fd_add_twice":
            fd = fds.get(3)
            if fd is not None:
                fds.add(4, fd)  # not made by create(): an error
        if m == "fd_erase":
            fds.erase(3)
        if m == "erase_in_for_each":
            fds.for_each(lambda fd: fds.erase(3) is None)
        if m == "raise_in_for_each":

            def fail(fd: Entry) -> bool:
                raise ValueError("the callback gives up")

            fds.for_each(fail)

    def write_widths(self, entry: Entry, which: str) -> None:
        seen = []
        for t, (_, lo, hi) in WIDTHS.items():
            value = {"lo": lo, "hi": hi, "under": lo - 1, "over": hi + 1}[which]
            try:
                entry[self.width_fields[t]] = value
                seen.append(f"{t}={entry[self.width_fields[t]]}")
            except TableError:
                seen.append(f"{t}:refused")
        self.widths_seen = " ".join(seen)

    # -- extraction ------------------------------------------------------------

    def thread(self, event: Event) -> Entry | None:
        if self.misuse == "write_in_extract":
            e = self.threads.get(event.tid)
            if e is not None:
                e[self.count] = 0
        return self.threads.get(event.tid)

    @field("fxt.count", "Events of this thread seen by the parser")
    def count_field(self, event: Event) -> int | None:
        e = self.thread(event)
        return None if e is None else e[self.count]

    @field("fxt.tag", "comm#count, written by the parser")
    def tag_field(self, event: Event) -> str | None:
        e = self.thread(event)
        return None if e is None else e[self.tag]

    @field("fxt.comm", "The thread's comm, read from the threads table")
    def comm_field(self, event: Event) -> str | None:
        e = self.thread(event)
        return None if e is None else e[self.comm]

    @field("fxt.fdnames", "Names of the thread's file descriptors")
    def fdnames(self, event: Event) -> list[str]:
        e = self.thread(event)
        if e is None:
            return []
        names: list[str] = []

        def collect(fd: Entry) -> bool:
            names.append(fd[self.fd_name])
            return True

        e[self.fds].for_each(collect)
        return names

    @field("fxt.args", "The thread's arguments")
    def args_field(self, event: Event) -> list[str]:
        e = self.thread(event)
        if e is None:
            return []
        table = e[self.args]
        out: list[str] = []
        for i in range(len(table)):
            a = table.get(i)
            if a is not None:
                out.append(a[self.arg_value])
        return out

    @field("fxt.widths", "What the integer columns hold after the last write (misuse widths:...)")
    def widths_field(self, event: Event) -> str:
        return self.widths_seen

    @field("fxt.tables", "The tables the host listed at init")
    def tables_field(self, event: Event) -> str:
        return ",".join(self.table_names)
