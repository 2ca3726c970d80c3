"""The built library in the SDK's Python host: watch -> async event -> parse -> thread column -> field.

The host here does what libsinsp does around a plugin: a ``threads`` table
(filled by the test, or from a real capture), async events fed back into the
parser, capture open, dump_state, metrics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.host import HostError, HostEvent, PluginLibrary
from falco_plugin_tools.host.scap import ScapReader
from falco_plugin_tools.host.tables import ST, FieldDef, HostTable, TableRegistry, TableSchema, sync_threads
from falco_plugin_tools.host.threads import ThreadTable
from k8sparse_kit import (
    CLONE_20_X,
    EXECVE_19_X,
    OPEN_X,
    FakeKube,
    Fault,
    Node,
    clone_exit,
    container_id,
    framed,
    nested,
    pod_object,
    syscall_event,
    wait_for,
)

pytest_plugins = ["k8sparse_fixtures"]

REPO = Path(__file__).resolve().parents[3]


def shared_dir() -> Path:
    """``<repo>/../shared``; from a git worktree, the first ``shared/`` above the repo."""
    for parent in REPO.parents:
        if (parent / "shared").is_dir():
            return parent / "shared"
    return REPO.parent / "shared"


CAPTURES = shared_dir() / "captures"

FIELDS = [
    "k8s_parse.pod.name",
    "k8s_parse.pod.uid",
    "k8s_parse.pod.namespace",
    "k8s_parse.pod.ip",
    "k8s_parse.pod.labels",
    "k8s_parse.pod.label[app]",
    "k8s_parse.pod.owner.kind",
    "k8s_parse.pod.owner.name",
    "k8s_parse.node.name",
    "k8s_parse.container.id",
    "k8s_parse.container.name",
]
NOTHING = dict.fromkeys(FIELDS)
HOST_STAMPS = 2**64 - 1
"""The timestamp of an async event that the host stamps when it takes it."""

UID = "7c4e5a9b-1d2f-4e3a-9b8c-0d1e2f3a4b5c"
CID = container_id(0xC0FFEE)


def cgroups_of(uid: str, cid: str = "", systemd: bool = False) -> list[str]:
    """A thread's cgroup v1 entries as libsinsp lists them (controller=path)."""
    if systemd:
        pod = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid.replace('-', '_')}.slice"
        path = f"{pod}/cri-containerd-{cid}.scope" if cid else pod
    else:
        path = f"/kubepods/burstable/pod{uid}/{cid}" if cid else f"/kubepods/burstable/pod{uid}"
    return [f"cpu,cpuacct={path}", f"memory={path}", "cpuset=/"]


def web_pod(**kw: object) -> dict[str, object]:
    return pod_object(
        "web-7f9c-abcde",
        "shop",
        uid=UID,
        labels={"app": "web", "team": "checkout"},
        containers={"nginx": CID, "log-shipper": container_id(2)},
        **kw,  # type: ignore[arg-type]
    )


def watching(node: Callable[..., Node], kube: FakeKube, **config: object) -> Node:
    n = node({"api_server": kube.url, **config})
    n.plugin.async_events.start()
    return n


def test_a_process_in_a_pod_gets_every_field(kube: FakeKube, node: Callable[..., Node]) -> None:
    kube.add(web_pod())
    n = watching(node, kube)
    n.pump(until=lambda: "web-7f9c-abcde" in n.pods())
    n.thread(100, ["cpuset=/", "cpu=/"], comm="containerd-shim")
    n.thread(200, cgroups_of(UID, CID))  # the child the host made on the parent's clone exit
    n.parse(clone_exit(100, res=200))
    ev = n.parse(syscall_event(EXECVE_19_X, 200))
    assert n.threads[200]["k8s_parse.pod_uid"] == UID and n.threads[200]["k8s_parse.container_id"] == CID
    assert n.threads[100]["k8s_parse.pod_uid"] == ""  # the shim itself runs outside the pod
    assert n.fields(ev, *FIELDS) == {
        "k8s_parse.pod.name": "web-7f9c-abcde",
        "k8s_parse.pod.uid": UID,
        "k8s_parse.pod.namespace": "shop",
        "k8s_parse.pod.ip": "10.0.0.5",
        "k8s_parse.pod.labels": ["app:web", "team:checkout"],
        "k8s_parse.pod.label[app]": "web",
        "k8s_parse.pod.owner.kind": "ReplicaSet",
        "k8s_parse.pod.owner.name": "web-5d9c",
        "k8s_parse.node.name": "node-1",
        "k8s_parse.container.id": CID,
        "k8s_parse.container.name": "nginx",
    }
    assert n.fields(n.event(syscall_event(OPEN_X, 200)), "k8s_parse.pod.label[missing]") == {
        "k8s_parse.pod.label[missing]": None
    }
    assert n.registry.violations == []


def test_the_pod_table_is_exported_keyed_by_uid(kube: FakeKube, node: Callable[..., Node]) -> None:
    kube.add(web_pod())
    n = watching(node, kube)
    n.pump(until=lambda: bool(n.changes))
    assert "k8s_pods" in n.registry.tables
    (fields,) = [t for name, t in n.registry.tables.items() if name == "k8s_pods"]
    assert fields.key_type == 9  # string: pod uids


def test_a_process_not_in_a_pod_has_no_value(kube: FakeKube, node: Callable[..., Node]) -> None:
    kube.add(web_pod())
    n = watching(node, kube)
    n.pump(until=lambda: bool(n.changes))
    n.thread(1, ["cpu=/init.scope", "memory=/"], comm="systemd")
    n.thread(2, [], comm="kthreadd")
    for tid in (1, 2, 999):  # 999: a thread the table does not have
        ev = n.parse(syscall_event(EXECVE_19_X, tid))
        assert n.fields(ev, *FIELDS) == NOTHING
    async_ev = n.event(n.plugin.async_events.dump_state()[0].raw)  # an event with no thread
    assert n.fields(async_ev, *FIELDS) == NOTHING


def test_systemd_layout_and_a_thread_seen_before_its_pod(kube: FakeKube, node: Callable[..., Node]) -> None:
    n = watching(node, kube)
    n.pump(until=lambda: bool(kube.requests("watch")))
    n.thread(300, cgroups_of(UID, CID, systemd=True))
    ev = n.parse(syscall_event(EXECVE_19_X, 300))
    # The pod is not known yet: its uid and the container id are in the cgroups, the rest has no value.
    assert n.fields(ev, *FIELDS) == {**NOTHING, "k8s_parse.pod.uid": UID, "k8s_parse.container.id": CID}
    misses = metric(n, "lookup_misses")
    kube.add(web_pod())
    n.pump(until=lambda: bool(n.changes))
    ev = n.parse(syscall_event(OPEN_X, 300))  # not a process event: the column set at execve is used
    assert n.fields(ev, "k8s_parse.pod.name", "k8s_parse.container.name") == {
        "k8s_parse.pod.name": "web-7f9c-abcde",
        "k8s_parse.container.name": "nginx",
    }
    assert misses >= 1


def test_updates_show_at_once_and_a_deleted_pod_has_no_value_while_its_processes_run(
    kube: FakeKube, node: Callable[..., Node]
) -> None:
    kube.add(web_pod())
    n = watching(node, kube)
    n.pump(until=lambda: bool(n.changes))
    n.thread(200, cgroups_of(UID, CID))
    ev = n.parse(syscall_event(EXECVE_19_X, 200))
    assert n.fields(ev, "k8s_parse.pod.label[app]") == {"k8s_parse.pod.label[app]": "web"}
    kube.modify(UID, lambda o: o["metadata"]["labels"].update(app="web-v2"))
    n.pump(until=lambda: len(n.changes) == 2)
    ev = n.parse(syscall_event(OPEN_X, 200))
    assert n.fields(ev, "k8s_parse.pod.label[app]") == {"k8s_parse.pod.label[app]": "web-v2"}
    kube.delete(UID)
    n.pump(until=lambda: len(n.changes) == 3)
    ev = n.parse(syscall_event(OPEN_X, 200))
    # the process still runs, in a pod that is gone: what its cgroups say, nothing else
    assert n.fields(ev, *FIELDS) == {**NOTHING, "k8s_parse.pod.uid": UID, "k8s_parse.container.id": CID}
    assert n.threads[200]["k8s_parse.pod_uid"] == UID
    assert metric(n, "pods_known") == 0


def test_410_relist_keeps_the_table_exact(kube: FakeKube, node: Callable[..., Node]) -> None:
    uids = [kube.add(pod_object(f"p{i}"))["metadata"]["uid"] for i in range(5)]
    kube.faults.append(Fault("watch", "gate", status=410))
    n = watching(node, kube, page_size=2)
    n.pump(until=lambda: len(n.changes) == 5 and bool(kube.requests("watch")))
    kube.delete(uids[0])
    kube.add(pod_object("p5"))
    kube.compact()
    kube.gate.set()
    n.pump(until=lambda: len(n.changes) == 7)
    assert metric(n, "pods_known") == 5
    for i, uid in enumerate([*uids[1:], kube.history[-1][2]["metadata"]["uid"]]):
        n.thread(10 + i, cgroups_of(uid))
        ev = n.parse(syscall_event(EXECVE_19_X, 10 + i))
        assert n.fields(ev, "k8s_parse.pod.name")["k8s_parse.pod.name"] == f"p{i + 1}"
    assert metric(n, "relists") == 1
    assert [c["action"] for c in n.changes] == ["added"] * 5 + ["added", "deleted"]


def test_capture_open_backfills_existing_threads(kube: FakeKube, node: Callable[..., Node]) -> None:
    kube.add(web_pod())
    n = watching(node, kube)
    n.pump(until=lambda: bool(n.changes))
    n.thread(400, cgroups_of(UID, CID))
    n.thread(401, ["cpu=/user.slice"])
    n.plugin.capture_open()
    assert n.threads[400]["k8s_parse.pod_uid"] == UID and n.threads[401]["k8s_parse.pod_uid"] == ""
    assert n.registry.violations == []


def test_dump_state_then_replay_without_an_api_server(kube: FakeKube, node: Callable[..., Node]) -> None:
    kube.add(web_pod())
    kube.add(pod_object("other", "ops"))
    live = watching(node, kube)
    live.pump(until=lambda: len(live.changes) == 2)
    dumped = live.plugin.async_events.dump_state()
    assert sorted(json.loads(d.payload)["pod"]["name"] for d in dumped) == ["other", "web-7f9c-abcde"]
    assert {json.loads(d.payload)["action"] for d in dumped} == {"state"}
    # A capture file: the dumped state first, then syscall events. No API server on replay.
    replay = node({})
    for d in dumped:
        replay.parse(d.raw)
    replay.thread(200, cgroups_of(UID, CID))
    replay.plugin.capture_open()
    ev = replay.parse(syscall_event(OPEN_X, 200))
    assert replay.fields(ev, "k8s_parse.pod.name", "k8s_parse.container.name") == {
        "k8s_parse.pod.name": "web-7f9c-abcde",
        "k8s_parse.container.name": "nginx",
    }


def test_a_static_pod_is_found_through_its_mirror(kube: FakeKube, node: Callable[..., Node]) -> None:
    static = "8f1d4b0c2e3a4f5b6c7d8e9fa0b1c2d3"
    kube.add(pod_object("etcd-node-1", "kube-system", annotations={"kubernetes.io/config.mirror": static}))
    n = watching(node, kube)
    n.pump(until=lambda: bool(n.changes))
    n.thread(500, cgroups_of(static, CID))
    ev = n.parse(syscall_event(EXECVE_19_X, 500))
    mirror = n.changes[0]["pod"]["uid"]
    assert n.fields(ev, "k8s_parse.pod.name", "k8s_parse.pod.uid") == {
        "k8s_parse.pod.name": "etcd-node-1",
        "k8s_parse.pod.uid": mirror,  # the API server's uid, not the config hash of the cgroups
    }


def test_a_cgroup_naming_the_container_wins_over_one_naming_only_the_pod(node: Callable[..., Node]) -> None:
    """A controller may hold the thread at the pod's level (cgroup v1 cpuset, say) and another in
    its container: the parser reads on past the first to find the container."""
    n = node({})
    pod_only = f"cpuset=/kubepods/burstable/pod{UID}"
    n.thread(700, ["cpuset=/", pod_only, f"cpu,cpuacct=/kubepods/burstable/pod{UID}/{CID}", "memory=/"])
    n.thread(701, ["cpuset=/", pod_only, "memory=/"])
    ev = n.parse(syscall_event(EXECVE_19_X, 700))
    assert n.fields(ev, "k8s_parse.pod.uid", "k8s_parse.container.id") == {
        "k8s_parse.pod.uid": UID,
        "k8s_parse.container.id": CID,
    }
    ev = n.parse(syscall_event(EXECVE_19_X, 701))
    assert n.fields(ev, "k8s_parse.pod.uid", "k8s_parse.container.id") == {
        "k8s_parse.pod.uid": UID,
        "k8s_parse.container.id": None,
    }


def test_a_thread_in_no_pod_is_read_again_only_at_its_next_clone_or_execve(node: Callable[..., Node]) -> None:
    """Extraction reads a host thread's cgroups no more once the parser has (the column
    k8s_parse.cgroups_read says so): most events of a node are from threads in no pod."""
    n = node({})
    host = n.thread(800, ["cpu,cpuacct=/user.slice", "memory=/user.slice"])
    ev = n.parse(syscall_event(EXECVE_19_X, 800))
    assert n.threads[800]["k8s_parse.cgroups_read"] is True
    assert n.fields(ev, "k8s_parse.pod.uid") == {"k8s_parse.pod.uid": None}
    host["cgroups"][0]["second"] = f"/kubepods/burstable/pod{UID}/{CID}"  # runc moves it, no event yet
    assert n.fields(n.event(syscall_event(OPEN_X, 800)), "k8s_parse.pod.uid") == {"k8s_parse.pod.uid": None}
    ev = n.parse(syscall_event(EXECVE_19_X, 800))  # its execve: read again
    assert n.fields(ev, "k8s_parse.pod.uid") == {"k8s_parse.pod.uid": UID}
    # A thread the parser has not seen (no clone, execve or backfill) is read at extraction.
    n.thread(801, [f"cpu,cpuacct=/kubepods/burstable/pod{UID}/{CID}"])
    assert n.fields(n.event(syscall_event(OPEN_X, 801)), "k8s_parse.pod.uid") == {"k8s_parse.pod.uid": UID}


def test_a_clone_exit_without_parameters_still_parses(node: Callable[..., Node]) -> None:
    n = node({})
    n.thread(600, cgroups_of(UID, CID))
    n.parse(syscall_event(CLONE_20_X, 600, []))  # no res to read: the child is left alone, the thread is done
    assert n.threads[600]["k8s_parse.pod_uid"] == UID


def test_a_host_without_tables_gets_a_plugin_whose_fields_have_no_value(kube: FakeKube, k8s_lib: BuildResult) -> None:
    kube.add(web_pod())
    with PluginLibrary.load(k8s_lib.library) as lib, lib.init(json.dumps({"api_server": kube.url})) as plugin:
        assert any("no thread table" in r.message for r in plugin.logs)
        plugin.async_events.start()
        ev = plugin.async_events.get()
        assert json.loads(ev.payload)["pod"]["name"] == "web-7f9c-abcde"
        plugin.parse(HostEvent(ev.raw, num=1))
        plugin.parse(HostEvent(syscall_event(EXECVE_19_X, 200), num=2))
        plugin.capture_open()
        assert plugin.extract_many(HostEvent(syscall_event(OPEN_X, 200), num=3), FIELDS) == NOTHING


def test_a_threads_table_without_cgroups_fails_init_and_says_why(k8s_lib: BuildResult) -> None:
    odd = HostTable(TableSchema("threads", ST["int64"], [FieldDef("tid", ST["int64"]), FieldDef("comm", ST["string"])]))
    with PluginLibrary.load(k8s_lib.library) as lib, pytest.raises(HostError, match="cgroups"):
        lib.init("", tables=TableRegistry(odd))


def test_malformed_pod_events_are_skipped(node: Callable[..., Node]) -> None:
    n = node({})
    good = n.plugin.async_events  # the plugin's own events go through the host's checks; forge one here
    assert good is not None
    raw = _async_event(b"k8s_pod", b"{not json")
    n.parse(raw)  # logged and skipped: a capture may hold events of another version
    n.parse(_async_event(b"someone_else", b"{}"))
    assert metric(n, "pods_known") == 0


def test_metrics_are_reported(kube: FakeKube, node: Callable[..., Node]) -> None:
    kube.add(web_pod())
    kube.faults.append(Fault("watch", "status", 500))
    n = watching(node, kube)
    n.pump(until=lambda: bool(n.changes) and len(kube.requests("watch")) >= 2)
    names = {m.name: m.value for m in n.plugin.metrics()}
    assert set(names) == {
        "watch_restarts",
        "relists",
        "pods_known",
        "events_parsed",
        "lookup_misses",
        "pods_malformed",
        "pod_events_undelivered",
        # what the SDK reports of every plugin: failed calls, and its async events' fate
        "sdk.errors",
        "sdk.async.delivered",
        "sdk.async.dropped",
        "sdk.async.refused",
    }
    assert names["watch_restarts"] == 1 and names["pods_known"] == 1 and names["events_parsed"] == 1


def test_malformed_pods_and_a_deep_list_are_counted_and_the_good_pods_reach_the_table(
    kube: FakeKube, node: Callable[..., Node]
) -> None:
    """Issue 23, item 5, through the built library: one bad pod never stops the watcher."""
    bad = pod_object("bad")
    bad["status"]["podIPs"] = 7
    kube.add(pod_object("good-1"))
    kube.add(bad)
    kube.add(pod_object("good-2"))
    kube.faults.append(Fault("list", "respond", respond=framed(nested(200_000), "content-length")))
    n = watching(node, kube)
    n.pump(until=lambda: n.pods() == {"good-1", "good-2"} and bool(kube.requests("watch")))
    kube.add(pod_object("good-3"))
    n.pump(until=lambda: "good-3" in n.pods())
    assert metric(n, "pods_malformed") == 1 and metric(n, "watch_restarts") == 1
    assert metric(n, "pods_known") == 3


def test_an_unreachable_api_server_is_retried_and_never_blocks_the_host(node: Callable[..., Node]) -> None:
    n = node({"api_server": "http://127.0.0.1:9", "connect_timeout": 0.2, "initial_list_wait": 0})
    n.plugin.async_events.start()
    n.pump(until=lambda: metric(n, "watch_restarts") >= 2)
    n.plugin.async_events.stop()  # returns: the worker stops between retries
    assert n.plugin.async_events.late_calls == 0


def test_a_hanging_api_server_does_not_delay_the_stop(kube: FakeKube, node: Callable[..., Node]) -> None:
    kube.faults.append(Fault("list", "hang"))
    n = watching(node, kube, read_timeout=600, initial_list_wait=0)
    n.pump(until=lambda: bool(kube.requests("list")))
    n.plugin.async_events.stop()
    assert not any("still running" in r.message for r in n.plugin.logs)


def test_start_waits_for_the_first_list_and_stamps_its_events_with_the_start_time(
    kube: FakeKube, node: Callable[..., Node]
) -> None:
    """Live Falco: the events read while start_async waited are older than the pod events of the
    first list, as their timestamps say, so libsinsp hands the pods out first."""
    kube.add(web_pod())
    kube.add(pod_object("other", "ops"))
    n = node({"api_server": kube.url, "initial_list_wait": 60})
    before = time.time_ns()
    n.plugin.async_events.start()  # returns once the first list is in
    first = n.plugin.async_events.drain()
    assert sorted(json.loads(e.payload)["pod"]["name"] for e in first) == ["other", "web-7f9c-abcde"]
    assert len({e.ts for e in first}) == 1 and before <= first[0].ts <= time.time_ns()
    kube.add(pod_object("later", "ops"))  # after the start: the host stamps it when it takes it
    later = n.plugin.async_events.get()
    assert json.loads(later.payload)["pod"]["name"] == "later" and later.ts == HOST_STAMPS


def test_while_start_waits_at_most_emit_burst_pod_events_go(kube: FakeKube, node: Callable[..., Node]) -> None:
    """Falco takes no event before start returns and drops what its queue cannot hold: a first list
    larger than emit_burst ends the wait with emit_burst pod events sent (stamped with the start
    time), and the others follow once start returned (stamped by the host)."""
    for i in range(7):
        kube.add(pod_object(f"pod-{i}", "crowded"))
    n = node({"api_server": kube.url, "initial_list_wait": 60, "emit_burst": 3})
    before = time.time_ns()
    n.plugin.async_events.start()  # returns with 3 of the 7 sent, not after 60 s
    events: list[HostEvent] = []
    wait_for(lambda: events.extend(n.plugin.async_events.drain()) or len(events) == 7, what="the 7 pods")
    assert sorted(json.loads(e.payload)["pod"]["name"] for e in events) == [f"pod-{i}" for i in range(7)]
    stamps = [e.ts for e in events]
    assert stamps[3:] == [HOST_STAMPS] * 4 and len(set(stamps[:3])) == 1 and before <= stamps[0] < HOST_STAMPS
    assert any("larger than emit_burst (3)" in r.message for r in n.plugin.logs)


def test_the_wait_for_the_first_list_is_bounded(kube: FakeKube, node: Callable[..., Node]) -> None:
    kube.faults.append(Fault("list", "hang"))
    n = watching(node, kube, read_timeout=600, initial_list_wait=0.05)  # returns: the wait is over
    assert any("no pod list from" in r.message and "initial_list_wait" in r.message for r in n.plugin.logs)
    n.plugin.async_events.stop()
    assert n.plugin.async_events.late_calls == 0


def test_without_an_api_server_start_does_not_wait(node: Callable[..., Node]) -> None:
    n = node({"initial_list_wait": 300})
    n.plugin.async_events.start()
    assert n.plugin.async_events.drain() == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"api_server": "ftp://x"}, "api_server: expected an http"),
        ({"verbosity": "loud"}, "verbosity"),
        ({"token_file": "/nonexistent"}, "token_file: /nonexistent is not a readable file"),
        ({"emit_rate": 0.5}, "emit_rate: must be 0 \\(no pacing\\) or at least 1 event per second, got 0.5"),
        ({"emit_burst": 901}, "emit_burst"),
    ],
)
def test_bad_config_fails_init_with_a_clear_message(
    node: Callable[..., Node], config: dict[str, object], message: str
) -> None:
    with pytest.raises(HostError, match=message):
        node(config)


@pytest.mark.skipif(not CAPTURES.is_dir(), reason=f"no real captures at {CAPTURES}")
@pytest.mark.parametrize("capture", ["curl_google.scap", "test_ipv6_client.scap"])
def test_replaying_a_real_capture(node: Callable[..., Node], capture: str) -> None:
    """A capture from a host with no Kubernetes: every event parses, no process is in a pod."""
    n = node({})
    parsed = 0
    with ScapReader(CAPTURES / capture) as r:
        threads = ThreadTable(r.processes)
        sync_threads(n.threads, threads)
        n.plugin.capture_open()
        for ev in r.events():
            threads.process(ev)
            sync_threads(n.threads, threads)
            host_ev = n.event(ev.raw)
            parsed += n.plugin.parse(host_ev)
            assert n.fields(host_ev, "k8s_parse.pod.name") == {"k8s_parse.pod.name": None}
    assert parsed > 0 and n.registry.violations == []
    assert all(e["k8s_parse.pod_uid"] == "" for e in n.threads.entries.values())


def metric(n: Node, name: str) -> int | float:
    return next(m.value for m in n.plugin.metrics() if m.name == name)


def _async_event(name: bytes, payload: bytes) -> bytes:
    import struct

    name += b"\0"
    body = struct.pack("<IIII", 4, len(name), len(payload), 0) + name + payload
    return struct.pack("<QQIHI", 1, (1 << 64) - 1, 26 + len(body), 402, 3) + body
