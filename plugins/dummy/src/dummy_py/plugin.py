"""A source of growing sample values, with fields to match them.

The Python twin of the upstream ``dummy`` plugin: each event carries a sample
that grows by 1 plus a random jitter; the payload is the sample in decimal.
It shows every piece of a source + extraction plugin in one page.

Both hot paths run Python once per event inside Falco, so they are written
with that in mind: ``next_batch`` draws random bits rather than a float it
then converts, and the fields parse the short payload again rather than cache
it with ``@per_event``, which pays for decoding that costs more than a call
(JSON, as in http_poll).
"""

from __future__ import annotations

import json
import random

from falco_plugin import (
    Batch,
    Config,
    EndOfStream,
    Event,
    ExtractPlugin,
    OpenParam,
    PluginError,
    SourceInstance,
    SourcePlugin,
    field,
    setting,
)

BATCH_SIZE = 128


class DummyConfig(Config):
    """Init configuration of dummy_py."""

    jitter: int = setting("A random amount (0 to jitter) added to the sample of each event", default=10, minimum=0)


class DummyOpenParams(Config):
    """Open parameters: where the samples start and how many to produce."""

    start: int = setting("The first sample value", default=1, minimum=0)
    max_events: int = setting(
        "How many events to produce before the end of the stream", default=20, key="maxEvents", minimum=0
    )


class DummyInstance(SourceInstance):
    """One stream of ``max_events`` samples."""

    def __init__(self, params: DummyOpenParams, jitter: int) -> None:
        self.sample = params.start
        self.remaining = params.max_events
        self.total = params.max_events
        self.spread = jitter + 1

    def next_batch(self) -> Batch:
        if self.remaining <= 0:
            raise EndOfStream
        count = min(self.remaining, BATCH_SIZE)
        self.remaining -= count
        sample, spread, bits = self.sample, self.spread, random.getrandbits
        payloads = []
        for _ in range(count):
            sample += 1 + bits(31) % spread  # 0..jitter, as the C dummy's random() % (jitter + 1)
            payloads.append(b"%d" % sample)
        self.sample = sample
        return payloads

    def progress(self) -> float:
        return 100.0 if self.total == 0 else 100.0 * (self.total - self.remaining) / self.total


class DummyPlugin(SourcePlugin, ExtractPlugin):
    """Reference plugin for educational purposes."""

    name = "dummy_py"
    version = "0.1.0"
    description = "Reference plugin for educational purposes, written in Python"
    contact = "github.com/falcosecurity/plugins"
    id = 29
    event_source = "dummy_py"

    def init(self, config: DummyConfig) -> None:
        self.jitter = config.jitter

    def open(self, params: DummyOpenParams) -> DummyInstance:
        return DummyInstance(params, self.jitter)

    def open_params(self) -> list[OpenParam]:
        return [OpenParam('{"start": 1, "maxEvents": 20}', "20 samples starting after 1")]

    def event_to_string(self, event: Event) -> str:
        return json.dumps({"sample": event.payload.decode()})

    @field("dummy.value", "The sample value in the event")
    def value(self, event: Event) -> int:
        return int(event.payload)

    @field("dummy.strvalue", "The sample value in the event, as a string")
    def strvalue(self, event: Event) -> bytes:
        return event.payload  # already the text: a string field may return UTF-8 bytes

    @field("dummy.divisible", "Return 1 if the value is divisible by the provided divisor, 0 otherwise")
    def divisible(self, event: Event, index: int) -> int:
        if index == 0:
            raise PluginError("the divisor must be a positive integer")
        return 1 if int(event.payload) % index == 0 else 0
