"""The http_poll plugin: events from the records of an HTTP JSON API.

Two threads meet at a bounded queue:

* the **poller** (:mod:`http_poll.poller`) fetches pages on its own thread
  and queues their records, already encoded as event payloads;
* the **host** calls :meth:`HttpPollInstance.next_batch`, which takes what
  is ready (waiting at most :data:`IDLE_WAIT` when nothing is), drops
  records it has already delivered and returns the rest.

Delivery guarantee
------------------
The host calls ``next_batch`` again only once it is done with the events of
the previous batch. So on entry to ``next_batch`` everything handed out so
far is consumed, and that is the only moment the checkpoint is written: the
cursor of the last *consumed* poll plus the keys of the consumed records.
A restart resumes from that cursor; records fetched again because polls
overlap are recognised by key and dropped. Hence:

* a record the host never finished with is fetched and delivered again
  after a restart (no loss);
* a record in the checkpoint is never delivered again (no duplicate), as
  long as it is among the last ``dedup_capacity`` records delivered;
* if the host stops in the middle of a batch (a crash, or a stop between two
  events), that whole last batch is delivered again after the restart: the
  only duplicates, at most ``max_batch`` records.
"""

from __future__ import annotations

import json
import queue
import time
import weakref
from collections import deque
from typing import Any

from falco_plugin import (
    Batch,
    ConfigError,
    EndOfStream,
    Event,
    ExtractPlugin,
    OpenParam,
    PluginError,
    SourceInstance,
    SourcePlugin,
    field,
    json_field,
    per_event,
)

from .checkpoint import Checkpoint, CheckpointError, Delivered
from .config import HeaderError, HttpPollConfig, HttpPollParams, check_config, check_params, resolve_headers
from .poller import STOP_WAIT, Crashed, Finished, Item, Message, Page, PollEnd, Poller, Stats, quiet_insecure_warnings
from .records import Envelope, decode, host_text
from .redact import RedactingFilter, Redactor

__all__ = ["HttpPollPlugin", "HttpPollInstance", "IDLE_WAIT", "QUEUE_PAGES"]

IDLE_WAIT = 0.03
"""Longest time ``next_batch`` waits for records before telling the host "nothing yet"."""
QUEUE_PAGES = 64
"""Pages the poller may fetch ahead of the host before it waits."""


class HttpPollInstance(SourceInstance):
    """One open stream: a poller thread and the delivery bookkeeping."""

    def __init__(self, config: HttpPollConfig, params: HttpPollParams, plugin: HttpPollPlugin) -> None:
        try:
            settings = check_params(params)
        except ConfigError as exc:
            raise PluginError(f"invalid open params: {exc}") from None
        self.params = params
        self.max_batch = config.max_batch
        self.log = plugin.log
        saved = Checkpoint.load(params.checkpoint, params.url) if params.checkpoint else None
        self.delivered = Delivered(config.dedup_capacity, saved.delivered if saved else None)
        self.cursor = saved.cursor if saved else params.cursor_start
        self.polls_done = 0
        self._pending: deque[Item] = deque()
        self._queue: queue.Queue[Message] = queue.Queue(maxsize=QUEUE_PAGES)
        self._finished = False
        self._failure: str | None = None
        self._dirty = True
        self._save_failing = False
        if params.checkpoint:
            self._commit(raising=True)  # an unwritable checkpoint fails the open, not a later restart
            if saved:
                self.log.info("resuming from checkpoint %s (cursor %s)", params.checkpoint, saved.cursor)
        self.poller = Poller(config, settings, self.cursor, self._queue, plugin.log, plugin.redactor)
        self.stats: Stats = self.poller.stats
        self.poller.start()

    # -- the host's side -------------------------------------------------------------

    def next_batch(self) -> Batch:
        # The host is done with the previous batch: now, and only now, it is safe to record it.
        self._commit()
        batch: list[bytes | tuple[bytes, int]] = []
        deadline = time.monotonic() + IDLE_WAIT
        while len(batch) < self.max_batch:
            if self._pending:
                item = self._pending.popleft()
                if not self.delivered.admit(item.key):
                    self.stats.duplicates += 1
                    continue
                self._dirty = True
                batch.append(item.payload if item.ts is None else (item.payload, item.ts))
                continue
            if self._finished or self._failure is not None:
                break
            try:
                wait = 0.0 if batch else deadline - time.monotonic()
                message = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            self._receive(message)
        self.stats.delivered += len(batch)
        if batch:
            return batch
        if self._failure is not None:
            raise PluginError(self._failure)
        if self._finished:
            raise EndOfStream
        return batch  # empty: the host hears "timeout" and asks again

    def _receive(self, message: Message) -> None:
        if isinstance(message, Page):
            self._pending.extend(message.items)
        elif isinstance(message, PollEnd):
            # Every record of that poll is behind us: its cursor is the new resume point.
            self.cursor = message.cursor
            self.polls_done = message.number
            self._dirty = True
        elif isinstance(message, Finished):
            self._finished = True
        elif isinstance(message, Crashed):
            self._failure = message.message

    def _commit(self, raising: bool = False) -> None:
        path = self.params.checkpoint
        if not path or not self._dirty:
            return
        try:
            Checkpoint(self.params.url, self.cursor, self.delivered.keys()).save(path)
        except OSError as exc:
            if raising:
                raise CheckpointError(f"checkpoint {path}: cannot write it: {exc.strerror}") from None
            if not self._save_failing:  # once per outage, not once per batch
                self.log.error("checkpoint %s: cannot write it: %s (will retry)", path, exc.strerror)
            self._save_failing = True
            return
        self._dirty = self._save_failing = False

    def progress(self) -> tuple[float, str] | None:
        """With ``max_polls``, the share of polls whose records the host has received."""
        total = self.params.max_polls
        if not total:
            return None
        return 100.0 * self.polls_done / total, f"{self.polls_done}/{total} polls"

    def close(self) -> None:
        # No checkpoint here: the host may not have finished the last batch (see the module docs).
        self.poller.stop()  # returns within STOP_WAIT
        if self.poller.alive:
            # Connecting, or waiting for headers: nothing to cut yet (see Poller.request_stop).
            self.log.warning("closed %s before its worker ended; it ends at its next timeout", self.params.url)
        self.log.info("closed %s: %s", self.params.url, self.stats.summary())


class HttpPollPlugin(SourcePlugin, ExtractPlugin):
    """Polls an HTTP JSON API and turns each record into an event."""

    name = "http_poll"
    version = "0.1.0"
    description = "Polls an HTTP JSON API; each record of the responses becomes an event"
    contact = "github.com/falcosecurity/plugins"
    id = 30
    event_source = "http_poll"

    config: HttpPollConfig
    redactor: Redactor

    def init(self, config: HttpPollConfig) -> None:
        try:
            check_config(config)
            values = resolve_headers(config.headers)  # fail now, not at the first poll
        except (ConfigError, HeaderError) as exc:
            raise PluginError(f"invalid init config: {exc}") from None
        self.config = config
        self.redactor = Redactor(values.values())
        self.log.addFilter(RedactingFilter(self.redactor))
        self._instances: weakref.WeakSet[HttpPollInstance] = weakref.WeakSet()
        if not config.tls_verify:
            quiet_insecure_warnings()
            self.log.warning("tls_verify is off: the server's identity is not checked")

    def open(self, params: HttpPollParams) -> HttpPollInstance:
        try:
            instance = HttpPollInstance(self.config, params, self)
        except PluginError as exc:
            raise PluginError(self.redactor(str(exc))) from None
        self._instances.add(instance)
        return instance

    def destroy(self) -> None:
        # Instances the host did not close: stop them all first, so that they end together.
        pollers = [instance.poller for instance in list(getattr(self, "_instances", ()))]
        for poller in pollers:
            poller.request_stop()
        deadline = time.monotonic() + STOP_WAIT
        for poller in pollers:
            poller.join(max(0.0, deadline - time.monotonic()))

    def open_params(self) -> list[OpenParam]:
        return [
            OpenParam(
                json.dumps(
                    {
                        "url": "https://api.example.com/v1/audit",
                        "interval": 30,
                        "records": "/data",
                        "id": "/id",
                        "timestamp": "/published",
                        "cursor_param": "since",
                    }
                ),
                "An audit log API: records under /data, paged with Link headers, a 'since' cursor",
            )
        ]

    # -- fields -------------------------------------------------------------------------

    @per_event
    def envelope(self, event: Event) -> Envelope:
        """The decoded payload, once per event whatever the number of fields a rule reads."""
        try:
            return decode(event.payload)
        except ValueError:
            raise PluginError("the event payload is not an http_poll record") from None

    @field("http_poll.url", "URL of the HTTP response the record came in (the page, with its query)", add_output=True)
    def url(self, event: Event) -> str:
        return self.envelope(event).url

    @field("http_poll.status", "HTTP status code of the response the record came in")
    def status(self, event: Event) -> int:
        return self.envelope(event).status

    @field("http_poll.id", "The record id, read with the id pointer of the open params", add_output=True)
    def record_id(self, event: Event) -> str | None:
        rid = self.envelope(event).id
        return None if rid is None else host_text(rid)

    # Read by most rules, so answered by the SDK's glue in C (no Python, no GIL), by the JSON
    # rules of falco_plugin.json_field: the same text as the Python fields give for the record.
    value = json_field(
        "http_poll.value",
        None,
        str,
        "Value in the record at a JSON pointer, e.g. http_poll.value[/actor/login]: "
        "strings as they are, numbers, booleans, objects and arrays as compact JSON; none for null or missing",
        base="/record",
    )

    @field("http_poll.raw", "The whole record as compact JSON")
    def raw(self, event: Event) -> str:
        return host_text(_compact(self.envelope(event).record))


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
