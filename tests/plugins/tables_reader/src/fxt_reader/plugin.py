"""Reads and writes the table another plugin exported (``fxt_procs``),
through the host, and adds a column of its own to it."""

from __future__ import annotations

from falco_plugin import ALL_SOURCES, BOOL, INT64, STRING, UINT64, Entry, Event, ExtractPlugin, ParsePlugin, field


class ReaderPlugin(ParsePlugin, ExtractPlugin):
    name = "fxt_reader"
    version = "0.1.0"
    description = "Test fixture: uses another plugin's table"
    contact = "sdk tests"
    parse_event_types = (322,)
    parse_event_sources = ALL_SOURCES

    def init(self, config: str) -> None:
        self.procs = self.tables.get("fxt_procs", INT64)
        self.count = self.procs.field("count", UINT64)
        self.pname = self.procs.field("name", STRING)
        self.flag = self.procs.field("flag", BOOL)
        self.note = self.procs.add_field("reader.note", STRING)
        if config == "wrong_type":
            self.procs.field("count", STRING)

    def parse_event(self, event: Event) -> None:
        if event.payload == b"erase":
            self.procs.erase(event.tid)
            return
        if event.payload == b"clear":
            self.procs.clear()
            return
        e = self.procs.get(event.tid)
        if e is not None:
            e[self.note] = f"seen {e[self.count]}"
            e[self.flag] = True
        else:
            new = self.procs.create()
            new[self.pname] = "made by reader"
            self.procs.add(event.tid, new)

    @field("reader.count", "count of this thread's row in fxt_procs")
    def count_field(self, event: Event) -> int | None:
        e = self.procs.get(event.tid)
        return None if e is None else e[self.count]

    @field("reader.name", "name of this thread's row")
    def name_field(self, event: Event) -> str | None:
        e = self.procs.get(event.tid)
        return None if e is None else e[self.pname]

    @field("reader.note", "the column this plugin added")
    def note_field(self, event: Event) -> str | None:
        e = self.procs.get(event.tid)
        return None if e is None else e[self.note]

    @field("reader.flag", "flag of this thread's row")
    def flag_field(self, event: Event) -> bool | None:
        e = self.procs.get(event.tid)
        return None if e is None else e[self.flag]

    @field("reader.seven", "name and count of row 7 (the exporter makes it at init)")
    def seven_field(self, event: Event) -> str | None:
        e = self.procs.get(7)
        return None if e is None else f"{e[self.pname]}/{e[self.count]}"

    @field("reader.names", "the name of every row, by iterating the table")
    def names_field(self, event: Event) -> list[str]:
        names: list[str] = []

        def visit(entry: Entry) -> bool:
            names.append(entry[self.pname])
            return True

        self.procs.for_each(visit)
        return sorted(names)

    @field("reader.size", "rows in fxt_procs")
    def size_field(self, event: Event) -> int:
        return len(self.procs)
