"""Test fixture for the replay check: a field from the event, one from state a capture rebuilds, one it cannot.

Each event carries its number; ``fxt_replay.value`` reads it back from the
event and survives a capture. Events 1, 5, 9, ... also emit an async
``fxt_label`` event; the plugin parses its own labels into its state, and
``dump_state`` writes the current one at the start of a capture, so
``fxt_replay.label`` survives too (the guide's way for state). But
``fxt_replay.produced`` is how many events this plugin produced so far: right
while the stream runs, while a fresh instance replaying a capture produced
none, so the replay check must find it. Nothing in a capture can rebuild it,
on purpose.
"""

from __future__ import annotations

from falco_plugin import (
    ALL_SOURCES,
    ASYNC_EVENT,
    AsyncPlugin,
    Batch,
    Emit,
    EndOfStream,
    Event,
    ExtractPlugin,
    ParsePlugin,
    SourceInstance,
    SourcePlugin,
    field,
)

LABEL = "fxt_label"


class Counting(SourceInstance):
    def __init__(self, plugin: ReplayStatePlugin, total: int) -> None:
        self.plugin = plugin
        self.sent = 0
        self.total = total

    def next_batch(self) -> Batch:
        if self.sent >= self.total:
            raise EndOfStream
        self.sent += 1
        self.plugin.produced += 1
        if self.sent % 4 == 1:
            self.plugin.emit(LABEL, b"label-%d" % self.sent)
        return [b"%d" % self.sent]


class ReplayStatePlugin(SourcePlugin, ExtractPlugin, ParsePlugin, AsyncPlugin):
    name = "fxt_replay_state"
    version = "0.0.1"
    description = "Test fixture: state-dependent fields"
    contact = "sdk tests"
    id = 999_111
    event_source = "fxt_replay_state"
    async_events = (LABEL,)
    parse_event_types = (ASYNC_EVENT,)
    parse_event_sources = ALL_SOURCES

    def init(self, config: str) -> None:
        self.produced = 0
        self.label = ""

    def open(self, params: str) -> Counting:
        return Counting(self, int(params or "1000"))

    def parse_event(self, event: Event) -> None:
        if event.async_name == LABEL:
            self.label = event.payload.decode()

    def dump_state(self, emit: Emit) -> None:
        if self.label:
            emit(LABEL, self.label.encode())

    @field("fxt_replay.value", "The number the event carries")
    def value(self, event: Event) -> int:
        return int(event.payload)

    @field("fxt_replay.label", "The latest label the plugin emitted: state its own async events rebuild")
    def latest_label(self, event: Event) -> str | None:
        return self.label or None

    @field("fxt_replay.produced", "Events this plugin produced so far: its state, not the event's")
    def produced_so_far(self, event: Event) -> int:
        return self.produced
