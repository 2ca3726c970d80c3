"""Source + extract with every optional entry point: init schema, set_config,
typed open params, list_open_params, get_progress, event_to_string, and a
field returning :class:`Located` (so it requires plugin API 3.12).

Payloads are ``b"<prefix> <counter> <tag>,<tag>"``.
"""

from __future__ import annotations

from falco_plugin import (
    Batch,
    Config,
    EndOfStream,
    Event,
    ExtractPlugin,
    Located,
    OpenParam,
    SourceInstance,
    SourcePlugin,
    field,
    per_event,
    setting,
)

# Quotes, a backslash, a trigraph and non-ASCII: all must survive the trip
# through the generated C string constants.
DESCRIPTION = 'Test fixture: "full" \\ every ??= entry point \u2013 \u00e9'


class FullConfig(Config):
    """Init configuration of fxt_full."""

    prefix: str = setting("First word of every payload", default="full", min_length=1)
    batch: int = setting("Events per batch", default=4, minimum=1)


class FullParams(Config):
    """Open parameters of fxt_full."""

    count: int = setting("How many events", default=10, minimum=0)
    start: int = setting("First counter value", default=0, minimum=0)


class FullInstance(SourceInstance):
    def __init__(self, plugin: FullPlugin, params: FullParams) -> None:
        self.plugin = plugin
        self.next = params.start
        self.left = params.count
        self.total = params.count

    def next_batch(self) -> Batch:
        if self.left <= 0:
            raise EndOfStream
        out = []
        for _ in range(min(self.left, self.plugin.batch)):
            n = self.next
            tags = ",".join(f"t{i}" for i in range(n % 3 + 1))
            out.append(f"{self.plugin.prefix} {n} {tags}".encode())
            self.next += 1
            self.left -= 1
        return out

    def progress(self) -> tuple[float, str]:
        done = self.total - self.left
        return (100.0 * done / self.total if self.total else 100.0), f"{done}/{self.total}"

    def close(self) -> None:
        self.plugin.closed += 1


class FullPlugin(SourcePlugin, ExtractPlugin):
    name = "fxt_full"
    version = "1.2.3"
    description = DESCRIPTION
    contact = "https://example.invalid/fxt_full"
    id = 999_102
    event_source = "fxt_full"

    def init(self, config: FullConfig) -> None:
        self.prefix = config.prefix
        self.batch = config.batch
        self.decodes = 0
        self.closed = 0
        self.log.info("ready: prefix=%s", self.prefix)

    def set_config(self, config: FullConfig) -> None:
        self.prefix = config.prefix
        self.batch = config.batch
        self.log.warning("reconfigured: prefix=%s batch=%d", self.prefix, self.batch)

    def open(self, params: FullParams) -> FullInstance:
        return FullInstance(self, params)

    def open_params(self) -> list[OpenParam]:
        return [
            OpenParam('{"count": 3}', "three events"),
            OpenParam('{"count": 100, "start": 5}', "a hundred events from 5", "|"),
        ]

    def event_to_string(self, event: Event) -> str:
        return f"fxt_full #{event.num}: {event.payload.decode()}"

    @per_event
    def words(self, event: Event) -> list[str]:
        self.decodes += 1
        return event.payload.decode().split(" ")

    @field("full.payload", "The whole payload")
    def payload(self, event: Event) -> str:
        return event.payload.decode()

    @field("full.counter", "The event counter")
    def counter(self, event: Event) -> int:
        return int(self.words(event)[1])

    @field("full.tags", "The tags of the event")
    def tags(self, event: Event) -> list[str]:
        return self.words(event)[2].split(",")

    @field("full.prefix", "The prefix, located in the payload")
    def prefix_field(self, event: Event) -> str | Located:
        first = self.words(event)[0]
        return Located(first, 0, len(first.encode()))

    @field("full.counter_at", "The counter, located in the payload")
    def counter_at(self, event: Event) -> int | Located:
        words = self.words(event)
        start = len(words[0].encode()) + 1
        return Located(int(words[1]), start, len(words[1]))

    @field("full.decodes", "How many times the payload decoder ran so far (per_event caching)")
    def decode_count(self, event: Event) -> int:
        return self.decodes

    @field("full.closed", "How many instances were closed")
    def closed_count(self, event: Event) -> int:
        return self.closed

    @field("full.evtnum", "The event number")
    def evtnum(self, event: Event) -> int:
        return event.num

    @field("full.thread_states", "How many thread states the Python interpreter has (threads that ended leave none)")
    def thread_states(self, event: Event) -> int:
        import ctypes  # only this field needs it

        api = ctypes.pythonapi
        api.PyThreadState_Get.restype = ctypes.c_void_p
        api.PyThreadState_GetInterpreter.restype = ctypes.c_void_p
        api.PyThreadState_GetInterpreter.argtypes = [ctypes.c_void_p]
        api.PyInterpreterState_ThreadHead.restype = ctypes.c_void_p
        api.PyInterpreterState_ThreadHead.argtypes = [ctypes.c_void_p]
        api.PyThreadState_Next.restype = ctypes.c_void_p
        api.PyThreadState_Next.argtypes = [ctypes.c_void_p]
        count, ts = 0, api.PyInterpreterState_ThreadHead(api.PyThreadState_GetInterpreter(api.PyThreadState_Get()))
        while ts:
            count, ts = count + 1, api.PyThreadState_Next(ts)
        return count
