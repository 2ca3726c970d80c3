"""k8s_parse: the Kubernetes pod of every syscall event's process.

How the pieces fit (each in its own module):

* :mod:`.watcher` lists and watches the pods of the API server on a worker
  of the async session, and turns each change into a ``k8s_pod`` async
  event (:mod:`.pods` is the model and the payload format);
* :meth:`K8sParsePlugin.parse_event` applies those events to the plugin's
  pod table (exported as ``k8s_pods``, keyed by pod uid), and on the events
  that start or change a process (clone/fork/vfork/clone3 and
  execve/execveat exits) reads the thread's cgroups from the host's
  ``threads`` table, finds the pod uid in them (:mod:`.cgroups`) and stores
  it in a column of its own there (``k8s_parse.pod_uid``);
* the fields read that column for the thread of the event: the pod uid and
  the container id come from the cgroups alone (a process in no pod has no
  value), the other fields from the pod table (a pod not known yet: no value);
* with ``initial_list_wait``, :meth:`K8sParsePlugin.start_async` holds
  Falco's start until the first pod list is in (bounded), and stamps those
  events with the time it was called, so that libsinsp delivers them before
  any syscall event captured meanwhile; at most ``emit_burst`` of them go
  while it waits (Falco takes no event then), the rest once it returned;
* pod events are paced (``emit_rate``, ``emit_burst``: the SDK's
  ``async_emit_rate``/``async_emit_burst``), because Falco 0.44 drops what its
  async queue cannot hold and tells no one;
* a capture file keeps it all: at capture open the existing threads are
  given their pod, :meth:`dump_state` writes every known pod at the start
  of a capture Falco records, and on replay those events rebuild the table.

Everything the host calls runs on its thread, so the pod table needs no lock
but for :meth:`dump_state`, which may run on another.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

from falco_plugin import (
    ASYNC_EVENT,
    BOOL,
    INT64,
    STRING,
    UINT64,
    AsyncPlugin,
    AsyncSession,
    CaptureListenPlugin,
    Counter,
    Emit,
    Entry,
    Event,
    ExtractPlugin,
    Field,
    Gauge,
    HostTable,
    ParsePlugin,
    PluginTable,
    Row,
    SubtableField,
    TableError,
    field,
    per_event,
)
from falco_plugin.params import ParamError

from .cgroups import PodCgroup, parse_cgroup
from .config import K8sParseConfig, WatchSettings, resolve
from .pods import Action, Pod, PodError, decode_change, encode_change
from .watcher import PodWatcher, WatchCounters

__all__ = ["K8sParsePlugin", "PodRow"]

PROCESS_EVENTS = {
    223: "clone",  # PPME_SYSCALL_CLONE_20_X
    225: "fork",  # PPME_SYSCALL_FORK_20_X
    227: "vfork",  # PPME_SYSCALL_VFORK_20_X
    335: "clone3",  # PPME_SYSCALL_CLONE3_X
    293: "execve",  # PPME_SYSCALL_EXECVE_19_X
    331: "execveat",  # PPME_SYSCALL_EXECVEAT_X
}
FORKS = (223, 225, 227, 335)
POD_EVENT = "k8s_pod"
NO_THREAD = (1 << 64) - 1


@dataclass(frozen=True)
class ThreadColumns:
    """The plugin's way into the host's ``threads`` table (accessors obtained at init)."""

    threads: HostTable[int]
    cgroups: SubtableField[int]
    cgroup_path: Field[str]
    pod_uid: Field[str]
    """Our column: the uid of the thread's pod, "" when it is in none."""
    container_id: Field[str]
    """Our column: the id of the thread's container, from its cgroup path."""
    looked: Field[bool]
    """Our column: the two above hold what the thread's cgroups say (so a thread in no pod is not
    read again at every extraction; fields cannot write to tables)."""


class PodRow(Row):
    """A row of the exported ``k8s_pods`` table: what other plugins may read of a pod."""

    name: str = ""
    namespace: str = ""
    ip: str = ""
    node: str = ""
    phase: str = ""
    owner_kind: str = ""
    owner_name: str = ""
    labels: str = ""
    """The kept labels as a JSON object."""


class K8sParsePlugin(AsyncPlugin, ParsePlugin, CaptureListenPlugin, ExtractPlugin):
    name = "k8s_parse"
    version = "0.2.0"
    description = "Kubernetes pod metadata for every syscall event, from a pod watcher and the process's cgroups"
    contact = "github.com/falcosecurity/plugins"

    async_events = (POD_EVENT,)
    async_event_sources = ("syscall",)
    parse_event_types = (ASYNC_EVENT, *PROCESS_EVENTS)
    parse_event_sources = ("syscall",)
    extract_event_sources = ("syscall",)

    watch_restarts = Counter("watch_restarts", "Reconnections of the pod watch after a failure")
    relists = Counter("relists", "Full pod lists after the first (410 Gone, unreadable events, resync)")
    pods_known = Gauge("pods_known", "Pods in the pod table", unsigned=True)
    events_parsed = Counter("events_parsed", "Events parsed (pod changes and process events)")
    lookup_misses = Counter("lookup_misses", "Extractions for a process in a pod the table does not know (yet)")
    pods_malformed = Counter("pods_malformed", "Pod objects from the API server skipped as malformed")
    pod_events_undelivered = Counter(
        "pod_events_undelivered", "Pod events the host did not take (queue full or refused), sent again later"
    )

    def init(self, config: K8sParseConfig) -> None:
        self.settings: WatchSettings = resolve(config)
        self.log.setLevel(self.settings.log_level)
        # Read by the SDK when Falco sets the async handler (after init): the pace of every emit.
        self.async_emit_rate = self.settings.emit_rate or None
        self.async_emit_burst = self.settings.emit_burst
        if not self.settings.api_server:
            self.log.info("no api_server and not in a cluster: pods come only from capture files")
        self.pods: dict[str, Pod] = {}
        self.mirrors: dict[str, str] = {}  # static pod uid (in cgroups) -> the mirror pod's uid
        self.lock = threading.Lock()  # dump_state may read the pods from another thread
        self.watcher: PodWatcher | None = None

        self.cols: ThreadColumns | None = None
        self.table: PluginTable[str, PodRow] | None = None
        try:
            threads = self.tables.get("threads", INT64)
        except TableError as exc:
            # Falco always offers the threads table; a host that offers none (the SDK's C host, a
            # fuzzer) still gets a working plugin, whose fields have no value.
            self.log.warning("no thread table (%s): processes cannot be tied to pods", exc)
            return
        # With a threads table, anything missing below is a host this plugin does not fit: init fails.
        cgroups = threads.subtable("cgroups", UINT64)
        self.cols = ThreadColumns(
            threads=threads,
            cgroups=cgroups,
            cgroup_path=cgroups.field("second", STRING),  # libsinsp's cgroups are (controller, path) pairs
            pod_uid=threads.add_field("k8s_parse.pod_uid", STRING),
            container_id=threads.add_field("k8s_parse.container_id", STRING),
            looked=threads.add_field("k8s_parse.cgroups_read", BOOL),
        )
        self.table = self.tables.export("k8s_pods", STRING, PodRow)

    # -- the watcher -------------------------------------------------------------------

    def start_async(self, session: AsyncSession) -> None:
        if not self.settings.api_server:
            return
        # While start waits for the first list, its pod events carry the time the wait began:
        # libsinsp hands out an async event before any captured event with a later timestamp,
        # so the processes of the first captured events find their pods.
        started: list[int | None] = [time.time_ns() if self.settings.initial_list_wait > 0 else None]
        # Falco takes no event from its queue until start returns, and drops (silently) what does
        # not fit: while start waits, at most emit_burst pod events go. The one that would exceed
        # it ends the wait and waits itself for start to return; the rest follow at emit_rate.
        room = [self.settings.emit_burst]
        listed = threading.Event()  # the first list is in, or the room while waiting is used up
        released = threading.Event()  # start returned: Falco takes events

        def sink(action: Action, pod: Pod) -> bool:
            if started[0] is not None and not released.is_set():
                if room[0] == 0:
                    listed.set()
                    while not released.wait(0.1):
                        if session.stopping.is_set():
                            return False
                else:
                    room[0] -= 1
            # False (dropped: the host's queue is full, or the session ended) and an exception (refused)
            # both leave the pod undelivered: the watcher sends it again after a pause.
            return session.emit(POD_EVENT, encode_change(action, pod), ts=started[0]) is not False

        counters = WatchCounters(self.watch_restarts, self.relists, self.pods_malformed, self.pod_events_undelivered)
        self.watcher = PodWatcher(self.settings, sink, session.stopping, self.log, counters, listed=listed)
        session.spawn(self.watcher.run, name="pod-watcher")
        wait = self.settings.initial_list_wait
        if wait > 0:
            if not listed.wait(wait):
                self.log.warning(
                    "no pod list from %s within initial_list_wait (%gs): going on without it; the pods "
                    "get their fields as the API server answers",
                    self.settings.api_server,
                    wait,
                )
            elif room[0] == 0:
                self.log.info(
                    "the first pod list is larger than emit_burst (%d): Falco starts with those, the others "
                    "follow at emit_rate (%g/s)",
                    self.settings.emit_burst,
                    self.settings.emit_rate,
                )
            started[0] = None
        released.set()

    def stop_async(self, session: AsyncSession) -> None:
        if self.watcher is not None:
            self.watcher.interrupt()

    def dump_state(self, emit: Emit) -> None:
        with self.lock:
            pods = list(self.pods.values())
        for pod in pods:
            emit(POD_EVENT, encode_change("state", pod))

    # -- parsing -----------------------------------------------------------------------

    def parse_event(self, event: Event) -> None:
        etype = event.type
        if etype == ASYNC_EVENT:
            if event.async_name == POD_EVENT:
                self.events_parsed.inc()
                self.apply(event.payload)
            return
        self.events_parsed.inc()
        self.assign(event.tid)
        if etype in FORKS:
            try:
                child = event.params.res  # the parent's exit names the child, whose entry the host has made
            except ParamError as exc:
                self.log.debug("clone exit without a readable res: %s", exc)
                return
            if isinstance(child, int) and child > 0:
                self.assign(child)

    def apply(self, payload: bytes) -> None:
        """Apply one ``k8s_pod`` event to the pod table; a malformed one is logged and skipped
        (a capture may hold events of a newer plugin version)."""
        try:
            change = decode_change(payload)
        except PodError as exc:
            self.log.warning("ignoring a k8s_pod event: %s", exc)
            return
        pod = change.pod
        with self.lock:
            if change.action == "deleted":
                self.pods.pop(pod.uid, None)
                self.mirrors.pop(pod.mirror_uid, None)
                if self.table is not None:
                    self.table.rows.pop(pod.uid, None)
            else:
                self.pods[pod.uid] = pod
                if pod.mirror_uid:
                    self.mirrors[pod.mirror_uid] = pod.uid
                self.export_row(pod)
            self.pods_known.set(len(self.pods))

    def export_row(self, pod: Pod) -> None:
        if self.table is not None:
            self.table[pod.uid] = PodRow(
                name=pod.name,
                namespace=pod.namespace,
                ip=pod.ip,
                node=pod.node,
                phase=pod.phase,
                owner_kind=pod.owner_kind,
                owner_name=pod.owner_name,
                labels=json.dumps(pod.labels, sort_keys=True),
            )

    def assign(self, tid: int) -> None:
        """Store the pod uid and container id of thread ``tid`` in its ``threads`` columns."""
        cols = self.cols
        entry = None if cols is None else cols.threads.get(tid)
        if cols is None or entry is None:
            return
        found = self.cgroup_pod(entry)
        uid, container = (found.pod_uid, found.container_id) if found else ("", "")
        if entry[cols.pod_uid] != uid:
            entry[cols.pod_uid] = uid
        if entry[cols.container_id] != container:
            entry[cols.container_id] = container
        if not entry[cols.looked]:
            entry[cols.looked] = True

    def cgroup_pod(self, entry: Entry) -> PodCgroup | None:
        """The pod (and container) in the thread's cgroups: the first entry that names both, else
        the first that names a pod (as :func:`.cgroups.pod_of_cgroups`), reading no entry past it."""
        assert self.cols is not None
        path = self.cols.cgroup_path
        found: list[PodCgroup] = []

        def look(cg: Entry) -> bool:
            pod = parse_cgroup(cg[path])
            if pod is None:
                return True
            if pod.container_id:
                found.insert(0, pod)
                return False  # every controller's path names the same pod and container
            found.append(pod)
            return True

        entry[self.cols.cgroups].for_each(look)
        return found[0] if found else None

    # -- capture listening -------------------------------------------------------------

    def capture_open(self) -> None:
        """Give the threads that existed before the capture (the host's /proc scan, or the
        capture file's process list) their pod."""

        cols = self.cols
        if cols is None:
            return

        def backfill(entry: Entry) -> bool:
            found = self.cgroup_pod(entry)
            entry[cols.pod_uid] = found.pod_uid if found else ""
            entry[cols.container_id] = found.container_id if found else ""
            entry[cols.looked] = True
            return True

        cols.threads.for_each(backfill)

    # -- extraction --------------------------------------------------------------------

    @per_event
    def identity(self, event: Event) -> tuple[str, str] | None:
        """The pod uid and container id in the cgroups of the event's thread, or ``None`` (in no pod).

        These need no pod table: they hold from the first event of a pod's process, before (or
        without) the API server."""
        cols = self.cols
        if event.tid == NO_THREAD or cols is None:
            return None
        entry = cols.threads.get(event.tid)
        if entry is None:
            return None
        uid, container = entry[cols.pod_uid], entry[cols.container_id]
        if not uid:
            if entry[cols.looked]:
                return None  # in no pod, as its cgroups said at its last clone/execve
            # A thread the parser has not seen start (no clone/execve since the capture opened
            # and no backfill): its cgroups still tell.
            found = self.cgroup_pod(entry)
            if found is None:
                return None
            uid, container = found.pod_uid, found.container_id
        return uid, container

    @per_event
    def pod_of(self, event: Event) -> tuple[Pod, str] | None:
        """The known pod of the event's thread and the thread's container id, or ``None``."""
        ident = self.identity(event)
        if ident is None:
            return None
        uid, container = ident
        pod = self.pods.get(uid) or self.pods.get(self.mirrors.get(uid, ""))
        if pod is None:
            self.lookup_misses.inc()
            return None
        return pod, container

    def _attr(self, event: Event, name: str) -> str | None:
        found = self.pod_of(event)
        return None if found is None else str(getattr(found[0], name))

    @field("k8s_parse.pod.name", "Name of the pod of the process")
    def pod_name(self, event: Event) -> str | None:
        return self._attr(event, "name")

    @field(
        "k8s_parse.pod.uid",
        "UID of the pod of the process, from its cgroups (also before the API server answered; for a static "
        "pod, its mirror pod's uid once known)",
    )
    def pod_uid_field(self, event: Event) -> str | None:
        ident = self.identity(event)
        if ident is None:
            return None
        mirror = self.mirrors.get(ident[0])
        return mirror if mirror is not None and mirror in self.pods else ident[0]

    @field("k8s_parse.pod.namespace", "Namespace of the pod of the process")
    def pod_namespace(self, event: Event) -> str | None:
        return self._attr(event, "namespace")

    @field("k8s_parse.pod.ip", "First IP address of the pod of the process")
    def pod_ip(self, event: Event) -> str | None:
        found = self.pod_of(event)
        return None if found is None or not found[0].ip else found[0].ip

    @field("k8s_parse.pod.labels", "Labels of the pod of the process, as key:value")
    def pod_labels(self, event: Event) -> list[str] | None:
        found = self.pod_of(event)
        return None if found is None else [f"{k}:{v}" for k, v in sorted(found[0].labels.items())]

    @field("k8s_parse.pod.label", "Value of one label of the pod of the process: k8s_parse.pod.label[app]")
    def pod_label(self, event: Event, key: str) -> str | None:
        found = self.pod_of(event)
        return None if found is None else found[0].labels.get(key)

    @field("k8s_parse.pod.owner.kind", "Kind of the controller owning the pod (ReplicaSet, DaemonSet, Job...)")
    def owner_kind(self, event: Event) -> str | None:
        found = self.pod_of(event)
        return None if found is None or not found[0].owner_kind else found[0].owner_kind

    @field("k8s_parse.pod.owner.name", "Name of the controller owning the pod")
    def owner_name(self, event: Event) -> str | None:
        found = self.pod_of(event)
        return None if found is None or not found[0].owner_name else found[0].owner_name

    @field("k8s_parse.node.name", "Node the pod of the process runs on")
    def node_name(self, event: Event) -> str | None:
        found = self.pod_of(event)
        return None if found is None or not found[0].node else found[0].node

    @field("k8s_parse.container.id", "ID of the container of the process, from its cgroups (64 hex digits)")
    def container_id_field(self, event: Event) -> str | None:
        ident = self.identity(event)
        return None if ident is None or not ident[1] else ident[1]

    @field("k8s_parse.container.name", "Name of the container of the process, matched by the id in its cgroup")
    def container_name(self, event: Event) -> str | None:
        found = self.pod_of(event)
        return None if found is None else found[0].container_name(found[1])
