"""k8s_parse's fields survive a capture: the pods it learned from the API server travel in ``dump_state``.

The replay check records a capture of processes in and out of a pod with the
plugin watching the loopback API server, writes it with the plugin's dumped
pods first, and replays it with no API server: every field must come back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.replay_check import replay_check
from k8sparse_kit import FakeKube, container_id, pod_object
from test_k8s_parse_falco import execve_exit, scapwriter

pytest_plugins = ["k8sparse_fixtures"]

UID = "5d2e8f1a-3b4c-4d5e-8f9a-0b1c2d3e4f5a"
CID = container_id(0xCAFE)
TS = 1_700_000_000_000_000_000


def pods_capture(tmp_path: Path) -> Path:
    """A process list with a process in the pod and one on the host, then execs of both."""
    from falco_plugin_tools.host.scap import ProcEntry

    sw = scapwriter()
    pod = f"/kubepods/burstable/pod{UID}/{CID}"
    in_pod, on_host = [f"cpu={pod}", f"memory={pod}"], ["cpu=/user.slice", "memory=/user.slice"]

    def proc(tid: int, comm: str, cgroups: list[str]) -> Any:
        return ProcEntry(
            tid=tid, pid=tid, ptid=1, comm=comm, exe=comm, exe_path=f"/usr/bin/{comm}", args=[], cwd="/",
            fdlimit=1024, flags=0, uid=0, gid=0, cgroups=cgroups,
        )  # fmt: skip

    w = sw.ScapWriter().proclist([proc(1, "systemd", ["cpu=/init.scope"]), proc(100, "nginx", in_pod)])
    w.proclist([proc(200, "bash", on_host)])
    for i in range(3):
        w.event(execve_exit(sw, 100, in_pod, TS + 10 * i))
        w.event(execve_exit(sw, 200, on_host, TS + 10 * i + 1))
    return Path(w.save(tmp_path / "pods.scap"))


def test_every_field_survives_a_replay_without_the_api_server(
    kube: FakeKube, k8s_lib: BuildResult, tmp_path: Path
) -> None:
    kube.add(pod_object("web-1", "payments", uid=UID, labels={"app": "web"}, containers={"nginx": CID}))
    check = replay_check(
        k8s_lib.library,
        tmp_path / "out.scap",
        init_config=json.dumps({"api_server": kube.url}),
        replay_init_config="{}",
        capture=pods_capture(tmp_path),
        n=6,
        wait_async=1,
    )
    assert check.ok, check.report()
    assert (check.events, check.state_events) == (7, 1)  # the dumped pod, then the 6 execs
    assert check.unchecked == ["k8s_parse.pod.label"]
    # the fields had values to lose: the pod's process (events 2, 4, 6 of the file) is in web-1
    names = {num: v["k8s_parse.pod.name"] for num, v in check.recorded.items()}
    assert names == {2: "web-1", 3: None, 4: "web-1", 5: None, 6: "web-1", 7: None}


def test_without_the_dumped_state_the_replay_loses_the_pods(
    kube: FakeKube, k8s_lib: BuildResult, tmp_path: Path
) -> None:
    # The pods reach the plugin before the capture starts: only dump_state carries them into it.
    kube.add(pod_object("web-1", "payments", uid=UID, labels={"app": "web"}, containers={"nginx": CID}))
    check = replay_check(
        k8s_lib.library,
        tmp_path / "out.scap",
        init_config=json.dumps({"api_server": kube.url}),
        replay_init_config="{}",
        capture=pods_capture(tmp_path),
        n=6,
        wait_async=1,
        dump_state=False,
    )
    assert not check.ok
    # the pod's process execs at events 1, 3, 5; the host's at 2, 4, 6 have no pod either way
    lost = {(d.event, d.field): (d.recorded, d.replayed) for d in check.differences}
    assert {event for event, _ in lost} == {1, 3, 5}
    assert lost[(1, "k8s_parse.pod.name")] == ("web-1", None)
    assert lost[(3, "k8s_parse.container.name")] == ("nginx", None)
