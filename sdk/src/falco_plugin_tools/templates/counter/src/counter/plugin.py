"""A source of numbers that grow by a step, with a field to match them.

The project `falco-plugin new` starts from: a source + extraction plugin in
one page. Keep the shape and change the logic; `falco-plugin build .` checks
the declarations and names what it cannot accept.
"""

from __future__ import annotations

from falco_plugin import Batch, Config, EndOfStream, Event, ExtractPlugin, SourceInstance, SourcePlugin, field, setting


class CounterConfig(Config):
    """Init configuration (Falco's ``init_config``): the annotations are its JSON schema."""

    step: int = setting("How much each event adds to the previous value", default=1, minimum=1)


class CounterOpenParams(Config):
    """Open parameters (Falco's ``open_params``), as JSON."""

    count: int = setting("How many events to produce before the end of the stream", default=100, minimum=0)


class CounterInstance(SourceInstance):
    """One open stream: ``count`` events, then the end."""

    def __init__(self, params: CounterOpenParams, step: int) -> None:
        self.value, self.step, self.remaining = 0, step, params.count

    def next_batch(self) -> Batch:
        if self.remaining <= 0:
            raise EndOfStream
        batch = []
        for _ in range(min(self.remaining, 64)):
            self.value += self.step
            batch.append(b"%d" % self.value)  # the payload; the SDK writes the event header
        self.remaining -= len(batch)
        return batch


class CounterPlugin(SourcePlugin, ExtractPlugin):
    """The plugin: its metadata, its event source and its fields."""

    name = "counter"
    version = "0.1.0"
    description = "Numbers that grow by a step"
    contact = "you@example.com"
    id = 999  # the development id: ask the falcosecurity/plugins registry for one before publishing
    event_source = "counter"

    def init(self, config: CounterConfig) -> None:  # the annotation is the init schema
        self.step = config.step

    def open(self, params: CounterOpenParams) -> CounterInstance:
        return CounterInstance(params, self.step)

    @field("counter.value", "The number the event carries")
    def value(self, event: Event) -> int:  # the return type is the field type
        return int(event.payload)

    @field("counter.parity", "even or odd")
    def parity(self, event: Event) -> str:
        return "odd" if int(event.payload) % 2 else "even"
