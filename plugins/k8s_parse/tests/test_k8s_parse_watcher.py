"""The watcher against the loopback API server: lists, watches, and every way they go wrong."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_parse.config import K8sParseConfig, resolve
from k8s_parse.pods import Action, Pod
from k8s_parse.watcher import PodWatcher
from k8sparse_kit import DEADLINE, FAST, FakeKube, Fault, TlsFiles, pod_object, wait_for

pytest_plugins = ["k8sparse_fixtures"]


class Count:
    """A metric counter, as the plugin's Counter behaves (thread-safe)."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def inc(self, n: int = 1) -> None:
        with self._lock:
            self.value += n


class Run:
    """A watcher on its own thread, recording what it reports."""

    def __init__(self, kube: FakeKube, config: dict[str, Any]) -> None:
        settings = resolve(K8sParseConfig.parse(json.dumps({**FAST, "api_server": kube.url, **config})), {})
        self.changes: list[tuple[Action, Pod]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.restarts = Count()
        self.relists = Count()
        self.log = logging.getLogger("k8s_parse.test")
        self.watcher = PodWatcher(settings, self.sink, self.stopping, self.log, self.restarts, self.relists)
        self.thread = threading.Thread(target=self.watcher.run, daemon=True)
        self.thread.start()

    def sink(self, action: Action, pod: Pod) -> None:
        with self.lock:
            self.changes.append((action, pod))

    def names(self, action: str | None = None) -> list[str]:
        with self.lock:
            return [p.name for a, p in self.changes if action is None or a == action]

    def wait(self, cond: Callable[[], Any], what: str) -> Any:
        return wait_for(cond, what=f"{what}; changes so far: {self.names()}")

    def stop(self) -> None:
        self.stopping.set()
        self.watcher.interrupt()
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "the watcher did not stop"

    def pods(self) -> dict[str, Pod]:
        """The pods as someone applying the changes in order sees them."""
        out: dict[str, Pod] = {}
        with self.lock:
            for action, pod in self.changes:
                if action == "deleted":
                    assert pod.uid in out, f"{pod.name} deleted before it was added"
                    del out[pod.uid]
                else:
                    assert (action == "added") == (pod.uid not in out), f"{pod.name} {action} twice or before added"
                    out[pod.uid] = pod
        return out


@pytest.fixture
def watch() -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def start(kube: FakeKube, **config: Any) -> Run:
        run = Run(kube, config)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.stop()


def names_on_server(kube: FakeKube) -> set[str]:
    return {p["metadata"]["name"] for p in kube.pods.values()}


def test_list_in_pages_then_watch_from_the_list_version(kube: FakeKube, watch: Callable[..., Run]) -> None:
    for n in range(5):
        kube.add(pod_object(f"p{n}"))
    run = watch(kube, page_size=2)
    run.wait(lambda: len(run.names()) == 5, "the listed pods")
    lists = kube.requests("list")
    assert [s.query.get("limit") for s in lists] == ["2", "2", "2"]
    assert "continue" not in lists[0].query and all("continue" in s.query for s in lists[1:])
    w = run.wait(lambda: kube.requests("watch"), "a watch")[0]
    assert w.query["resourceVersion"] == "105" and w.query["allowWatchBookmarks"] == "true"
    kube.add(pod_object("late"))
    run.wait(lambda: "late" in run.names("added"), "the watched pod")
    assert run.names("added") == ["p0", "p1", "p2", "p3", "p4", "late"]


def test_watch_events_become_changes_and_deletes_are_reported_once(kube: FakeKube, watch: Callable[..., Run]) -> None:
    a = kube.add(pod_object("a"))
    run = watch(kube)
    run.wait(lambda: run.names() == ["a"], "the list")
    uid = a["metadata"]["uid"]
    kube.modify(uid, lambda o: o["metadata"]["labels"].update(tier="gold"))
    kube.modify(uid, lambda o: o["status"].update(conditions=[]))  # nothing the plugin keeps: not reported
    kube.delete(uid)
    run.wait(lambda: run.names("deleted") == ["a"], "the delete")
    assert [a for a, _ in run.changes] == ["added", "modified", "deleted"]
    assert run.changes[1][1].labels["tier"] == "gold"


def test_node_name_becomes_a_field_selector(kube: FakeKube, watch: Callable[..., Run]) -> None:
    kube.add(pod_object("here", node="n1"))
    kube.add(pod_object("there", node="n2"))
    run = watch(kube, node_name="n1")
    run.wait(lambda: run.names() == ["here"], "the node's pod")
    run.wait(lambda: kube.requests("watch"), "a watch")
    kube.add(pod_object("there-too", node="n2"))
    kube.add(pod_object("here-too", node="n1"))
    run.wait(lambda: "here-too" in run.names(), "the node's new pod")
    assert run.names() == ["here", "here-too"]
    assert {s.query["fieldSelector"] for s in kube.seen} == {"spec.nodeName=n1"}


def test_bookmarks_move_the_resume_point(kube: FakeKube, watch: Callable[..., Run]) -> None:
    kube.add(pod_object("a"))
    run = watch(kube)
    run.wait(lambda: kube.requests("watch"), "a watch")
    with kube.lock:
        kube.rv += 50  # other resources changed; only a bookmark tells this watch
    kube.bookmark()
    run.wait(lambda: run.watcher.resource_version == "151", "the bookmark's version")
    kube.end_watches("cut")  # the connection breaks: the watcher reconnects from 151
    run.wait(lambda: len(kube.requests("watch")) >= 2, "the resumed watch")
    assert kube.requests("watch")[1].query["resourceVersion"] == "151"
    assert len(kube.requests("list")) == 1 and run.restarts.value == 1
    kube.end_watches()  # the server ends the watch (timeoutSeconds): resumed at once, not a failure
    run.wait(lambda: len(kube.requests("watch")) >= 3, "the resumed watch")
    assert kube.requests("watch")[2].query["resourceVersion"] == "151" and run.restarts.value == 1


def test_a_stream_cut_mid_way_resumes_without_loss_or_duplicates(kube: FakeKube, watch: Callable[..., Run]) -> None:
    run = watch(kube)
    run.wait(lambda: kube.requests("watch"), "a watch")
    kube.faults.append(Fault("watch", "cut", after=2))  # the next watch: two events, then the connection dies
    kube.faults.append(Fault("watch", "cut", after=1))
    kube.add(pod_object("x"))  # ends the first watch, so that the scripted ones are used
    run.wait(lambda: "x" in run.names(), "x")
    for n in range(6):
        kube.add(pod_object(f"p{n}"))
    run.wait(lambda: len(run.names()) == 7, "all pods")
    assert sorted(run.names("added")) == sorted(["x", *(f"p{n}" for n in range(6))])
    assert len(kube.requests("list")) == 1  # resumed each time, never relisted
    run.pods()  # in order: nothing added twice


def test_410_gone_relists_and_reports_only_the_difference(kube: FakeKube, watch: Callable[..., Run]) -> None:
    pods = [kube.add(pod_object(f"p{n}")) for n in range(4)]
    kube.faults.append(Fault("watch", "gate", status=410))
    run = watch(kube, page_size=3)
    run.wait(lambda: kube.requests("watch"), "the gated watch")
    # While the watcher waits, the world moves on: its history is gone.
    kube.delete(pods[1]["metadata"]["uid"])
    kube.modify(pods[2]["metadata"]["uid"], lambda o: o["metadata"]["labels"].update(v="2"))
    kube.add(pod_object("new"))
    kube.compact()
    kube.gate.set()
    run.wait(lambda: "new" in run.names(), "the relist")
    assert [(a, p.name) for a, p in run.changes[4:]] == [("modified", "p2"), ("added", "new"), ("deleted", "p1")]
    assert {p.name for p in run.pods().values()} == names_on_server(kube)
    assert run.relists.value == 1


def test_an_error_event_relists(kube: FakeKube, watch: Callable[..., Run]) -> None:
    kube.add(pod_object("a"))
    kube.faults.append(Fault("watch", "error_event", status=410))
    run = watch(kube)
    run.wait(lambda: len(kube.requests("list")) == 2, "the relist")
    kube.add(pod_object("b"))
    run.wait(lambda: "b" in run.names(), "b")
    assert run.names() == ["a", "b"] and run.relists.value == 1


def test_an_expired_continue_token_restarts_the_list(kube: FakeKube, watch: Callable[..., Run]) -> None:
    for n in range(4):
        kube.add(pod_object(f"p{n}"))
    kube.faults.append(Fault("list", "expire"))
    run = watch(kube, page_size=2)
    run.wait(lambda: len(run.names()) == 4, "the pods")
    assert sorted(run.names()) == ["p0", "p1", "p2", "p3"]  # nothing of the broken list was reported twice
    assert [("continue" in s.query) for s in kube.requests("list")] == [False, True, False, True]


def test_bad_json_relists(kube: FakeKube, watch: Callable[..., Run]) -> None:
    kube.add(pod_object("a"))
    kube.faults.append(Fault("list", "bad_json"))
    kube.faults.append(Fault("watch", "bad_json"))
    run = watch(kube)
    run.wait(lambda: kube.requests("watch") and len(kube.requests("list")) == 3, "two relists")
    kube.add(pod_object("b"))
    run.wait(lambda: "b" in run.names(), "b")
    assert run.names() == ["a", "b"] and run.restarts.value == 2


def test_errors_and_a_hanging_server_are_retried(kube: FakeKube, watch: Callable[..., Run]) -> None:
    kube.add(pod_object("a"))
    kube.faults.extend([Fault("list", "status", 500), Fault("list", "hang"), Fault("watch", "status", 503)])
    run = watch(kube, read_timeout=0.3)
    run.wait(lambda: run.names() == ["a"], "the list, third time lucky")
    run.wait(lambda: len(kube.requests("watch")) == 2, "the watch, second time lucky")
    assert run.restarts.value == 3


def test_an_unreachable_server_is_retried_until_it_comes(kube: FakeKube, watch: Callable[..., Run]) -> None:
    port = kube.port
    kube.stop()
    dead = FakeKube()
    dead.port = port
    run = watch(dead)
    run.wait(lambda: run.restarts.value >= 3, "a few failed attempts")
    assert run.names() == []


def test_the_token_is_checked_and_reread_when_it_rotates(
    kube: FakeKube, watch: Callable[..., Run], tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    kube.token = "first"
    kube.add(pod_object("a"))
    run = watch(kube, token_file=str(token))
    run.wait(lambda: kube.requests("watch"), "a watch")
    assert {s.auth for s in kube.seen} == {"Bearer first"}
    # The kubelet rotates the token; the server stops taking the old one and ends the open watch.
    token.write_text("second\n")
    kube.token = "second"
    kube.end_watches()
    kube.add(pod_object("b"))
    run.wait(lambda: "b" in run.names(), "b, with the new token")
    assert kube.seen[-1].auth == "Bearer second"


def test_a_wrong_token_is_logged_and_retried(
    kube: FakeKube, watch: Callable[..., Run], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = tmp_path / "token"
    token.write_text("wrong")
    kube.token = "right"
    with caplog.at_level(logging.DEBUG, "k8s_parse.test"):
        run = watch(kube, token_file=str(token))
        run.wait(lambda: run.restarts.value >= 2, "retries")
        token.write_text("right")
        kube.add(pod_object("a"))
        run.wait(lambda: run.names() == ["a"], "the list with the right token")
    assert "401 Unauthorized (is token_file current, and may the service account get, list and watch pods?)" in (
        caplog.text
    )


def test_tls_with_a_private_ca(tls_kube: FakeKube, tls_files: TlsFiles, watch: Callable[..., Run]) -> None:
    tls_kube.add(pod_object("secure"))
    run = watch(tls_kube, ca_bundle=str(tls_files.ca))
    run.wait(lambda: run.names() == ["secure"], "the pod over TLS")
    tls_kube.add(pod_object("secure-2"))
    run.wait(lambda: "secure-2" in run.names(), "the watched pod over TLS")


def test_tls_without_the_ca_is_refused_and_retried(
    tls_kube: FakeKube, watch: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    tls_kube.add(pod_object("secure"))
    with caplog.at_level(logging.WARNING, "k8s_parse.test"):
        run = watch(tls_kube)
        run.wait(lambda: run.restarts.value >= 1, "a refused handshake")
    assert run.names() == [] and "CERTIFICATE_VERIFY_FAILED" in caplog.text


def test_resync_period_relists_a_healthy_watch(kube: FakeKube, watch: Callable[..., Run]) -> None:
    kube.add(pod_object("a"))
    run = watch(kube, resync_period=1)
    run.wait(lambda: run.relists.value >= 1, "a resync")
    assert kube.requests("watch")[0].query["timeoutSeconds"] == "1"
    assert run.names() == ["a"] and run.restarts.value == 0


def test_stop_interrupts_a_read_that_would_hang(kube: FakeKube, watch: Callable[..., Run]) -> None:
    kube.faults.append(Fault("list", "hang"))
    run = watch(kube, read_timeout=600)
    run.wait(lambda: kube.requests("list"), "the hanging list")
    run.stop()  # asserts the thread ends (within DEADLINE, far below read_timeout)
