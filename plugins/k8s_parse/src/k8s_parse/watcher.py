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
   compared with what was known: only new, changed and vanished pods are
   reported, so no pod is lost or reported twice.

Failures (a refused connection, a timeout, a 5xx, a 401 after a token
rotated badly) are logged and retried with a capped exponential backoff
with jitter; the watcher never gives up and never blocks its stop for long:
:meth:`PodWatcher.interrupt` shuts the open socket down.
"""

from __future__ import annotations

import errno
import http.client
import json
import logging
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from .config import WatchSettings
from .pods import Action, Pod, PodError

__all__ = ["ApiClient", "ApiError", "GoneError", "PodWatcher", "StreamError", "backoff_delay"]

PODS_PATH = "/api/v1/pods"
MAX_ERROR_BODY = 64 * 1024


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status


class GoneError(ApiError):
    """410: the resourceVersion (or continue token) is too old; relist."""


class StreamError(Exception):
    """A response that cannot be read as the protocol says: relist, since events may be missing."""


class StoppedError(Exception):
    """The watcher was asked to stop while it waited."""


class CounterLike(Protocol):
    def inc(self, n: int = 1) -> None: ...


Sink = Callable[[Action, Pod], None]


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
        except (OSError, UnicodeDecodeError) as exc:
            raise ApiError(0, f"cannot read token_file {path}: {exc}") from None

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
    (``known``, for relists) is touched by that thread only.
    """

    def __init__(
        self,
        settings: WatchSettings,
        sink: Sink,
        stopping: threading.Event,
        log: logging.Logger,
        restarts: CounterLike,
        relists: CounterLike,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.stopping = stopping
        self.log = log
        self.restarts = restarts
        self.relists = relists
        self.client = ApiClient(settings, stopping)
        self.known: dict[str, Pod] = {}
        self.resource_version = ""
        self.lists = 0
        self._listed_at = 0.0
        self._progress = False  # this round listed or applied something: a failure after it starts a new series

    def interrupt(self) -> None:
        self.client.interrupt()

    def _selector(self) -> dict[str, str]:
        return {"fieldSelector": f"spec.nodeName={self.settings.node_name}"} if self.settings.node_name else {}

    # -- the loop --------------------------------------------------------------

    def run(self) -> None:
        need_list = True
        failures = 0
        while not self.stopping.is_set():
            self._progress = False
            try:
                if need_list or self._resync_due():
                    self._list()
                    need_list = False
                self._watch()
                failures = 0
                continue  # the server ended the watch: resume from the last resourceVersion at once
            except StoppedError:
                return
            except GoneError as exc:
                need_list = True
                failures = 0 if self._progress else failures
                self.log.info("pod watch: %s; relisting", exc)
                if failures == 0:  # one immediate relist; repeated 410s back off like any failure
                    failures = 1
                    continue
            except StreamError as exc:
                need_list = True
                failures = 0 if self._progress else failures
                self._failed(failures, f"unreadable response ({exc}); relisting")
            except (OSError, ApiError, http.client.HTTPException) as exc:
                if self.stopping.is_set():
                    return
                failures = 0 if self._progress else failures
                self._failed(failures, self._describe(exc))
            finally:
                self.client.close()
            failures += 1
            self.restarts.inc()
            if self.stopping.wait(backoff_delay(failures, self.settings.backoff_initial, self.settings.backoff_max)):
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
        return f"{type(exc).__name__}: {exc}"

    def _resync_due(self) -> bool:
        period = self.settings.resync_period
        return period > 0 and time.monotonic() - self._listed_at >= period

    # -- list ------------------------------------------------------------------

    def _list(self) -> None:
        pods: dict[str, Pod] = {}
        token = ""
        version = ""
        while True:
            query = {"limit": str(self.settings.page_size), **self._selector()}
            if token:
                query["continue"] = token
            doc = self._read_json(self.client.get(PODS_PATH, query))
            self.client.close()
            meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
            items = doc.get("items")
            if not isinstance(items, list) or not isinstance(meta, dict):
                raise StreamError("a pod list without items")
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
            self.relists.inc()
        self._listed_at = time.monotonic()
        # Report the difference with what was known: a relist must neither lose nor repeat a pod.
        for uid, pod in pods.items():
            old = self.known.get(uid)
            if old is None:
                self.sink("added", pod)
            elif not old.same_as(pod):
                self.sink("modified", pod)
        for uid, pod in self.known.items():
            if uid not in pods:
                self.sink("deleted", pod)
        self.known = pods
        self.resource_version = version
        self._progress = True
        self.log.debug("pod list: %d pods at resourceVersion %s", len(pods), version)

    def _read_json(self, resp: http.client.HTTPResponse) -> dict[str, Any]:
        try:
            doc = json.loads(resp.read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise StreamError(f"the pod list is not JSON: {exc}") from None
        except http.client.IncompleteRead as exc:
            raise OSError(f"the pod list was cut short: {exc}") from None
        if not isinstance(doc, dict):
            raise StreamError("the pod list is not a JSON object")
        return doc

    def _pod(self, obj: Any) -> Pod | None:
        try:
            return Pod.from_api(obj, self.settings.labels, self.settings.annotations)
        except PodError as exc:
            self.log.warning("pod watch: skipping a malformed pod: %s", exc)
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
        resp = self.client.get(PODS_PATH, query)
        for event in _lines(resp):
            self._apply(event)
            if self.stopping.is_set():
                raise StoppedError

    def _apply(self, event: dict[str, Any]) -> None:
        self._progress = True
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
            if self.known.pop(pod.uid, None) is not None:
                self.sink("deleted", pod)
            return
        old = self.known.get(pod.uid)
        self.known[pod.uid] = pod
        if old is not None and old.same_as(pod):
            return  # nothing the plugin keeps has changed (most status updates), or a duplicate
        self.sink("added" if old is None else "modified", pod)


MAX_EVENT = 16 * 1024 * 1024
"""Longest watch event line accepted (a pod object is a few kB; this is a broken stream)."""


def _chunks(resp: http.client.HTTPResponse) -> Iterator[bytes]:
    """The chunks of a chunked body, read off the connection here rather than by http.client,
    which does not tell a body cut between two chunks from one that ended properly."""
    fp = resp.fp
    if fp is None:
        return
    while True:
        line = fp.readline(1024)
        if not line.endswith(b"\n"):
            raise OSError("the watch stream was cut between two chunks")
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise StreamError(f"a bad chunk size line {line[:40]!r}") from None
        if size == 0:
            while fp.readline(1024).strip():  # trailers
                pass
            return
        if size > MAX_EVENT:
            raise StreamError(f"a chunk of {size} bytes")
        data = fp.read(size + 2)
        if len(data) != size + 2:
            raise OSError("the watch stream was cut inside a chunk")
        yield data[:-2]


def _lines(resp: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    """The watch events of a response, one JSON object per line; ends when the server ends the watch."""
    if resp.chunked:
        pending = b""
        for chunk in _chunks(resp):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if len(pending) > MAX_EVENT:
                raise StreamError(f"a watch event longer than {MAX_EVENT} bytes")
            yield from (_event(line) for line in lines if line.strip())
        if pending.strip():
            raise StreamError("the watch stream ended in the middle of an event")
        return
    while True:  # not chunked: the body ends when the server closes the connection
        line = resp.readline(MAX_EVENT)
        if not line:
            return
        if not line.endswith(b"\n"):
            raise OSError("the watch stream ended in the middle of an event")
        if line.strip():
            yield _event(line)


def _event(line: bytes) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StreamError(f"a watch event is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise StreamError("a watch event is not a JSON object")
    return event
