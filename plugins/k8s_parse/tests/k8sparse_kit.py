"""Test doubles for k8s_parse: a loopback Kubernetes API server and event builders.

:class:`FakeKube` speaks the parts of the API server protocol the watcher
uses, as a real one does: pod lists with ``resourceVersion`` and
``limit``/``continue`` chunking over a consistent snapshot, ``fieldSelector
=spec.nodeName=...``, watches as chunked newline-delimited JSON events from a
resourceVersion (replaying history, then live), bookmarks, ``410 Gone`` for a
compacted resourceVersion (as a status or as an ``ERROR`` event), bearer
token checks and TLS. Faults are scripted per request (:attr:`FakeKube.faults`).

(Named uniquely so that it never clashes with another plugin's test helpers
in one pytest run.)
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from falco_plugin_tools.host import HostEvent, PluginHandle
from falco_plugin_tools.host.tables import HostEntry, TableRegistry

DEADLINE = 10.0
"""Longest any test waits for something that should happen within milliseconds."""

FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "connect_timeout": 2.0, "read_timeout": 5.0}
"""Init config with reconnections that take milliseconds, not seconds."""


def wait_for(cond: Callable[[], Any], timeout: float = DEADLINE, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


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
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=k8s_parse test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.pem", "-days", "2", "-extfile", "server.ext"],
    ]  # fmt: skip
    for args in steps:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)
    return TlsFiles(d / "ca.pem", d / "server.pem", d / "server.key")


# -- pods ------------------------------------------------------------------------------------


def pod_object(
    name: str,
    namespace: str = "default",
    *,
    uid: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    node: str = "node-1",
    ip: str = "10.0.0.5",
    owner: tuple[str, str] | None = ("ReplicaSet", "web-5d9c"),
    containers: dict[str, str] | None = None,
    phase: str = "Running",
) -> dict[str, Any]:
    """A v1 Pod as the API server returns it (the fields the plugin reads, and some it ignores)."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid or str(uuid.uuid4()),
        "labels": labels if labels is not None else {"app": name},
        "annotations": annotations or {},
        "creationTimestamp": "2024-05-01T12:00:00Z",
    }
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": str(uuid.uuid4()), "controller": True}
        ]
    statuses = [
        {"name": n, "containerID": f"containerd://{cid}", "ready": True, "image": "busybox"}
        for n, cid in (containers or {}).items()
    ]
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": n, "image": "busybox"} for n in containers or {}]},
        "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}], "containerStatuses": statuses},
    }


def container_id(n: int) -> str:
    return f"{n:064x}"


# -- the fake API server -----------------------------------------------------------------------


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    auth: str


@dataclass
class Fault:
    """What to do with one of the next requests of a kind (``list`` or ``watch``) instead of answering."""

    kind: str
    action: str
    """``status`` (answer ``status`` with a Status body), ``gate`` (the same, once :attr:`FakeKube.gate`
    is set), ``hang`` (never answer), ``bad_json``
    (a watch whose first event line is not JSON; a list body that is not JSON), ``cut`` (a watch cut
    after ``after`` events, without the end of the chunked body), ``error_event`` (an ERROR watch event
    with ``status``), ``expire`` (a list continue token rejected with 410), ``respond`` (:attr:`respond`
answers)."""
    status: int = 500
    after: int = 0
    respond: Responder | None = None
    """For ``respond``: answers the request (a hostile :data:`Responder`)."""


@dataclass
class _Watch:
    events: deque[bytes] = field(default_factory=deque)
    cond: threading.Condition = field(default_factory=threading.Condition)
    end: str = ""
    """``close``: end the watch as the server does at timeoutSeconds; ``cut``: drop the connection."""


class FakeKube:
    """An API server for pods on 127.0.0.1 (http, or https with ``tls``)."""

    def __init__(self, tls: TlsFiles | None = None) -> None:
        self.tls = tls
        self.lock = threading.RLock()
        self.pods: dict[str, dict[str, Any]] = {}  # uid -> object, in creation order
        self.rv = 100
        self.history: list[tuple[int, str, dict[str, Any]]] = []
        self.compacted = 0
        """Watches from a resourceVersion below this get 410 Gone."""
        self.snapshots: dict[str, list[dict[str, Any]]] = {}
        self.faults: deque[Fault] = deque()
        self.hostile: dict[str, Responder] = {}
        """``kind`` (``list`` or ``watch``) -> a :data:`Responder` answering every such request
        (after the scripted faults): the hostile behaviours below."""
        self.gate = threading.Event()
        """What a ``gate`` fault waits for before it answers."""
        self.seen: list[Seen] = []
        self.token: str | None = None
        self.watches: list[_Watch] = []
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # -- state -------------------------------------------------------------------------------

    def _record(self, kind: str, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.history.append((self.rv, kind, json.loads(json.dumps(obj))))
        line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
        for w in list(self.watches):
            with w.cond:
                w.events.append(line)
                w.cond.notify_all()

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.pods[obj["metadata"]["uid"]] = obj
            self._record("ADDED", obj)
        return obj

    def modify(self, uid: str, change: Callable[[dict[str, Any]], None]) -> None:
        with self.lock:
            obj = self.pods[uid]
            change(obj)
            self._record("MODIFIED", obj)

    def delete(self, uid: str) -> None:
        with self.lock:
            obj = self.pods.pop(uid)
            self._record("DELETED", obj)

    def bookmark(self) -> None:
        """A BOOKMARK event to every open watch (the current resourceVersion)."""
        with self.lock:
            line = json.dumps(
                {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": str(self.rv)}}}
            ).encode()
            for w in list(self.watches):
                with w.cond:
                    w.events.append(line + b"\n")
                    w.cond.notify_all()

    def end_watches(self, how: str = "close") -> None:
        """End every open watch: ``close`` as at timeoutSeconds, ``cut`` by dropping the connection."""
        with self.lock:
            for w in list(self.watches):
                with w.cond:
                    w.end = how
                    w.cond.notify_all()

    def compact(self) -> None:
        """Forget history: resuming from any resourceVersion seen so far is now 410 Gone."""
        with self.lock:
            self.rv += 1
            self.compacted = self.rv

    def requests(self, kind: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if ("watch" in s.query) == (kind == "watch")]

    # -- serving -----------------------------------------------------------------------------

    def start(self) -> FakeKube:
        kube = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                try:
                    kube._handle(self)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        server = Server(("127.0.0.1", 0), Handler)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls.cert, self.tls.key)
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for w in list(self.watches):
            with w.cond:
                w.cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _fault(self, kind: str, query: dict[str, str]) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.kind == kind and (f.action != "expire" or "continue" in query):
                    self.faults.remove(f)
                    return f
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            self.seen.append(Seen(parts.path, query, h.headers.get("Authorization", "")))
        if parts.path != "/api/v1/pods":
            return self._status(h, 404, "NotFound", f"no route {parts.path}")
        if self.token is not None and h.headers.get("Authorization") != f"Bearer {self.token}":
            return self._status(h, 401, "Unauthorized", "Unauthorized")
        kind = "watch" if query.get("watch") in ("1", "true") else "list"
        fault = self._fault(kind, query)
        if fault is not None and fault.respond is not None:
            return fault.respond(self, h, query)
        if fault is None and kind in self.hostile:
            return self.hostile[kind](self, h, query)
        if fault is not None and fault.action == "hang":
            self._stopping.wait()
            return None
        if fault is not None and fault.action == "gate":
            self.gate.wait(DEADLINE)
            return self._status(h, fault.status, "Expired", f"scripted {fault.status} after the gate")
        if fault is not None and fault.action == "status":
            return self._status(h, fault.status, "InternalError", f"scripted {fault.status}")
        node = query.get("fieldSelector", "").removeprefix("spec.nodeName=")
        if kind == "list":
            return self._list(h, query, node, fault)
        return self._watch(h, query, node, fault)

    def _status(self, h: BaseHTTPRequestHandler, code: int, reason: str, message: str) -> None:
        body = json.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": message,
                "reason": reason,
                "code": code,
            }
        ).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _json(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _list(self, h: BaseHTTPRequestHandler, query: dict[str, str], node: str, fault: Fault | None) -> None:
        if fault is not None and fault.action == "bad_json":
            return self._json(h, b'{"kind": "PodList", "items": [')
        limit = int(query.get("limit", "0") or 0)
        token = query.get("continue", "")
        with self.lock:
            if token:
                if fault is not None and fault.action == "expire":
                    return self._status(h, 410, "Expired", "The provided continue parameter is too old")
                state = json.loads(base64.b64decode(token))
                snap_rv, offset = state["rv"], state["offset"]
                items = self.snapshots[snap_rv]
            else:
                snap_rv, offset = str(self.rv), 0
                pods = [p for p in self.pods.values() if not node or p["spec"]["nodeName"] == node]
                items = json.loads(json.dumps(pods))
                self.snapshots[snap_rv] = items
        page = items[offset : offset + limit] if limit else items[offset:]
        meta: dict[str, Any] = {"resourceVersion": snap_rv}
        if limit and offset + limit < len(items):
            meta["continue"] = base64.b64encode(json.dumps({"rv": snap_rv, "offset": offset + limit}).encode()).decode()
        self._json(h, json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": page}).encode())

    def _watch(self, h: BaseHTTPRequestHandler, query: dict[str, str], node: str, fault: Fault | None) -> None:
        since = int(query.get("resourceVersion", "0") or 0)
        timeout = float(query.get("timeoutSeconds", "300"))
        with self.lock:
            if since and since < self.compacted and (fault is None or fault.action != "error_event"):
                return self._status(h, 410, "Expired", f"too old resource version: {since} ({self.compacted})")
            w = _Watch()
            for rv, kind, obj in self.history:
                if rv > since and (not node or obj["spec"]["nodeName"] == node):
                    w.events.append(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
            self.watches.append(w)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def chunk(data: bytes) -> None:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()

        try:
            if fault is not None and fault.action == "error_event":
                status = {"kind": "Status", "status": "Failure", "code": fault.status, "message": "too old"}
                chunk(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
                chunk(b"")
                return
            if fault is not None and fault.action == "bad_json":
                chunk(b'{"type": "ADDED", "object": {nope\n')
                chunk(b"")
                return
            sent = 0
            end = time.monotonic() + timeout
            while not self._stopping.is_set():
                with w.cond:
                    while not w.events and not w.end and not self._stopping.is_set() and time.monotonic() < end:
                        w.cond.wait(0.05)
                    lines = list(w.events)
                    w.events.clear()
                    how = w.end
                if how == "cut":
                    h.connection.shutdown(socket.SHUT_RDWR)
                    return
                if not lines and (how == "close" or time.monotonic() >= end):
                    break
                for line in lines:  # what is queued goes out before the end, as with a real server
                    ev = json.loads(line)
                    if node and ev["type"] != "BOOKMARK" and ev["object"]["spec"]["nodeName"] != node:
                        continue
                    if ev["type"] == "BOOKMARK" and query.get("allowWatchBookmarks") != "true":
                        continue
                    if fault is not None and fault.action == "cut" and sent >= fault.after:
                        h.connection.shutdown(socket.SHUT_RDWR)  # mid-stream, no terminating chunk
                        return
                    chunk(line)
                    sent += 1
            chunk(b"")
        finally:
            with self.lock:
                self.watches.remove(w)


# -- a hostile API server: answers a real one never gives ---------------------------------------

Responder = Callable[[FakeKube, BaseHTTPRequestHandler, dict[str, str]], None]
"""Answers one request in place of :class:`FakeKube`'s protocol (:attr:`FakeKube.hostile`)."""


def always_gone(kube: FakeKube, h: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
    """410 Gone, whatever the resourceVersion: the storm of a server that lost its watch cache."""
    kube._status(h, 410, "Expired", "too old resource version")


def nested(depth: int) -> bytes:
    """Valid JSON nested ``depth`` arrays deep."""
    return b"[" * depth + b"]" * depth


def raw(head: bytes, body: bytes, *, hold: bool = False) -> Responder:
    """A 200 with the header lines ``head`` and the bytes ``body`` as they are; with ``hold`` the
    connection then stays open (until the server stops), so that a reader that wants more hangs."""

    def respond(kube: FakeKube, h: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + head + b"\r\n" + body)
        h.wfile.flush()
        if hold:
            kube._stopping.wait()
        h.close_connection = True

    return respond


def list_body(items: list[Any], rv: str = "1", token: str = "") -> bytes:
    meta = {"resourceVersion": rv, **({"continue": token} if token else {})}
    return json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": items}).encode()


def framed(body: bytes, how: str) -> Responder:
    """A 200 carrying ``body`` as ``content-length``, ``chunked`` (64 kB chunks) or ``until-close``."""
    if how == "content-length":
        return raw(b"Content-Length: %d\r\n" % len(body), body)
    if how == "chunked":
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(c), c) for c in (body[i : i + 65536] for i in range(0, len(body), 65536))
        )
        return raw(b"Transfer-Encoding: chunked\r\n", chunks + b"0\r\n\r\n")
    assert how == "until-close"
    return raw(b"Connection: close\r\n", body)


def endless_list(per_page: int) -> Responder:
    """Pages of ``per_page`` new pods, each with a continue token to one more page, for ever."""

    def respond(kube: FakeKube, h: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        n = int(query.get("continue") or 0)
        page = [pod_object(f"endless-{n}-{i}") for i in range(per_page)]
        kube._json(h, list_body(page, token=str(n + 1)))

    return respond


# -- events for the host -----------------------------------------------------------------------

HEADER = struct.Struct("<QQIHI")
CLONE_20_X = 223
EXECVE_19_X = 293
OPEN_X = 3


def syscall_event(etype: int, tid: int, params: list[bytes] | None = None, ts: int = 1) -> bytes:
    """A syscall event with ``params`` (u16 lengths, as libscap writes them)."""
    params = params or []
    lens = struct.pack(f"<{len(params)}H", *map(len, params))
    body = lens + b"".join(params)
    return HEADER.pack(ts, tid, HEADER.size + len(body), etype, len(params)) + body


def clone_exit(tid: int, res: int) -> bytes:
    """A clone exit (``PPME_SYSCALL_CLONE_20_X``): ``res`` is the child's tid in the parent, 0 in the child.
    Only ``res`` is filled; the other 20 parameters are empty, which the plugin does not read."""
    return syscall_event(CLONE_20_X, tid, [struct.pack("<q", res)] + [b""] * 20)


# -- a host with the plugin ----------------------------------------------------------------------


class Node:
    """One host with the plugin: its ``threads`` table, the plugin, and the event stream.

    ``pump()`` feeds the async events the plugin emitted back into its parser,
    as libsinsp does with async events in the live stream.
    """

    def __init__(self, plugin: PluginHandle, registry: TableRegistry) -> None:
        self.plugin = plugin
        self.registry = registry
        self.numbers = itertools.count(1)
        self.changes: list[dict[str, Any]] = []
        """Every k8s_pod payload pumped so far, decoded."""

    @property
    def threads(self) -> Any:
        return self.registry["threads"]

    def thread(self, tid: int, cgroups: list[str], comm: str = "sh") -> HostEntry:
        entry = self.threads.add(tid, tid=tid, pid=tid, comm=comm)
        for i, path in enumerate(cgroups):
            subsys, _, p = path.rpartition("=")
            entry["cgroups"].add(i, first=subsys, second=p)
        return entry

    def event(self, raw: bytes) -> HostEvent:
        return HostEvent(raw, num=next(self.numbers), source="syscall")

    def parse(self, raw: bytes) -> HostEvent:
        ev = self.event(raw)
        self.plugin.parse(ev)
        return ev

    def pump(self, until: Callable[[], bool] | None = None, timeout: float = DEADLINE) -> int:
        """Parse the async events emitted so far; with ``until``, keep waiting for more until it holds."""
        n = 0
        end = time.monotonic() + timeout
        while True:
            for ev in self.plugin.async_events.drain():
                self.changes.append(json.loads(ev.payload))
                self.parse(ev.raw)
                n += 1
            if until is None or until():
                return n
            if time.monotonic() > end:
                raise AssertionError(f"timed out pumping async events ({n} so far: {self.changes[-3:]})")
            time.sleep(0.01)

    def fields(self, ev: HostEvent, *names: str) -> dict[str, Any]:
        return self.plugin.extract_many(ev, list(names))

    def pods(self) -> set[str]:
        return {r["pod"]["name"] for r in self.changes}
