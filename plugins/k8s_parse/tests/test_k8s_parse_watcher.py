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
from k8s_parse.watcher import PodWatcher, WatchCounters
from k8sparse_kit import (
    DEADLINE,
    FAST,
    FakeKube,
    Fault,
    TlsFiles,
    always_gone,
    endless_list,
    framed,
    list_body,
    nested,
    pod_object,
    raw,
    wait_for,
)

pytest_plugins = ["k8sparse_fixtures"]


class Count:
    """A metric counter, as the plugin's Counter behaves (thread-safe)."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def inc(self, n: int = 1) -> None:
        with self._lock:
            self.value += n


class Pauses(threading.Event):
    """A ``stopping`` event that records the pauses the watcher asks for and sleeps none of them,
    so that a test reads the backoff schedule without waiting it out."""

    def __init__(self) -> None:
        super().__init__()
        self.taken: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None:
            self.taken.append(timeout)
        return super().wait(0)


class Run:
    """A watcher on its own thread, recording what it reports.

    ``stopping`` may be a :class:`Pauses` (records the watcher's pauses instead of sleeping them);
    ``emit`` stands for the host's emit: its result (or exception) is what the watcher sees."""

    def __init__(
        self,
        kube: FakeKube,
        config: dict[str, Any],
        stopping: threading.Event | None = None,
        emit: Callable[[Action, Pod], bool] | None = None,
    ) -> None:
        settings = resolve(K8sParseConfig.parse(json.dumps({**FAST, "api_server": kube.url, **config})), {})
        self.changes: list[tuple[Action, Pod]] = []
        self.lock = threading.Lock()
        self.stopping = stopping or threading.Event()
        self.emit = emit
        self.restarts, self.relists, self.malformed, self.undelivered = Count(), Count(), Count(), Count()
        counters = WatchCounters(self.restarts, self.relists, self.malformed, self.undelivered)
        self.log = logging.getLogger("k8s_parse.test")
        self.watcher = PodWatcher(settings, self.sink, self.stopping, self.log, counters)
        self.thread = threading.Thread(target=self.watcher.run, daemon=True)
        self.thread.start()

    def sink(self, action: Action, pod: Pod) -> bool:
        if self.emit is not None and not self.emit(action, pod):
            return False  # not taken: not a change the parser saw
        with self.lock:
            self.changes.append((action, pod))
        return True

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

    def start(
        kube: FakeKube,
        stopping: threading.Event | None = None,
        emit: Callable[[Action, Pod], bool] | None = None,
        **config: Any,
    ) -> Run:
        run = Run(kube, config, stopping, emit)
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
    run.wait(lambda: len(kube.requests("watch")) >= 2 and kube.watches, "the resumed watch")
    assert kube.requests("watch")[1].query["resourceVersion"] == "151"
    assert len(kube.requests("list")) == 1 and run.restarts.value == 1
    kube.bookmark()
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


# -- hostile servers (issue 23) -----------------------------------------------------------------


def test_a_malformed_pod_is_skipped_and_counted_and_its_neighbours_delivered(
    kube: FakeKube, watch: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    def malformed(name: str, where: str, key: str, value: Any) -> dict[str, Any]:
        obj = pod_object(name)
        obj[where][key] = value
        return obj

    kube.add(pod_object("a"))
    kube.add(malformed("statuses-5", "status", "containerStatuses", 5))
    kube.add(malformed("ips-7", "status", "podIPs", 7))
    kube.add(pod_object("b"))
    with caplog.at_level(logging.WARNING, "k8s_parse.test"):
        run = watch(kube, page_size=3)  # the bad pods and good ones share pages
        run.wait(lambda: run.names() == ["a", "b"], "the good pods of the list")
        kube.add(malformed("owners-str", "metadata", "ownerReferences", "x"))
        kube.add(pod_object("c"))
        run.wait(lambda: "c" in run.names(), "the good pod after a bad watch event")
    assert run.names() == ["a", "b", "c"]
    assert run.malformed.value == 3 and run.restarts.value == 0 and run.thread.is_alive()
    assert "skipping a malformed pod (1 so far): pod statuses-5" in caplog.text
    assert "status.containerStatuses must be a list, not int" in caplog.text


@pytest.mark.parametrize("kind", ["list", "watch"])
def test_json_nested_200000_deep_is_a_failure_the_watcher_survives(
    kube: FakeKube, watch: Callable[..., Run], kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    deep = nested(200_000)
    body = list_body([]) if kind == "watch" else deep
    kube.faults.append(Fault("list", "respond", respond=framed(body, "content-length")))
    if kind == "watch":
        event = b'{"type":"ADDED","object":' + deep + b"}\n"
        kube.faults.append(Fault("watch", "respond", respond=framed(event, "chunked")))
    kube.add(pod_object("a"))
    with caplog.at_level(logging.WARNING, "k8s_parse.test"):
        run = watch(kube)
        run.wait(lambda: run.names() == ["a"], "the pod, once the deep response is behind")
    kube.add(pod_object("b"))
    run.wait(lambda: "b" in run.names(), "the watch going on")
    assert run.restarts.value == 1 and run.thread.is_alive()
    what = "the pod list" if kind == "list" else "a watch event"
    assert f"unreadable response ({what} is nested too deep to read); relisting" in caplog.text


def test_an_unexpected_exception_is_a_failure_with_backoff_not_the_end(
    kube: FakeKube, watch: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import k8s_parse.watcher as watcher_module

    calls = []

    class FlakyPod(Pod):
        @classmethod
        def from_api(cls, *args: Any, **kwargs: Any) -> Pod:
            calls.append(1)
            if len(calls) == 1:
                raise ZeroDivisionError("a bug the watcher did not foresee")
            return Pod.from_api(*args, **kwargs)

    monkeypatch.setattr(watcher_module, "Pod", FlakyPod)
    kube.add(pod_object("a"))
    stopping = Pauses()
    with caplog.at_level(logging.WARNING, "k8s_parse.test"):
        run = watch(kube, stopping=stopping)
        run.wait(lambda: run.names() == ["a"], "the pod, from the list after the failure")
    assert run.restarts.value == 1 and stopping.taken and run.thread.is_alive()
    assert "unexpected ZeroDivisionError: a bug the watcher did not foresee; relisting" in caplog.text


def test_a_410_storm_relists_with_growing_jittered_pauses(kube: FakeKube, watch: Callable[..., Run]) -> None:
    """A server whose every watch answers 410: each list+watch pair is followed by a pause that
    doubles (with jitter) up to backoff_max, although every list in between succeeds."""
    kube.add(pod_object("a"))
    kube.hostile["watch"] = always_gone
    stopping = Pauses()
    run = watch(kube, stopping=stopping, backoff_initial=0.5, backoff_max=30.0)
    run.wait(lambda: len(kube.requests("watch")) >= 12, "a dozen list+watch pairs")
    run.stop()
    pairs, lists, pauses = len(kube.requests("watch")), len(kube.requests("list")), stopping.taken
    assert lists in (pairs, pairs + 1) and len(pauses) in (pairs - 1, pairs), (pairs, pauses)
    for n, pause in enumerate(pauses):
        base = min(30.0, 0.5 * 2**n)
        assert base / 2 <= pause < base, f"pause {n + 1} of {pauses}"
    # What that schedule allows in 8 s (issue 23 measured 2,838 pairs): the pauses' lower bounds.
    elapsed, in_8s = 0.0, 1
    for n in range(len(pauses)):
        elapsed += min(30.0, 0.5 * 2**n) / 2
        in_8s += elapsed < 8
    print(f"410 storm: {pairs} list+watch pairs, pauses {[round(p, 2) for p in pauses]}; at most {in_8s} in 8 s")
    assert in_8s <= 6
    # Every watch followed a completed list (a list the stop interrupted is not counted).
    assert run.restarts.value == len(pauses) and run.relists.value >= pairs - 1 and run.names() == ["a"]


@pytest.mark.parametrize("how", ["content-length", "chunked", "until-close"])
def test_a_list_page_within_max_list_bytes_is_read_whole_in_any_framing(
    kube: FakeKube, watch: Callable[..., Run], how: str
) -> None:
    names = [f"p{n}" for n in range(2000)]
    big = list_body([pod_object(name) for name in names])  # about 1.3 MB, in 64 kB chunks when chunked
    kube.faults.append(Fault("list", "respond", respond=framed(big, how)))
    run = watch(kube, max_list_bytes=len(big))
    run.wait(lambda: len(run.names()) == 2000, "the whole page")
    assert run.names() == names and run.restarts.value == 0


@pytest.mark.parametrize("how", ["content-length", "chunked", "until-close"])
def test_a_list_page_larger_than_max_list_bytes_is_a_failure(
    kube: FakeKube, watch: Callable[..., Run], how: str, caplog: pytest.LogCaptureFixture
) -> None:
    big = list_body([pod_object(f"p{n}") for n in range(2000)])  # about 1.3 MB
    kube.hostile["list"] = framed(big, how)
    with caplog.at_level(logging.WARNING, "k8s_parse.test"):
        run = watch(kube, max_list_bytes=64 * 1024)
        run.wait(lambda: run.restarts.value >= 2, "two refused lists")
    assert run.names() == [] and run.thread.is_alive()
    assert "a pod list page larger than 65536 bytes (max_list_bytes" in caplog.text


@pytest.mark.parametrize("kind", ["list", "watch"])
def test_a_negative_chunk_size_is_refused_without_reading_to_the_end(
    kube: FakeKube, watch: Callable[..., Run], kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`-3` as a chunk size: read(-3 + 2) would read until the server closes, which it never does."""
    if kind == "watch":
        kube.faults.append(Fault("list", "respond", respond=framed(list_body([]), "content-length")))
    kube.faults.append(
        Fault(kind, "respond", respond=raw(b"Transfer-Encoding: chunked\r\n", b"-3\r\n" + b"x" * 1000, hold=True))
    )
    with caplog.at_level(logging.WARNING, "k8s_parse.test"):
        run = watch(kube, read_timeout=600)
        run.wait(lambda: run.restarts.value >= 1, "the refused chunk size")
    assert "a bad chunk size line b'-3\\r\\n'" in caplog.text


def test_a_watch_event_longer_than_max_event_bytes_is_a_failure(
    kube: FakeKube, watch: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    run = watch(kube, max_event_bytes=4096)
    run.wait(lambda: kube.requests("watch"), "a watch")
    with caplog.at_level(logging.WARNING, "k8s_parse.test"):
        kube.add(pod_object("huge", annotations={"note": "x" * 10_000}))
        run.wait(lambda: run.restarts.value >= 1, "the refused event")
    assert "a watch event longer than 4096 bytes (max_event_bytes)" in caplog.text
    run.wait(lambda: run.names() == ["huge"], "the pod, from the relist (a list page has its own bound)")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"max_list_pages": 5}, "the pod list did not end after 5 pages (max_list_pages)"),
        ({"max_list_pods": 120}, "the pod list holds more than 120 pods (max_list_pods)"),
    ],
)
def test_a_list_that_never_ends_is_a_failure(
    kube: FakeKube, watch: Callable[..., Run], config: dict[str, int], message: str, caplog: pytest.LogCaptureFixture
) -> None:
    kube.hostile["list"] = endless_list(per_page=50)
    with caplog.at_level(logging.WARNING, "k8s_parse.test"):
        run = watch(kube, **config)
        run.wait(lambda: run.restarts.value >= 2, "two lists given up")
    run.stop()
    assert run.names() == [] and message in caplog.text
    starts = [i for i, s in enumerate(kube.requests("list")) if "continue" not in s.query]
    longest = max(b - a for a, b in zip(starts, [*starts[1:], len(kube.requests("list"))], strict=True))
    assert longest <= 5 if "pages" in message else longest <= 3


@pytest.mark.parametrize("failure", ["dropped", "refused"])
def test_a_pod_the_host_does_not_take_is_sent_again_until_it_does(
    kube: FakeKube, watch: Callable[..., Run], failure: str
) -> None:
    """The host's emit fails (returns False, or raises) for the first 5 events and two later ones:
    every pod still reaches the parser, once, with its latest state."""
    pods = [kube.add(pod_object(f"p{n}")) for n in range(4)]
    attempts: list[str] = []
    failing = {0, 1, 2, 3, 4, 7, 8}

    def emit(action: Action, pod: Pod) -> bool:
        attempts.append(f"{action} {pod.name}")
        if len(attempts) - 1 in failing:
            if failure == "refused":
                raise RuntimeError("the host refused the event")
            return False
        return True

    run = watch(kube, emit=emit, page_size=3)
    run.wait(lambda: len(run.names()) == 4, "the listed pods, despite the failures")
    kube.add(pod_object("late"))
    kube.modify(pods[0]["metadata"]["uid"], lambda o: o["metadata"]["labels"].update(v="2"))
    kube.delete(pods[1]["metadata"]["uid"])
    run.wait(lambda: {p.name for p in run.pods().values()} == names_on_server(kube), "the parser's view")
    assert run.pods()[pods[0]["metadata"]["uid"]].labels["v"] == "2"
    assert run.undelivered.value == len(failing) and run.thread.is_alive()
    print(f"emit failed {len(failing)} times ({failure}); attempts: {attempts}")


def test_a_token_file_that_vanished_says_so(
    kube: FakeKube, watch: Callable[..., Run], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    kube.token = "t"
    kube.add(pod_object("a"))
    kube.faults.append(Fault("list", "gate", status=500))
    with caplog.at_level(logging.DEBUG, "k8s_parse.test"):
        run = watch(kube, token_file=str(token))
        run.wait(lambda: kube.requests("list"), "the first list")
        token.unlink()  # after init checked it: the kubelet's rotation went wrong
        kube.gate.set()
        run.wait(lambda: run.restarts.value >= 2, "an attempt without the token")
        token.write_text("t")
        run.wait(lambda: run.names() == ["a"], "the list once the token is back")
    failures = [r.getMessage() for r in caplog.records if "pod watch failed" in r.getMessage()]
    assert failures[1].startswith(
        f"pod watch failed (retry 2): cannot read token_file {token}: No such file or directory; retrying in"
    ), failures
    assert "ApiError" not in failures[1]


def test_watches_the_server_ends_at_once_with_no_event_are_resumed_after_growing_pauses(
    kube: FakeKube, watch: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    """A watch ended within a second with no event is a failure (client-go's "very short watch"):
    resumed from the same resourceVersion, without a relist, after a backoff."""
    kube.add(pod_object("a"))
    kube.hostile["watch"] = framed(b"", "chunked")
    stopping = Pauses()
    with caplog.at_level(logging.WARNING, "k8s_parse.test"):
        run = watch(kube, stopping=stopping, backoff_initial=0.5, backoff_max=30.0)
        run.wait(lambda: len(kube.requests("watch")) >= 8, "eight watches")
    run.stop()
    watches, pauses = kube.requests("watch"), stopping.taken
    assert len(pauses) in (len(watches) - 1, len(watches))
    assert all(min(30.0, 0.5 * 2**n) / 2 <= p for n, p in enumerate(pauses)), pauses
    assert len(kube.requests("list")) == 1 and {w.query["resourceVersion"] for w in watches} == {"101"}
    assert "the API server ended the watch after" in caplog.text and "with no event" in caplog.text
    assert run.names() == ["a"]
