"""The pod watcher: list, then watch, the pods of the API server, and report every change.

It follows the protocol client-go's informers follow:

1. **List** ``/api/v1/pods`` in pages (``limit``, ``continue``); the list's
   ``resourceVersion`` is the point in history the pods are at.
2. **Watch** from there (``watch=1&resourceVersion=RV&allowWatchBookmarks=true``):
   a chunked stream of one JSON event per line, ``ADDED``, ``MODIFIED``,
   ``DELETED``, ``BOOKMARK`` (only a newer resourceVersion) or ``ERROR``.
   Each event moves the resourceVersion on; when the server ends the watch
   (``timeoutSeconds``) or the connection breaks, the watch resumes from it.
3. **Relist** when the server no longer has that point of history (``410
   GoneError``, as a status or as an ``ERROR`` event), when an event cannot be
   read (something may be missing), and every ``resync_period``. A relist is
   compared with what the host has: only new, changed and vanished pods are
   reported, so no pod is lost or reported twice.

Every change goes to ``sink``, which says whether the host took it: a pod
counts as delivered only then. The watcher keeps two views, what the server
has (``known``) and what was delivered (``delivered``); when the host does
not take an event (its queue is full, or it refused the event) the watcher
pauses, with a backoff, and then sends every difference between the two, so
that every pod reaches the parser eventually.

Failures (a refused connection, a timeout, a 5xx, a 401 after a token
rotated badly, a 410, a malformed or oversized response, a watch the server
ends at once with no event, or any unexpected exception) are logged and retried with a capped exponential backoff with
jitter, as client-go's reflector does: the pause doubles with every failure
and starts again from ``backoff_initial`` only after ``backoff_reset``
seconds without one, so that a server answering 410 to every watch gets a
list+watch pair about every ``backoff_max`` seconds, not thousands a second. A
malformed pod is skipped and counted; its neighbours are delivered. What a
server sends is bounded (``max_list_bytes``, ``max_event_bytes``,
``max_list_pods``, ``max_list_pages``). The watcher never gives up and never
blocks its stop for long: :meth:`PodWatcher.interrupt` shuts the open
socket down.
"""

from __future__ import annotations

import errno
import http.client
import json
import logging
import math
import random
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlencode, urlsplit

from .config import WatchSettings
from .pods import Action, Pod, PodError

__all__ = [
    "ApiClient",
    "ApiError",
    "DeliveryError",
    "GoneError",
    "LimitError",
    "PodWatcher",
    "ShortWatchError",
    "StreamError",
    "TokenFileError",
    "WatchCounters",
    "backoff_delay",
]

PODS_PATH = "/api/v1/pods"
MAX_ERROR_BODY = 64 * 1024
SHORT_WATCH = 1.0
"""A watch that the server ends with no event sooner than this (in seconds, and than half its
timeoutSeconds) is a failure: client-go's reflector calls it a "very short watch"."""


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status


class GoneError(ApiError):
    """410: the resourceVersion (or continue token) is too old; relist."""


class StreamError(Exception):
    """A response that cannot be read as the protocol says: relist, since events may be missing."""


class LimitError(StreamError):
    """The server sent more than a configured limit allows (a failure, retried with backoff)."""


class TokenFileError(Exception):
    """The bearer token file cannot be read (it is re-read at every connection)."""


class DeliveryError(Exception):
    """The host did not take a pod event: the pods that differ are sent again after a pause."""


class ShortWatchError(Exception):
    """The server ended a watch at once, with no event: resumed after a pause, not at once, so that a
    server that ends every watch does not get thousands a second (client-go's reflector does the same)."""


class StoppedError(Exception):
    """The watcher was asked to stop while it waited."""


class CounterLike(Protocol):
    def inc(self, n: int = 1) -> None: ...


Sink = Callable[[Action, Pod], "bool | None"]
"""Hands one change to the host: ``False`` (or an exception) means the host did not take it.
``None`` counts as taken (an ``emit`` that says nothing)."""


Delivery = Literal["taken", "full", "refused"]
"""What became of one change: the host took it, dropped it (``sink`` returned ``False``: its queue
is full, or the session ended) or refused it (``sink`` raised)."""


@dataclass(frozen=True)
class WatchCounters:
    """The plugin's metrics the watcher counts in."""

    restarts: CounterLike
    """Failures (each followed by a pause and a new attempt)."""
    relists: CounterLike
    """Lists after the first."""
    malformed: CounterLike
    """Pod objects skipped as malformed."""
    undelivered: CounterLike
    """Changes the host did not take (sent again later)."""


def backoff_delay(attempt: int, initial: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before reconnection ``attempt`` (1, 2, ...): ``initial``
    doubling up to ``cap``, then a random half of it taken off, so that many
    nodes' plugins do not reconnect in step after the API server restarts."""
    base = min(cap, initial * 2.0 ** min(attempt - 1, 62))
    return base * (0.5 + 0.5 * rng())


@dataclass
class _Target:
    scheme: str
    host: str
    port: int


class ApiClient:
    """GET requests to the API server, one connection each, interruptible from another thread."""

    def __init__(self, settings: WatchSettings, stopping: threading.Event) -> None:
        parts = urlsplit(settings.api_server)
        scheme = parts.scheme
        self.target = _Target(scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80))
        self.prefix = parts.path.rstrip("/")
        self.settings = settings
        self.stopping = stopping
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._resp: http.client.HTTPResponse | None = None
        self._ssl: ssl.SSLContext | None = None

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            s = self.settings
            ctx = ssl.create_default_context(cafile=s.ca_bundle or None)
            if not s.tls_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl = ctx
        return self._ssl

    def token(self) -> str:
        """The bearer token, read now: kubelets rotate projected tokens in place."""
        path = self.settings.token_file
        if not path:
            return ""
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().strip()
        except OSError as exc:
            raise TokenFileError(f"cannot read token_file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise TokenFileError(f"cannot read token_file {path}: it is not UTF-8 text") from None

    def get(self, path: str, query: dict[str, str]) -> http.client.HTTPResponse:
        """Send ``GET path?query``; the response when its status is 200, else :class:`ApiError`."""
        token = self.token()
        sock = self._connect()
        conn = http.client.HTTPConnection(self.target.host, self.target.port)
        conn.sock = sock  # http.client writes on a socket it did not open when one is set
        headers = {"Accept": "application/json", "User-Agent": "falco-k8s_parse/0.1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request("GET", f"{self.prefix}{path}?{urlencode(query)}", headers=headers)
        resp = conn.getresponse()
        with self._lock:
            self._resp = resp  # the socket's last reference is the response's file: close both
        if resp.status != 200:
            body = resp.read(MAX_ERROR_BODY)
            self.close()
            message = _status_message(body) or resp.reason
            raise (GoneError if resp.status == 410 else ApiError)(resp.status, message)
        return resp

    def _connect(self) -> socket.socket:
        t, s = self.target, self.settings
        deadline = time.monotonic() + s.connect_timeout
        last: OSError = OSError(f"cannot resolve {t.host}")
        for family, kind, proto, _, addr in socket.getaddrinfo(t.host, t.port, type=socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            self._hold(sock)
            try:
                self._connect_one(sock, addr, deadline)
                sock.settimeout(s.read_timeout)
                if t.scheme == "https":
                    sock = self._context().wrap_socket(sock, server_hostname=t.host)
                    self._hold(sock)
                return sock
            except OSError as exc:
                self.close()
                last = exc
                if self.stopping.is_set():
                    break
        raise last

    def _connect_one(self, sock: socket.socket, addr: Any, deadline: float) -> None:
        """A non-blocking connect, checked every 100 ms, so that a stop never waits for a black-holed server."""
        sock.setblocking(False)
        rc = sock.connect_ex(addr)
        while rc in (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK):
            if self.stopping.is_set():
                raise OSError("stopping")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"connecting to {self.settings.api_server} timed out")
            _, writable, _ = select.select([], [sock], [], min(left, 0.1))
            if writable:
                rc = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                break
        if rc:
            raise OSError(rc, f"connecting to {self.settings.api_server}: {errno.errorcode.get(rc, rc)}")

    def _hold(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            # The SDK sets `stopping` before stop_async interrupts: a socket made after the interrupt
            # sees it here, under the lock the interrupt takes, and is never read from.
            stopping = self.stopping.is_set()
        if stopping:
            self.close()
            raise OSError("stopping")

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
            resp, self._resp = self._resp, None
        if resp is not None:
            resp.close()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def interrupt(self) -> None:
        """Wake a read blocked on the open connection (from another thread)."""
        with self._lock:
            sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _status_message(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    return str(doc.get("message", "")) if isinstance(doc, dict) else ""


class PodWatcher:
    """Lists and watches pods until ``stopping`` is set, calling ``sink(action, pod)`` for every change.

    ``sink`` runs on the watcher's thread; the watcher's own memory of the pods
    (``known``, ``delivered``) is touched by that thread only.
    """

    def __init__(
        self,
        settings: WatchSettings,
        sink: Sink,
        stopping: threading.Event,
        log: logging.Logger,
        counters: WatchCounters,
        *,
        listed: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.stopping = stopping
        self.listed = listed
        """Set once the pods of a list have all been taken by the host (what Falco's start waits for)."""
        self.log = log
        self.counters = counters
        self.client = ApiClient(settings, stopping)
        self.known: dict[str, Pod] = {}
        """The pods as the server has them (the last list, and the watch events since)."""
        self.delivered: dict[str, Pod] = {}
        """The pods as the host has them: what ``sink`` took."""
        self.resource_version = ""
        self.lists = 0
        self._listed_at = 0.0
        self._undelivered = False  # a change the host did not take: send the differences before going on
        self._delivery_failures = 0  # in a row, for the pause before the next attempt
        self._malformed = 0
        self._refusal = ""  # the last exception of sink, for the log

    def interrupt(self) -> None:
        self.client.interrupt()

    def _selector(self) -> dict[str, str]:
        return {"fieldSelector": f"spec.nodeName={self.settings.node_name}"} if self.settings.node_name else {}

    # -- the loop --------------------------------------------------------------

    def run(self) -> None:
        """The worker: never returns before ``stopping`` is set, whatever the server sends."""
        need_list = True
        failures = 0
        last_failure = -math.inf
        while not self.stopping.is_set():
            try:
                if need_list or self._resync_due():
                    self._list()
                    need_list = False
                if self._undelivered:
                    self._flush()
                self._watch()
                continue  # the server ended the watch: resume from the last resourceVersion at once
            except StoppedError:
                return
            except DeliveryError as exc:
                # The host's back-pressure, not the server's failure: pause, then send what differs.
                # The pauses grow while nothing gets through and start again once something does.
                self._undelivered = True
                delay = backoff_delay(self._delivery_failures, self.settings.backoff_initial, self.settings.backoff_max)
                self._failed(self._delivery_failures - 1, f"{exc}; sending again in {delay:.2f}s")
                if self.stopping.wait(delay):
                    return
                continue
            except GoneError as exc:
                need_list = True
                message = f"{exc}; relisting"
            except LimitError as exc:
                need_list = True
                message = f"{exc}; relisting"
            except StreamError as exc:
                need_list = True
                message = f"unreadable response ({exc}); relisting"
            except (OSError, ApiError, TokenFileError, ShortWatchError, http.client.HTTPException) as exc:
                if self.stopping.is_set():
                    return
                message = self._describe(exc)
            except Exception as exc:  # the worker must outlive anything a server can provoke
                if self.stopping.is_set():
                    return
                need_list = True  # what was half applied is unknown: start again from a list
                message = f"unexpected {type(exc).__name__}: {exc}; relisting"
                self.log.debug("pod watch: unexpected failure", exc_info=True)
            finally:
                self.client.close()
            # One series of failures until backoff_reset seconds pass without one (client-go's
            # reflector does the same): a list that succeeds between two 410s does not end it.
            now = time.monotonic()
            failures = 1 if now - last_failure >= self.settings.backoff_reset else failures + 1
            last_failure = now
            delay = backoff_delay(failures, self.settings.backoff_initial, self.settings.backoff_max)
            self._failed(failures - 1, f"{message}; retrying in {delay:.2f}s")
            self.counters.restarts.inc()  # after the log line: whoever sees the count finds the reason
            if self.stopping.wait(delay):
                return

    def _failed(self, failures: int, message: str) -> None:
        # The first failure of a series is a warning; the retries of a long outage are not all worth one.
        level = logging.WARNING if failures == 0 or failures % 10 == 0 else logging.DEBUG
        self.log.log(level, "pod watch failed (retry %d): %s", failures + 1, message)

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, ApiError) and exc.status in (401, 403):
            return (
                f"the API server refused the request: {exc} (is token_file current, and may the service account "
                "get, list and watch pods?)"
            )
        if isinstance(exc, TimeoutError):
            return f"no answer from {self.settings.api_server} within read_timeout ({self.settings.read_timeout}s)"
        if isinstance(exc, (TokenFileError, ShortWatchError)):
            return str(exc)
        return f"{type(exc).__name__}: {exc}"

    def _resync_due(self) -> bool:
        period = self.settings.resync_period
        return period > 0 and time.monotonic() - self._listed_at >= period

    # -- delivery --------------------------------------------------------------

    def _send(self, uid: str) -> Delivery:
        """Bring the host's view of pod ``uid`` to the server's."""
        want, have = self.known.get(uid), self.delivered.get(uid)
        if want is None:
            if have is None:
                return "taken"
            action: Action = "deleted"
            pod = have
        elif have is None:
            action, pod = "added", want
        elif have.same_as(want):
            return "taken"  # nothing the plugin keeps has changed (most status updates), or a duplicate
        else:
            action, pod = "modified", want
        try:
            result: Delivery = "full" if self.sink(action, pod) is False else "taken"
        except Exception as exc:  # noqa: BLE001 - the host refused this one event; the others may still go
            self._refusal = f"the host refused the {action} event of {pod.namespace}/{pod.name}: {exc}"
            result = "refused"
        if result != "taken":
            self.counters.undelivered.inc()
            return result
        if want is None:
            del self.delivered[uid]
        else:
            self.delivered[uid] = want
        self._delivery_failures = 0
        return result

    def _flush(self) -> None:
        """Send every difference between ``known`` and ``delivered``: new and changed pods in the
        server's order, then the vanished ones; :class:`DeliveryError` when the host took not all.

        The first event the host drops (its queue is full) ends the round: the rest would be
        dropped too. An event it refuses (an exception) is skipped, so that one pod the host
        never takes does not hold back the others."""
        left = 0
        for uid in [*self.known, *(u for u in self.delivered if u not in self.known)]:
            if self.stopping.is_set():
                raise StoppedError
            result = self._send(uid)
            if result == "full":
                left = -1
                break
            if result == "refused":
                left += 1
        self._undelivered = left != 0
        if not left and self.lists and self.listed is not None:
            self.listed.set()
        if left:
            self._delivery_failures += 1
            what = "more pod events (its queue is full)" if left < 0 else f"{left} pod event(s) ({self._refusal})"
            raise DeliveryError(f"the host did not take {what}")

    # -- list ------------------------------------------------------------------

    def _list(self) -> None:
        s = self.settings
        pods: dict[str, Pod] = {}
        token = ""
        version = ""
        pages = 0
        while True:
            if pages == s.max_list_pages:
                raise LimitError(
                    f"the pod list did not end after {pages} pages (max_list_pages); the continue token "
                    f"was {token[:60]!r}"
                )
            query = {"limit": str(s.page_size), **self._selector()}
            if token:
                query["continue"] = token
            doc = self._read_json(self.client.get(PODS_PATH, query))
            self.client.close()
            pages += 1
            meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
            items = doc.get("items")
            if not isinstance(items, list) or not isinstance(meta, dict):
                raise StreamError("a pod list without items")
            if len(pods) + len(items) > s.max_list_pods:
                raise LimitError(f"the pod list holds more than {s.max_list_pods} pods (max_list_pods)")
            for obj in items:
                pod = self._pod(obj)
                if pod is not None:
                    pods[pod.uid] = pod
            version = str(meta.get("resourceVersion", "")) or version
            token = str(meta.get("continue") or "")
            if not token:
                break
            if self.stopping.is_set():
                raise StoppedError
        self.lists += 1
        if self.lists > 1:
            self.counters.relists.inc()
        self._listed_at = time.monotonic()
        self.known = pods
        self.resource_version = version
        self.log.debug("pod list: %d pods at resourceVersion %s", len(pods), version)
        # The difference with what the host has is sent next (by run): a relist neither loses nor
        # repeats a pod, and sends again what the host did not take before.
        self._undelivered = True

    def _read_json(self, resp: http.client.HTTPResponse) -> dict[str, Any]:
        try:
            doc = json.loads(_body(resp, self.settings.max_list_bytes))
        except (ValueError, UnicodeDecodeError) as exc:
            raise StreamError(f"the pod list is not JSON: {exc}") from None
        except RecursionError:
            raise StreamError("the pod list is nested too deep to read") from None
        except http.client.IncompleteRead as exc:
            raise OSError(f"the pod list was cut short: {exc}") from None
        if not isinstance(doc, dict):
            raise StreamError("the pod list is not a JSON object")
        return doc

    def _pod(self, obj: Any) -> Pod | None:
        try:
            return Pod.from_api(obj, self.settings.labels, self.settings.annotations)
        except PodError as exc:
            # Skipped on its own: its neighbours are delivered. The first one, then every hundredth,
            # is a warning; the count is in the plugin's metrics.
            self._malformed += 1
            self.counters.malformed.inc()
            level = logging.WARNING if self._malformed % 100 == 1 else logging.DEBUG
            self.log.log(level, "pod watch: skipping a malformed pod (%d so far): %s", self._malformed, exc)
            return None

    # -- watch -----------------------------------------------------------------

    def _watch(self) -> None:
        timeout = self.settings.watch_timeout
        if self.settings.resync_period > 0:
            left = self.settings.resync_period - (time.monotonic() - self._listed_at)
            timeout = max(1, min(timeout, int(left + 0.999)))
        query = {
            "watch": "1",
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout),
            **self._selector(),
        }
        started = time.monotonic()
        resp = self.client.get(PODS_PATH, query)
        events = 0
        for event in _lines(resp, self.settings.max_event_bytes):
            events += 1
            self._apply(event)
            if self.stopping.is_set():
                raise StoppedError
        lasted = time.monotonic() - started
        if events == 0 and lasted < min(SHORT_WATCH, timeout / 2):
            raise ShortWatchError(f"the API server ended the watch after {lasted:.3f}s with no event")

    def _apply(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object")
        if not isinstance(obj, dict):
            raise StreamError(f"a {kind} watch event without an object")
        if kind == "ERROR":
            code = obj.get("code")
            message = f"watch ERROR event: {obj.get('message', '')} (code {code})"
            if code == 410:
                raise GoneError(410, message)
            raise StreamError(message)
        meta = obj.get("metadata")
        version = str(meta.get("resourceVersion", "")) if isinstance(meta, dict) else ""
        if kind == "BOOKMARK":
            if version:
                self.resource_version = version
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            raise StreamError(f"unknown watch event type {kind!r}")
        pod = self._pod(obj)
        if version:
            self.resource_version = version
        if pod is None:
            return
        if kind == "DELETED":
            self.known.pop(pod.uid, None)
        else:
            self.known[pod.uid] = pod
        # The event is applied to `known` first: one the host does not take is sent again from there.
        result = self._send(pod.uid)
        if result != "taken":
            self._delivery_failures += 1
            why = self._refusal if result == "refused" else "its queue is full"
            raise DeliveryError(f"the host did not take the pod event of {pod.namespace}/{pod.name} ({why})")


_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
"""A chunk size as RFC 9112 writes it: hex digits only (int() would also take -3, +3, 0x3 and 1_0)."""
MAX_CHUNK_LINE = 1024


def _chunks(resp: http.client.HTTPResponse, limit: int, too_big: str) -> Iterator[bytes]:
    """The chunks of a chunked body, read off the connection here rather than by http.client,
    which does not tell a body cut between two chunks from one that ended properly, and reads to
    the end of the connection on a negative chunk size. A chunk larger than ``limit`` is a
    :class:`LimitError` (``too_big`` says which limit), refused before it is read."""
    fp = resp.fp
    if fp is None:
        return
    while True:
        line = fp.readline(MAX_CHUNK_LINE)
        if not line.endswith(b"\n"):
            if len(line) == MAX_CHUNK_LINE:
                raise StreamError(f"a chunk size line longer than {MAX_CHUNK_LINE} bytes")
            raise OSError("the response was cut between two chunks")
        digits = line.split(b";")[0].strip(b" \t\r\n")
        if not _CHUNK_SIZE.fullmatch(digits):
            raise StreamError(f"a bad chunk size line {line[:40]!r}")
        size = int(digits, 16)
        if size == 0:
            while fp.readline(MAX_CHUNK_LINE).strip():  # trailers
                pass
            return
        if size > limit:
            raise LimitError(f"{too_big}: a chunk of {size} bytes")
        data = fp.read(size + 2)
        if len(data) != size + 2:
            raise OSError("the response was cut inside a chunk")
        yield data[:-2]


def _body(resp: http.client.HTTPResponse, limit: int) -> bytes:
    """The whole body of a (list) response, at most ``limit`` bytes (:class:`LimitError` beyond, as
    soon as it is known: from Content-Length, before reading)."""
    too_big = f"a pod list page larger than {limit} bytes (max_list_bytes; lower page_size or raise max_list_bytes)"
    if resp.chunked:
        parts: list[bytes] = []
        total = 0
        for chunk in _chunks(resp, limit, too_big):
            total += len(chunk)
            if total > limit:
                raise LimitError(too_big)
            parts.append(chunk)
        return b"".join(parts)
    length = resp.length
    if length is not None and length > limit:
        raise LimitError(f"{too_big}: Content-Length {length}")
    data = resp.read(limit + 1)
    if len(data) > limit:
        raise LimitError(too_big)
    if length is not None and len(data) < length:
        raise OSError(f"the pod list was cut short ({len(data)} of {length} bytes)")
    return data


def _lines(resp: http.client.HTTPResponse, limit: int) -> Iterator[dict[str, Any]]:
    """The watch events of a response, one JSON object per line; ends when the server ends the watch.
    An event longer than ``limit`` bytes is a :class:`LimitError`."""
    too_long = f"a watch event longer than {limit} bytes (max_event_bytes)"
    if resp.chunked:
        pending = b""
        for chunk in _chunks(resp, limit, too_long):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if len(pending) > limit or any(len(line) > limit for line in lines):
                raise LimitError(too_long)
            yield from (_event(line) for line in lines if line.strip())
        if pending.strip():
            raise StreamError("the watch stream ended in the middle of an event")
        return
    while True:  # not chunked: the body ends when the server closes the connection
        line = resp.readline(limit + 1)
        if not line:
            return
        if not line.endswith(b"\n"):
            if len(line) > limit:
                raise LimitError(too_long)
            raise OSError("the watch stream ended in the middle of an event")
        if line.strip():
            yield _event(line)


def _event(line: bytes) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StreamError(f"a watch event is not JSON: {exc}") from None
    except RecursionError:
        raise StreamError("a watch event is nested too deep to read") from None
    if not isinstance(event, dict):
        raise StreamError("a watch event is not a JSON object")
    return event
