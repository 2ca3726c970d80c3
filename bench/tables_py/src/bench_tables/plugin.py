"""The state table benchmark, in Python: ``bench/reference/tables.c`` is the same plugin in C.

parse_event reads one field of the event's thread in the host's ``threads``
table and writes one (a counter column of its own); the ``bench.count``
field reads that column back during extraction.
"""

from __future__ import annotations

from falco_plugin import INT64, UINT64, Event, ExtractPlugin, ParsePlugin, field


class BenchTables(ParsePlugin, ExtractPlugin):
    name = "bench_tables"
    version = "0.1.0"
    description = "State table benchmark"
    contact = "sdk bench"
    parse_event_types = (3,)
    parse_event_sources = ("syscall",)
    extract_event_sources = ("syscall",)

    def init(self, config: str) -> None:
        self.threads = self.tables.get("threads", INT64)
        self.count = self.threads.add_field("bench.count", UINT64)

    def parse_event(self, event: Event) -> None:
        entry = self.threads.get(event.tid)
        if entry is not None:
            entry[self.count] += 1

    @field("bench.count", "Events parsed for this thread")
    def count_field(self, event: Event) -> int:
        entry = self.threads.get(event.tid)
        return 0 if entry is None else entry[self.count]
