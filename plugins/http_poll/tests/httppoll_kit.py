"""Test doubles for http_poll: a scriptable JSON API on 127.0.0.1 and a driver for the plugin classes.

(Named uniquely so that it never clashes with another plugin's test helpers
in one pytest run.)
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from falco_plugin import EndOfStream, Timeout
from http_poll.config import HttpPollConfig, HttpPollParams
from http_poll.plugin import HttpPollInstance, HttpPollPlugin
from http_poll.records import Envelope, decode

SERVER_THREAD = "fake-api"
"""The name of the fake API's threads, so that tests can count the plugin's threads apart."""

DEADLINE = 10.0
"""Longest any test waits for something that should happen within milliseconds."""

FAST = {
    "retries": 3,
    "backoff_initial": 0.01,
    "backoff_max": 0.02,
    "connect_timeout": 2.0,
    "read_timeout": 5.0,
}
"""Init config with retries that take milliseconds, not seconds."""


def record(n: int, second: int | None = None, **extra: Any) -> dict[str, Any]:
    """An audit-log record shaped like the ones of real APIs."""
    ts = f"2024-05-01T12:00:{(n if second is None else second):02d}Z"
    return {
        "id": f"evt-{n}",
        "published": ts,
        "action": "repo.delete" if n % 2 else "repo.create",
        "actor": {"login": f"user{n}", "type": "User"},
        "client": {"ip": f"203.0.113.{n}"},
        **extra,
    }


# -- TLS material ------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it (openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl not found")
    d = directory
    ext = d / "server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=http_poll test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.pem", "-days", "2", "-extfile", "server.ext"],
    ]  # fmt: skip
    for args in steps:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)
    return TlsFiles(d / "ca.pem", d / "server.pem", d / "server.key")


# -- the fake API ----------------------------------------------------------------------------


@dataclass
class Seen:
    """One request the fake API received."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Reply:
    """A scripted answer for one of the next requests (instead of the records)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False
    """Wait for ``FakeApi.release`` before answering (a slow server)."""
    trickle: float = 0.0
    """Send the body one byte at a time, this many seconds apart (a server that is slow but never silent)."""
    length: int | None = None
    """Content-Length to announce instead of the body's; with ``trickle``, spaces follow the body until
    that length is reached or the server stops."""


class FakeApi:
    """A JSON API listing ``records`` as ``{"data": [...]}``, ``page_size`` per page.

    * ``?since=T`` keeps records whose ``published`` is >= T (inclusive, as
      cursors must be for polls to overlap);
    * pages are linked with ``Link: <...>; rel="next"``;
    * ``script`` holds :class:`Reply` objects answered, in order, instead of
      the listing (errors, malformed bodies, slow responses);
    * every request is recorded in ``seen``.
    """

    def __init__(self, tls: TlsFiles | None = None, port: int = 0) -> None:
        self.records: list[dict[str, Any]] = []
        self.page_size: int | None = None
        self.script: deque[Reply] = deque()
        self.seen: list[Seen] = []
        self.release = threading.Event()
        self._stopping = threading.Event()
        self.link_override: str | None = None
        self.tls = tls
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/v1/audit"

    def start(self) -> FakeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                api._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that time out and hang up are part of the tests

        server = Server(("127.0.0.1", self.port), Handler)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls.cert, self.tls.key)
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=SERVER_THREAD, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def requests_to(self, path: str = "/v1/audit") -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == path]

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        threading.current_thread().name = SERVER_THREAD  # not one of the plugin's threads
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.seen.append(Seen(parts.path, query, {k.lower(): v for k, v in h.headers.items()}))
            reply = self.script.popleft() if self.script else None
        if reply is None:
            reply = self._listing(query)
        if reply.hold:
            self.release.wait(DEADLINE)
        try:
            h.send_response(reply.status)
            for k, v in reply.headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(reply.body) if reply.length is None else reply.length))
            h.end_headers()
            if reply.trickle:
                self._trickle(h, reply)
            else:
                h.wfile.write(reply.body)
        except OSError:
            pass  # the client gave up (timeout test)

    def _trickle(self, h: BaseHTTPRequestHandler, reply: Reply) -> None:
        for i in range(len(reply.body) if reply.length is None else reply.length):
            if self._stopping.wait(reply.trickle):
                return
            h.wfile.write(reply.body[i : i + 1] or b" ")
            h.wfile.flush()

    def _listing(self, query: dict[str, str]) -> Reply:
        with self._lock:
            rows = [r for r in self.records if "since" not in query or r["published"] >= query["since"]]
        page = int(query.get("page", "1"))
        size = self.page_size or max(len(rows), 1)
        chunk = rows[(page - 1) * size : page * size]
        headers = {"Content-Type": "application/json"}
        if page * size < len(rows):
            nxt = {**query, "page": str(page + 1)}
            headers["Link"] = f'<{self.url}?{urlencode(nxt)}>; rel="next", <{self.url}>; rel="first"'
        if self.link_override is not None:
            headers["Link"] = self.link_override
        return Reply(200, json.dumps({"data": chunk, "total": len(rows)}).encode(), headers)


def plugin_threads() -> list[threading.Thread]:
    """The live threads but the fake APIs': compare with a count taken before the plugin started."""
    return [t for t in threading.enumerate() if t.name != SERVER_THREAD]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait up to :data:`DEADLINE` for ``condition``."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- driving the plugin classes --------------------------------------------------------------


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


@dataclass(frozen=True)
class Delivered:
    """One event as the host receives it."""

    payload: bytes
    ts: int | None

    @property
    def envelope(self) -> Envelope:
        return decode(self.payload)

    @property
    def record(self) -> Any:
        return self.envelope.record


class Stream:
    """An open http_poll instance, driven the way a host drives it."""

    def __init__(self, config: dict[str, Any], params: dict[str, Any]) -> None:
        self.logs = ListHandler()
        self.plugin = HttpPollPlugin()
        self.plugin.log = logging.Logger("test.http_poll")
        self.plugin.log.addHandler(self.logs)
        self.plugin.init(HttpPollConfig.from_dict(config))
        self.instance: HttpPollInstance = self.plugin.open(HttpPollParams.from_dict(params))
        self.ended = False
        self.closed = False

    @property
    def stats(self) -> Any:
        return self.instance.stats

    def batch(self) -> list[Delivered]:
        """One next_batch call; [] for a timeout."""
        try:
            got = self.instance.next_batch()
        except Timeout:
            return []
        except EndOfStream:
            self.ended = True
            return []
        return [Delivered(e, None) if isinstance(e, bytes) else Delivered(e[0], e[1]) for e in got]

    def take(self, n: int) -> list[Delivered]:
        """Batches until ``n`` events came (or more, if a batch brings them)."""
        return self.collect(lambda got: len(got) >= n)

    def until_end(self) -> list[Delivered]:
        return self.collect(lambda got: self.ended)

    def until(self, condition: Callable[[], bool]) -> list[Delivered]:
        return self.collect(lambda got: condition())

    def collect(self, done: Callable[[list[Delivered]], bool]) -> list[Delivered]:
        got: list[Delivered] = []
        deadline = time.monotonic() + DEADLINE
        while not done(got):
            if self.ended or time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting; got {len(got)} events; logs: {self.logs.lines}")
            got += self.batch()
        return got

    def ids(self, events: list[Delivered]) -> list[str]:
        return [e.record["id"] for e in events]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.instance.close()
            self.plugin.destroy()


@dataclass
class HostRun:
    """What the C host printed for one run of the library."""

    proc: subprocess.CompletedProcess[str]
    events: list[dict[str, str]]

    @property
    def ok(self) -> bool:
        return self.proc.returncode == 0

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr
