"""metrics: host resource pressure as async events of the ``syscall`` source, with fields and plugin metrics.

How it fits together:

- **Sampling.** When Falco starts a live capture it sets the async handler and
  the SDK calls :meth:`MetricsPlugin.start_async`, which spawns one worker.
  The worker reads /proc (:mod:`host_metrics.procfs`) every ``interval``
  seconds and emits each sample as a ``metrics_sample`` async event: a JSON
  object of the sampled values. A worker thread, not the host's routines
  (``CaptureListenPlugin.routines``): the host calls a routine again and
  again with no timer, so a sampler there would sleep in it and hold one of
  the host's shared threads, or spin; and routines live from capture open to
  close, while samples can only flow while an async handler is set. The
  async session has exactly that lifetime: the SDK stops and joins the
  worker when Falco clears the handler.
- **Extraction.** The ``metrics.*`` fields read the sample back from the
  async event's payload: decoded once per event (``@per_event``), then each
  field is a dictionary look-up. Nothing is read from /proc at extraction
  time, so a rule sees the values of the sample that produced the event, and
  a capture replays them.
- **dump_state** re-emits the latest sample, so a capture Falco writes starts
  with the host's state.
- **Parsing** counts every event Falco hands the plugin, per source and per
  event type (:class:`EventCounts`); each sample carries the counts since the
  previous sample and the rate, a throughput view (``metrics.events.*``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from typing import Any

from falco_plugin import (
    ALL_EVENTS,
    ALL_SOURCES,
    ASYNC_EVENT,
    AsyncPlugin,
    AsyncSession,
    Config,
    ConfigError,
    Counter,
    Emit,
    Event,
    ExtractPlugin,
    Gauge,
    ParsePlugin,
    PluginError,
    field,
    per_event,
    setting,
)
from falco_plugin.params import UnknownEventError, event_layout

from .procfs import VALUES, ProcReader, Sample

__all__ = ["ASYNC_NAME", "MetricsConfig", "MetricsPlugin", "decode_sample"]

ASYNC_NAME = "metrics_sample"
_POLL = 0.1
"""Longest the worker sleeps at once, so that a shorter interval set at run time applies at once."""


class MetricsConfig(Config):
    """What to sample, and how often (every key is optional)."""

    proc_root: str = setting(
        "Where the host's /proc is mounted (in a container, the host's /proc mounted elsewhere)",
        default="/proc",
        min_length=1,
    )
    interval: float = setting("Seconds between samples", default=5.0, minimum=0.01, maximum=86400)
    top_n: int = setting(
        "Processes in the top lists by RSS and by CPU (0: no lists, and no read of every /proc/PID/stat)",
        default=0,
        minimum=0,
        maximum=100,
    )
    thresholds: dict[str, int] = setting(
        "Sampled values (keys of the metrics.* fields, without the prefix) whose value above the threshold "
        "puts their key in metrics.over",
        default={"mem.used_pct": 90, "load1_per_cpu_pct": 200, "files.used_pct": 90, "swap.used_pct": 80},
    )

    def validate(self) -> None:
        for key, limit in self.thresholds.items():
            if key not in VALUES:
                raise ConfigError(f"thresholds.{key}", "not a sampled value (see the metrics.* fields)")
            if limit < 0 or (key.endswith("_pct") and key != "load1_per_cpu_pct" and limit > 100):
                raise ConfigError(f"thresholds.{key}", f"must be a percentage (0-100), got {limit}")


def decode_sample(payload: bytes) -> dict[str, Any] | None:
    """The sample in the payload of a ``metrics_sample`` async event; None when it holds none
    (another plugin may use the same async event name)."""
    try:
        sample = json.loads(payload)
    except ValueError:
        return None
    return sample if isinstance(sample, dict) else None


def encode_sample(sample: Sample, thresholds: dict[str, int], events: dict[str, object]) -> bytes:
    """The payload of a ``metrics_sample`` event: the sample's JSON, the keys over their threshold
    and the event counts (:meth:`EventCounts.since`)."""
    data = sample.to_json()
    data["over"] = sorted(k for k, limit in thresholds.items() if sample.values.get(k, -1) > limit)
    data.update(events)
    return json.dumps(data, separators=(",", ":")).encode()


def type_name(code: int) -> str:
    """The event type's name as ``evt.type`` shows it for most types (enter and exit share it)."""
    try:
        return event_layout(code).name
    except UnknownEventError:
        return str(code)


class EventCounts:
    """Events parsed, per source and per type code; written by the host's event thread.

    The sampler reads them from its own thread: ``dict(counter)`` copies in one
    step under the GIL, so it never sees a dictionary changing size.
    """

    def __init__(self) -> None:
        self.by_source: Tally[str] = Tally()
        self.by_type: Tally[int] = Tally()
        self._last: tuple[float, dict[str, int], dict[int, int]] = (time.monotonic(), {}, {})

    def since(self) -> dict[str, object]:
        """Totals, and the counts and rate since the previous call (the first: since init)."""
        now, sources, types = time.monotonic(), dict(self.by_source), dict(self.by_type)
        then, old_sources, old_types = self._last
        self._last = (now, sources, types)
        source_delta = {s: n - old_sources.get(s, 0) for s, n in sources.items() if n != old_sources.get(s, 0)}
        type_delta: Tally[str] = Tally()
        for code, n in types.items():
            if n != old_types.get(code, 0):
                type_delta[type_name(code)] += n - old_types.get(code, 0)
        new = sum(source_delta.values())
        return {
            "events.total": sum(sources.values()),
            "events.rate": int(new / (now - then) + 0.5) if now > then else 0,
            "events.source": source_delta,
            "events.type": dict(type_delta),
        }


class MetricsPlugin(AsyncPlugin, ParsePlugin, ExtractPlugin):
    """Samples host resources into async events of the syscall source; every sampled value is a field."""

    name = "metrics"
    version = "0.1.0"
    description = "Host resource pressure (load, CPU, memory, swap, PSI, file handles) as async events with fields"
    contact = "github.com/falcosecurity/plugins"
    async_events = (ASYNC_NAME,)
    async_event_sources = ("syscall",)
    extract_event_sources = ("syscall",)
    extract_event_types = (ASYNC_EVENT,)  # the host calls the extractors for async events only
    parse_event_types = ALL_EVENTS  # the throughput view counts everything
    parse_event_sources = ALL_SOURCES
    async_stop_timeout = 1.0

    samples = Counter("samples", "Samples taken")
    sample_failures = Counter("sample_failures", "/proc files that could not be read or parsed, over all samples")
    last_sample_duration = Gauge("last_sample_duration_us", "How long the last sample took (us)", unsigned=True)
    async_emitted = Counter("async_emitted", "Sample events the host took")
    async_dropped = Counter("async_dropped", "Sample events the host did not take (no handler, or refused)")
    # Metrics are declared per class, so "per source" is syscall and the rest; fields have every source.
    events_seen = Counter("events_seen", "Events parsed, every source")
    events_seen_syscall = Counter("events_seen_syscall", "Events parsed of the syscall source")
    events_seen_other = Counter("events_seen_other", "Events parsed of the other sources (plugin sources)")

    def init(self, config: MetricsConfig) -> None:
        self.config = config
        self.latest: bytes | None = None
        """The payload of the latest sample (what dump_state re-emits)."""
        self._lock = threading.Lock()
        self.counts = EventCounts()

    def set_config(self, config: MetricsConfig) -> None:
        # Parsed and validated by the SDK first: an invalid update never gets here, and the
        # old config stays. The worker reads self.config at each step.
        self.config = config

    # -- sampling ------------------------------------------------------------------

    def start_async(self, session: AsyncSession) -> None:
        session.spawn(self._sample_loop, session, name="metrics-sampler")

    def _sample_loop(self, session: AsyncSession) -> None:
        reader: ProcReader | None = None
        due = time.monotonic()
        while not session.stopped:
            config = self.config
            if reader is None or (str(reader.root), reader.top_n) != (config.proc_root, config.top_n):
                reader = ProcReader(config.proc_root, top_n=config.top_n, warn=self.log.warning)
            now = time.monotonic()
            if now < due:
                session.wait(min(due - now, _POLL))
                due = min(due, now + config.interval)  # a shorter interval applies without waiting out the old one
                continue
            self._sample_once(session, reader, config)
            due = max(due + config.interval, time.monotonic())  # no burst after a stall

    def _sample_once(self, session: AsyncSession, reader: ProcReader, config: MetricsConfig) -> None:
        start = time.perf_counter()
        sample = reader.sample()
        self.last_sample_duration.set(int((time.perf_counter() - start) * 1e6))
        self.samples.inc()
        if sample.failures:
            self.sample_failures.inc(sample.failures)
        payload = encode_sample(sample, config.thresholds, self.counts.since())
        with self._lock:
            self.latest = payload
        try:
            delivered = session.emit(ASYNC_NAME, payload)
        except PluginError as exc:  # the host refused the event: count it, keep sampling
            self.log.warning("the host refused a sample: %s", exc)
            delivered = False
        (self.async_emitted if delivered else self.async_dropped).inc()

    def dump_state(self, emit: Emit) -> None:
        with self._lock:
            latest = self.latest
        if latest is not None:
            emit(ASYNC_NAME, latest)

    # -- parsing -------------------------------------------------------------------

    def parse_event(self, event: Event) -> None:
        # Called for every event Falco processes: keep it to counter increments.
        source = event.source or ""
        self.counts.by_source[source] += 1
        self.counts.by_type[event.type] += 1
        self.events_seen.inc()
        (self.events_seen_syscall if source == "syscall" else self.events_seen_other).inc()

    # -- extraction ----------------------------------------------------------------

    @per_event
    def sample(self, event: Event) -> dict[str, Any] | None:
        """The event's sample, decoded once per event; None for another plugin's async event."""
        return decode_sample(event.payload) if event.async_name == ASYNC_NAME else None

    @field("metrics.over", "Keys of the sampled values above their configured threshold (config: thresholds)")
    def over(self, event: Event) -> list[str]:
        sample = self.sample(event)
        return [str(k) for k in sample.get("over", [])] if sample else []

    @field("metrics.top.rss.name", "Name of the process with the N-th largest RSS (1: the largest)")
    def top_rss_name(self, event: Event, index: int) -> str | None:
        entry = self._top(event, "top.rss", index)
        return str(entry[1]) if entry else None

    @field("metrics.top.rss.pid", "Pid of the process with the N-th largest RSS")
    def top_rss_pid(self, event: Event, index: int) -> int | None:
        entry = self._top(event, "top.rss", index)
        return int(entry[0]) if entry else None

    @field("metrics.top.rss.bytes", "RSS of the process with the N-th largest RSS (bytes)")
    def top_rss_bytes(self, event: Event, index: int) -> int | None:
        entry = self._top(event, "top.rss", index)
        return int(entry[2]) if entry else None

    @field("metrics.top.cpu.name", "Name of the process with the N-th highest CPU use since the previous sample")
    def top_cpu_name(self, event: Event, index: int) -> str | None:
        entry = self._top(event, "top.cpu", index)
        return str(entry[1]) if entry else None

    @field("metrics.top.cpu.pid", "Pid of the process with the N-th highest CPU use")
    def top_cpu_pid(self, event: Event, index: int) -> int | None:
        entry = self._top(event, "top.cpu", index)
        return int(entry[0]) if entry else None

    @field("metrics.top.cpu.pct", "CPU use of the N-th process, percent of one CPU (above 100 when multi-threaded)")
    def top_cpu_pct(self, event: Event, index: int) -> int | None:
        entry = self._top(event, "top.cpu", index)
        return int(entry[2]) if entry else None

    @field("metrics.events.total", "Events the plugin parsed from Falco's start to this sample, every source")
    def events_total(self, event: Event) -> int | None:
        sample = self.sample(event)
        return int(sample["events.total"]) if sample and "events.total" in sample else None

    @field("metrics.events.rate", "Events per second parsed between the previous sample and this one")
    def events_rate(self, event: Event) -> int | None:
        sample = self.sample(event)
        return int(sample["events.rate"]) if sample and "events.rate" in sample else None

    @field(
        "metrics.events.source",
        "Events of source KEY parsed since the previous sample (metrics.events.source[syscall])",
    )
    def events_source(self, event: Event, key: str) -> int | None:
        sample = self.sample(event)
        return int(sample.get("events.source", {}).get(key, 0)) if sample else None

    @field(
        "metrics.events.type",
        "Events of type KEY parsed since the previous sample, enter and exit (metrics.events.type[openat])",
    )
    def events_type(self, event: Event, key: str) -> int | None:
        sample = self.sample(event)
        return int(sample.get("events.type", {}).get(key, 0)) if sample else None

    def _top(self, event: Event, key: str, index: int) -> list[Any] | None:
        sample = self.sample(event)
        entries = sample.get(key, []) if sample else []
        return entries[index - 1] if 1 <= index <= len(entries) else None  # type: ignore[no-any-return]


def _value_field(key: str, description: str) -> Callable[[MetricsPlugin, Event], int | None]:
    """The extractor of ``metrics.<key>``: one look-up in the decoded sample."""

    @field(f"metrics.{key}", description)
    def extract(self: MetricsPlugin, event: Event) -> int | None:
        sample = self.sample(event)
        value = sample.get(key) if sample else None
        return value if isinstance(value, int) else None

    return extract


# Every sampled value is a uint64 field; one generated extractor per key keeps them in step with procfs.VALUES.
for _key, _description in VALUES.items():
    setattr(MetricsPlugin, "value_" + _key.replace(".", "_"), _value_field(_key, _description))
