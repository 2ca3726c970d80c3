"""Test fixture for the replay check: one field from the event, one from the plugin's state.

Each event carries its number; ``fxt_replay.value`` reads it back from the
event and survives a capture. ``fxt_replay.produced`` is how many events this
plugin produced so far: right while the stream runs, but a fresh instance
replaying a capture produced none, so the replay check must find it. Nothing
in a capture can rebuild it, on purpose.
"""

from __future__ import annotations

from falco_plugin import Batch, EndOfStream, Event, ExtractPlugin, SourceInstance, SourcePlugin, field


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
        return [b"%d" % self.sent]


class ReplayStatePlugin(SourcePlugin, ExtractPlugin):
    name = "fxt_replay_state"
    version = "0.0.1"
    description = "Test fixture: a state-dependent field"
    contact = "sdk tests"
    id = 999_111
    event_source = "fxt_replay_state"

    def init(self, config: str) -> None:
        self.produced = 0

    def open(self, params: str) -> Counting:
        return Counting(self, int(params or "1000"))

    @field("fxt_replay.value", "The number the event carries")
    def value(self, event: Event) -> int:
        return int(event.payload)

    @field("fxt_replay.produced", "Events this plugin produced so far: its state, not the event's")
    def produced_so_far(self, event: Event) -> int:
        return self.produced
