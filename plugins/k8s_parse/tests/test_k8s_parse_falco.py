"""In the real Falco: a capture carrying the plugin's dumped pod state, replayed with no API server.

The pods come from the loopback API server through the built library's
watcher and ``dump_state`` (in the SDK's host); the capture file is written
with the SDK tests' ``scapwriter`` (a process list whose threads have kubepods
cgroups, the dumped ``k8s_pod`` events, then execve exits); Falco replays it
and a rule prints the fields. Skipped when there is no Falco (``$FALCO`` or
``<repo>/../shared/realhost/falco``).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from k8sparse_kit import FakeKube, Node, container_id, pod_object

pytest_plugins = ["k8sparse_fixtures"]

REPO = Path(__file__).resolve().parents[3]
SCAPWRITER = REPO / "sdk" / "tests"

UID = "3b0c6f7e-9a1d-4c2b-8e5f-6a7b8c9d0e1f"
CID = container_id(0xBEEF)
TS = 1_700_000_000_000_000_000


def find_falco() -> Path | None:
    configured = os.environ.get("FALCO")
    if configured:
        return Path(configured) if os.access(configured, os.X_OK) else None
    for parent in REPO.parents:
        candidate = parent / "shared" / "realhost" / "falco"
        if os.access(candidate, os.X_OK):
            return candidate
    return None


FALCO = find_falco()
pytestmark = pytest.mark.skipif(FALCO is None, reason="real Falco not found: set FALCO or provide shared/realhost")


def scapwriter() -> Any:
    if not (SCAPWRITER / "scapwriter.py").is_file():
        pytest.skip(f"the SDK tests' scapwriter is not at {SCAPWRITER}")
    if str(SCAPWRITER) not in sys.path:
        sys.path.insert(0, str(SCAPWRITER))
    import scapwriter as sw

    return sw


def execve_exit(sw: Any, tid: int, cgroups: list[str], ts: int) -> bytes:
    """A successful execve of /bin/sh by ``tid`` (every parameter of the current layout)."""
    values: dict[str, Any] = {
        "res": 0, "exe": "/bin/sh", "args": ["-c", "id"], "tid": tid, "pid": tid, "ptid": 1, "cwd": "/",
        "fdlimit": 1024, "pgft_maj": 0, "pgft_min": 0, "vm_size": 0, "vm_rss": 0, "vm_swap": 0, "comm": "sh",
        "cgroups": cgroups, "env": [], "tty": 0, "vpgid": tid, "loginuid": 0, "flags": 0, "cap_inheritable": 0,
        "cap_permitted": 0, "cap_effective": 0, "exe_ino": 0, "exe_ino_ctime": 0, "exe_ino_mtime": 0, "uid": 0,
        "trusted_exepath": "/bin/sh", "pgid": tid, "gid": 0, "filename": "/bin/sh",
    }  # fmt: skip
    return bytes(sw.build_event(293, values, ts=ts, tid=tid))


def with_ts(raw: bytes, ts: int) -> bytes:
    """An event with its timestamp set (a dumped event leaves it to the host, which stamps it when recording)."""
    return struct.pack("<Q", ts) + raw[8:]


def test_falco_replays_a_capture_with_the_dumped_pods(
    kube: FakeKube, node: Callable[..., Node], k8s_lib: Any, tmp_path: Path
) -> None:
    assert FALCO is not None
    sw = scapwriter()
    from falco_plugin_tools.host.scap import ProcEntry

    kube.add(pod_object("web-1", "payments", uid=UID, labels={"app": "web"}, containers={"nginx": CID}))
    live = node({"api_server": kube.url})
    live.plugin.async_events.start()
    live.pump(until=lambda: bool(live.changes))
    dumped = live.plugin.async_events.dump_state()
    assert len(dumped) == 1

    pod_path = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice"
    in_pod = [f"cpu={pod_path}/cri-containerd-{CID}.scope", f"memory={pod_path}/cri-containerd-{CID}.scope"]
    on_host = ["cpu=/user.slice", "memory=/user.slice"]

    def proc(tid: int, comm: str, cgroups: list[str]) -> Any:
        return ProcEntry(
            tid=tid, pid=tid, ptid=1, comm=comm, exe=comm, exe_path=f"/usr/bin/{comm}", args=[], cwd="/",
            fdlimit=1024, flags=0, uid=0, gid=0, cgroups=cgroups,
        )  # fmt: skip

    w = sw.ScapWriter().proclist([proc(1, "systemd", ["cpu=/init.scope"]), proc(100, "nginx", in_pod)])
    w.proclist([proc(200, "bash", on_host)])
    for i, d in enumerate(dumped):
        w.event(with_ts(d.raw, TS + i))
    w.event(execve_exit(sw, 100, in_pod, TS + 10))
    w.event(execve_exit(sw, 200, on_host, TS + 11))
    capture = w.save(tmp_path / "k8s.scap")

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- rule: shell\n  desc: a shell\n  condition: evt.type = execve and proc.name = sh\n"
        "  output: 'SHELL tid=%thread.tid pod=%k8s.pod.name ns=%k8s.ns.name ctr=%k8s.container.name "
        "app=%k8s.pod.label[app] uid=%k8s.pod.uid'\n  priority: WARNING\n"
    )
    config = tmp_path / "falco.yaml"
    config.write_text(
        json.dumps(
            {
                "plugins": [{"name": "k8s_parse", "library_path": str(k8s_lib.library)}],
                "load_plugins": ["k8s_parse"],
                "stdout_output": {"enabled": True},
                "json_output": False,
            }
        )
    )
    run = subprocess.run(
        [str(FALCO), "-c", str(config), "-r", str(rules), "-o", "engine.kind=replay",
         "-o", f"engine.replay.capture_file={capture}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    shells = [line[line.index("SHELL") :] for line in run.stdout.splitlines() if "SHELL" in line]
    assert shells == [
        f"SHELL tid=100 pod=web-1 ns=payments ctr=nginx app=web uid={UID}",
        "SHELL tid=200 pod=<NA> ns=<NA> ctr=<NA> app=<NA> uid=<NA>",
    ], run.stdout + run.stderr
