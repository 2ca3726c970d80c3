"""The null pair, in Python: ``bench/reference/null.c`` is the same plugin in C.

It does no work of its own, so that what Falco spends on it beyond the C
twin is the SDK's: ``next_batch`` returns one ready-made list of 128
one-byte payloads (a shorter slice at the end of the stream), and the field
``null.one`` returns the constant 1.
"""

from __future__ import annotations

from falco_plugin import Batch, Config, EndOfStream, Event, ExtractPlugin, SourceInstance, SourcePlugin, field, setting

BATCH_SIZE = 128
BATCH = [b"x"] * BATCH_SIZE


class NullOpenParams(Config):
    """How many events the stream has."""

    max_events: int = setting("Events to produce before the end of the stream", default=20, key="maxEvents", minimum=0)


class NullInstance(SourceInstance):
    def __init__(self, remaining: int) -> None:
        self.remaining = remaining

    def next_batch(self) -> Batch:
        remaining = self.remaining
        if remaining >= BATCH_SIZE:
            self.remaining = remaining - BATCH_SIZE
            return BATCH
        if remaining == 0:
            raise EndOfStream
        self.remaining = 0
        return BATCH[:remaining]


class NullPlugin(SourcePlugin, ExtractPlugin):
    """A plugin that does no work of its own."""

    name = "null_py"
    version = "0.1.0"
    description = "A plugin that does no work of its own, in Python: the SDK's cost against null_c"
    contact = "falco-plugin-sdk bench"
    id = 999
    event_source = "null"

    def open(self, params: NullOpenParams) -> NullInstance:
        return NullInstance(params.max_events)

    @field("null.one", "Always 1")
    def one(self, event: Event) -> int:
        return 1
