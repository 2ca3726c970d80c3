"""The background worker: polls the API on its own thread and queues what it gets.

One :class:`Poller` owns one ``requests.Session`` and one thread. Each poll
fetches the first page (with the cursor as a query parameter), follows
``Link: rel="next"`` pages, and puts on the queue, in order:

* a :class:`Page` per response, its records already encoded as event payloads;
* a :class:`PollEnd` after each poll, with the cursor the next poll will use;
* :class:`Finished` when ``max_polls`` polls are done, or :class:`Crashed` on a bug.

The worker never decides what the host has seen: de-duplication and
checkpoints happen on the host's thread, in :mod:`http_poll.plugin`.

Failures are absorbed here, counted in :class:`Stats` and logged: a 429 or
a 5xx waits (``Retry-After`` or exponential backoff) and retries; a network
error or a timeout retries the same way; a 4xx, malformed JSON or running
out of retries fails the poll, which is tried again at the next interval
from the same cursor. A failed poll never advances the cursor.

Every request is bounded in time, not only between bytes: its body is read a
piece at a time, and a request still going after ``request_timeout`` is cut
(a server that trickles one byte a second never trips ``read_timeout``).
:meth:`Poller.stop` cuts the response being read, so the thread ends at once
instead of when the server finishes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import re
import threading
import time
import warnings
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions
from falco_plugin import JsonRecord, NoRecordsError, NotJsonError, block_sigpipe, json_records
from urllib3.exceptions import InsecureRequestWarning

from .config import HeaderError, HttpPollConfig, PollSettings, resolve_headers
from .records import envelope_head, fits_utf8, id_text, parse_timestamp, record_key, wrap
from .redact import Redactor

__all__ = [
    "Poller",
    "Page",
    "Item",
    "PollEnd",
    "Finished",
    "Crashed",
    "Stats",
    "Message",
    "PollError",
    "Stopped",
    "RequestTimeoutError",
    "STOP_WAIT",
    "retry_after",
    "quiet_insecure_warnings",
]

PUT_POLL = 0.1
"""Seconds between checks for a stop request while the queue is full."""
STOP_WAIT = 2.0
"""Longest time :meth:`Poller.stop` (so ``close`` and ``destroy``) waits for the thread to end."""
CHUNK = 64 * 1024
"""Most bytes of a body read at once; a read returns as soon as some bytes arrive."""


class Item(NamedTuple):
    """One record, ready to hand to the host (a tuple: one is made per record)."""

    key: str
    payload: bytes
    ts: int | None


@dataclass(frozen=True)
class Page:
    """The records of one HTTP response, in the order the API sent them."""

    items: list[Item]


@dataclass(frozen=True)
class PollEnd:
    """Poll number ``number`` is over; ``cursor`` is where the next one starts."""

    number: int
    ok: bool
    cursor: str | None


@dataclass(frozen=True)
class Finished:
    """No message will follow: ``max_polls`` polls are done."""


@dataclass(frozen=True)
class Crashed:
    """The worker died of an unexpected error (a bug): the stream cannot go on."""

    message: str


Message = Page | PollEnd | Finished | Crashed


@dataclass
class Stats:
    """Counters, for logs and tests. Each is written by one thread only."""

    requests: int = 0
    polls: int = 0
    failed_polls: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    network_errors: int = 0
    client_errors: int = 0
    malformed: int = 0
    records: int = 0
    bad_timestamps: int = 0
    # written by the host thread
    delivered: int = 0
    duplicates: int = 0

    def summary(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in vars(self).items())


class PollError(Exception):
    """This poll is over without a complete result; the message says why."""


class Stopped(Exception):  # noqa: N818 - a signal, not an error
    """The instance is closing."""


class RequestTimeoutError(Exception):
    """A request ran past ``request_timeout``."""


class _Session(requests.Session):
    """A session that never sends the configured headers to another origin on a redirect.

    ``requests`` drops only ``Authorization`` when a redirect leaves the
    host; an API key in ``X-Api-Key`` would follow the redirect.
    """

    def __init__(self, header_names: list[str]) -> None:
        super().__init__()
        self.header_names = header_names

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]
        previous = response.request.url
        if previous is not None and prepared_request.url is not None:
            if self.should_strip_auth(previous, prepared_request.url):  # type: ignore[no-untyped-call]
                for name in self.header_names:
                    prepared_request.headers.pop(name, None)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or ""), parts.port or default


def _describe(exc: Exception) -> str:
    """A one-line reason for a failed request, without urllib3's object reprs."""
    if isinstance(exc, RequestTimeoutError):
        return str(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout | urllib3.exceptions.ReadTimeoutError):
        return "read timed out"
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return "connection broken while reading the body"
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        m = re.search(r"\[SSL: [A-Z_]+\] ([^('\"]+)", text)
        return "TLS error: " + (m.group(1).strip() if m else "handshake failed")
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if m:
        return "connection error: " + m.group(1).strip()
    return f"{type(exc).__name__}: {text[:200]}"


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Poller:
    """Polls ``settings.params.url`` on a thread until stopped or ``max_polls`` is reached."""

    def __init__(
        self,
        config: HttpPollConfig,
        settings: PollSettings,
        cursor: str | None,
        out: queue.Queue[Message],
        log: logging.Logger,
        redactor: Redactor,
    ) -> None:
        self.config = config
        self.settings = settings
        self.params = settings.params
        self.cursor = cursor
        self.stats = Stats()
        self._out = out
        self._log = log
        self._redact = redactor
        self._stop = threading.Event()
        # The response being read, so that stop() can cut it from the host's thread:
        self._lock = threading.Lock()
        self._inflight: requests.Response | None = None
        self._deadline = 0.0  # of the request in flight (time.monotonic)
        self._next_slot = 0.0
        self._origin = _origin(self.params.url)
        # What each record is asked for: its id, then its time (those configured).
        self._pointers = [p.text for p in (settings.id, settings.timestamp) if p is not None]
        # A pagination chain longer than max_pages continues at the next poll:
        self._resume_url: str | None = None
        self._chain_cursor: tuple[int | None, str] | None = None
        self._thread = threading.Thread(target=self._run, name="http_poll", daemon=True)

    # -- lifetime -----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = STOP_WAIT) -> None:
        """Stop the worker and wait at most ``timeout`` seconds for its thread to end."""
        self.request_stop()
        self.join(timeout)

    def request_stop(self) -> None:
        """Ask the worker to stop, without waiting; it never touches the queue again.

        A response being read is cut, so the thread ends within moments. Only
        a thread still connecting, or waiting for the headers of a response,
        cannot be interrupted: it ends as soon as that wait is over (the
        connection made or failed, the headers in, or ``read_timeout`` without
        a byte).
        """
        self._stop.set()
        self._cut()

    def join(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the thread to end; True if it has."""
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _put(self, message: Message) -> None:
        # The queue is bounded: a slow host slows the polling down rather than filling memory.
        while True:
            if self._stop.is_set():
                raise Stopped
            try:
                self._out.put(message, timeout=PUT_POLL)
                return
            except queue.Full:
                continue

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self._stop.wait(seconds):
            raise Stopped

    def _run(self) -> None:
        # A server that closes mid-request must be a BrokenPipeError here, not SIGPIPE ending Falco
        # (which keeps the default action); the mask is this thread's only.
        block_sigpipe()
        try:
            with _Session([h.name for h in self.config.headers]) as session:
                self._loop(session)
            self._put(Finished())
        except Stopped:
            pass
        except Exception as exc:  # noqa: BLE001 - a bug must end the stream visibly, not hang it
            message = self._redact(f"the polling worker failed: {type(exc).__name__}: {exc}")
            self._log.error("%s", message, exc_info=True)
            try:
                self._out.put(Crashed(message), timeout=PUT_POLL)
            except queue.Full:
                pass

    def _loop(self, session: requests.Session) -> None:
        interval, max_polls = self.params.interval, self.params.max_polls
        number = 0
        while True:
            started = time.monotonic()
            number += 1
            ok = self.poll(session)
            self.stats.polls += 1
            self._put(PollEnd(number, ok, self.cursor))
            if max_polls and number >= max_polls:
                return
            self._sleep(interval - (time.monotonic() - started))

    # -- one poll -------------------------------------------------------------------

    def poll(self, session: requests.Session) -> bool:
        """Run one poll; True when it went through without a failure."""
        try:
            headers = resolve_headers(self.config.headers)
            self._redact.add(headers.values())
            self._fetch_chain(session, headers)
            return True
        except (PollError, HeaderError) as exc:
            self.stats.failed_polls += 1
            self._resume_url, self._chain_cursor = None, None  # start over from the cursor
            self._log.error("%s", self._redact(f"poll of {self.params.url} failed: {exc}"))
            return False

    def _fetch_chain(self, session: requests.Session, headers: dict[str, str]) -> None:
        params = self.params
        if self._resume_url is not None:
            url, query = self._resume_url, None
        else:
            url = params.url
            query = {params.cursor_param: self.cursor} if params.cursor_param and self.cursor is not None else None
            self._chain_cursor = None
        for _ in range(self.config.max_pages):
            response, body = self._get(session, url, query, headers)
            page = self._page(response, body)
            if page.items:
                self._put(page)
            link = response.links.get("next", {}).get("url")
            if not link:
                self._resume_url = None
                self._advance_cursor()
                return
            following = urljoin(response.url, link)
            if _origin(following) != self._origin:
                raise PollError("Link rel=next points to another origin; not followed, it would receive the headers")
            if following == response.url:
                raise PollError("Link rel=next points to the page itself")
            url, query = following, None
        self._resume_url = url
        self._log.info("read %d pages of %s; the next poll goes on from there", self.config.max_pages, params.url)

    def _page(self, response: requests.Response, body: bytes) -> Page:
        where = f"GET {response.url}: HTTP {response.status_code}"
        if response.status_code == 204:
            return Page([])
        # The SDK splits the page in C: each record's own bytes and the two values we need,
        # without decoding the records into Python objects or encoding them again.
        try:
            records = json_records(body, self.settings.records.text, self._pointers)
        except NotJsonError as exc:
            self.stats.malformed += 1
            raise PollError(f"{where}: the body is not JSON ({exc.reason})") from None
        except NoRecordsError as exc:
            self.stats.malformed += 1
            raise PollError(f"{where}: {exc}") from None
        head = envelope_head(response.url, response.status_code)
        try:
            return Page(self._items(head, records))
        except RecursionError:  # a record without an id, nested about as deep as the decoder allows
            self.stats.malformed += 1
            raise PollError(f"{where}: a record is nested too deeply") from None

    def _items(self, head: bytes, records: list[JsonRecord]) -> list[Item]:
        """Each record as an event payload, with its key and time; the cursor follows them."""
        self.stats.records += len(records)
        with_id, with_time = self.settings.id is not None, self.settings.timestamp is not None
        unit, cursor_from = self.params.timestamp_unit, self.params.cursor_from
        by_time = cursor_from == "timestamp"
        newest: tuple[int, Any] | None = None  # of the page: offered to the cursor once, after the loop
        items = []
        for raw, values in records:
            rid = None
            if with_id:
                rid = values[0] if type(values[0]) is str else id_text(values[0])
            ts = None
            if with_time:
                stamp = values[-1]
                ts = parse_timestamp(stamp, unit)
                if ts is None:
                    self.stats.bad_timestamps += 1
                elif by_time and (newest is None or ts > newest[0]) and (type(stamp) is not str or fits_utf8(stamp)):
                    newest = (ts, stamp)  # a lone surrogate cannot go in a URL: see below
            if rid is None:
                key = record_key(json.loads(raw), None)
            else:
                key = "id:" + rid
                if cursor_from == "id" and fits_utf8(rid):
                    # Text UTF-8 cannot hold (a lone surrogate) cannot go in a URL, so it never becomes the
                    # cursor: the cursor stays where it was, and de-duplication drops what comes again.
                    self._chain_cursor = (None, rid)
            items.append(Item(key, wrap(head, rid, raw), ts))
        best = self._chain_cursor
        if newest is not None and (best is None or best[0] is None or newest[0] > best[0]):
            when, stamp = newest
            self._chain_cursor = (when, stamp if isinstance(stamp, str) else json.dumps(stamp))
        return items

    # -- cursor -----------------------------------------------------------------------

    def _advance_cursor(self) -> None:
        """A whole chain of pages is in: move the cursor to its newest record."""
        found, self._chain_cursor = self._chain_cursor, None
        if found is None:
            return
        ts, text = found
        if ts is not None and self.cursor is not None:
            current = parse_timestamp(self.cursor, self.params.timestamp_unit)
            if current is not None and current > ts:
                return  # never move a time cursor backwards
        self.cursor = text

    # -- one request, with retries -------------------------------------------------------

    def _throttle(self) -> None:
        rate = self.config.rate_limit
        if rate <= 0:
            return
        now = time.monotonic()
        self._sleep(self._next_slot - now)
        self._next_slot = max(now, self._next_slot) + 1.0 / rate

    def _backoff(self, attempt: int) -> float:
        c = self.config
        delay: float = min(c.backoff_max, c.backoff_initial * 2.0**attempt)
        return delay * random.uniform(0.5, 1.0)  # jitter: clients that failed together retry apart

    def _get(
        self, session: requests.Session, url: str, query: dict[str, str] | None, headers: dict[str, str]
    ) -> tuple[requests.Response, bytes]:
        """A successful response and its body, after the retries it took."""
        c = self.config
        attempt = 0
        while True:
            self._throttle()
            self.stats.requests += 1
            delay: float | None = None
            try:
                response, body = self._request(session, url, query, headers)
            except (requests.RequestException, urllib3.exceptions.HTTPError, RequestTimeoutError) as exc:
                if self._stop.is_set():
                    raise Stopped from None
                self.stats.network_errors += 1
                reason = _describe(exc)
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response, body
                reason = f"HTTP {status}"
                if status == 429 or status >= 500:
                    if status == 429:
                        self.stats.rate_limited += 1
                    else:
                        self.stats.server_errors += 1
                    delay = retry_after(response.headers.get("Retry-After"))
                    if delay is not None:
                        delay = min(delay, c.max_retry_after)
                else:
                    self.stats.client_errors += 1
                    raise PollError(f"GET {url}: {reason} {response.reason or ''}".rstrip())
            if attempt >= c.retries:
                raise PollError(f"GET {url}: {reason} (gave up after {attempt + 1} attempts)")
            if delay is None:
                delay = self._backoff(attempt)
            attempt += 1
            self.stats.retries += 1
            self._log.warning("%s", self._redact(f"GET {url}: {reason}; retry {attempt}/{c.retries} in {delay:.2f}s"))
            self._sleep(delay)

    def _request(
        self, session: requests.Session, url: str, query: dict[str, str] | None, headers: dict[str, str]
    ) -> tuple[requests.Response, bytes]:
        """One GET within ``request_timeout``; the body is read only for a success."""
        c = self.config
        cert = (c.client_cert, c.client_key) if c.client_cert and c.client_key else c.client_cert
        self._deadline = time.monotonic() + c.request_timeout
        try:
            response = session.get(
                url,
                params=query,
                headers=headers,
                # No single wait may outlast the whole request:
                timeout=(min(c.connect_timeout, c.request_timeout), min(c.read_timeout, c.request_timeout)),
                verify=(c.ca_bundle or True) if c.tls_verify else False,
                cert=cert,
                # Per request, so that they win over HTTP(S)_PROXY from the environment.
                proxies={"http": c.proxy, "https": c.proxy} if c.proxy else None,
                stream=True,  # the body is read by _read_body, where the deadline and stop() apply
                hooks={"response": self._arrived},
            )
            self._check_deadline()  # the headers alone may have taken that long
            body = self._read_body(response) if 200 <= response.status_code < 300 else b""
            return response, body
        finally:
            self._release()

    def _arrived(self, response: requests.Response, **_: Any) -> None:
        """requests' response hook, called for every response (redirects too) once its headers are in."""
        with self._lock:
            self._inflight = response
        if self._stop.is_set():
            self._cut()  # stop() came before the response could be cut
        if response.is_redirect:
            self._read_body(response)  # requests would read it itself, with no deadline

    def _read_body(self, response: requests.Response) -> bytes:
        """The body, a piece at a time: after each piece, the deadline is checked."""
        body = bytearray()
        try:
            # read1 returns what the socket has, where read(n) would wait for n bytes.
            while chunk := response.raw.read1(CHUNK, decode_content=True):
                body += chunk
                self._check_deadline()
        except Exception:
            if self._stop.is_set():
                raise Stopped from None  # the read failed because stop() cut it
            raise
        if self._stop.is_set():
            raise Stopped  # a cut can also look like the end of a body without a length
        return bytes(body)

    def _check_deadline(self) -> None:
        if time.monotonic() > self._deadline:
            raise RequestTimeoutError(f"took longer than request_timeout ({self.config.request_timeout:g} s)")

    def _cut(self) -> None:
        """Interrupt the read of the response in flight, if any; callable from any thread."""
        with self._lock:
            if self._inflight is not None:
                # urllib3's shutdown is meant for this: the blocked read returns at once.
                with contextlib.suppress(ValueError, RuntimeError, OSError):  # already read or closed
                    self._inflight.raw.shutdown()

    def _release(self) -> None:
        with self._lock:
            response, self._inflight = self._inflight, None
        if response is not None:
            response.close()


def quiet_insecure_warnings() -> None:
    """With tls_verify off, urllib3 warns on stderr at every request; the plugin logs once instead."""
    warnings.filterwarnings("ignore", category=InsecureRequestWarning)
