"""In the real Falco: a capture carrying the plugin's dumped pod state, replayed with no API server.

The pods come from the loopback API server through the built library's
watcher and ``dump_state`` (in the SDK's host); the capture file is written
with the SDK tests' ``scapwriter`` (a process list whose threads have kubepods
cgroups, the dumped ``k8s_pod`` events, then execve exits); Falco replays it
and a rule prints the fields. Falco does the same with a stand-in for its
default ``container`` plugin loaded too (a plugin declaring that plugin's
syscall fields, from the registry checker's ``fields.yaml``), and refuses
to start with a stand-in declaring k8s_parse 0.1.0's fields instead. Skipped
when there is no Falco (``$FALCO`` or ``<repo>/../shared/realhost/falco``).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from falco_plugin_tools.build import BuildResult
from k8sparse_kit import FakeKube, Node, container_id, pod_object

pytest_plugins = ["k8sparse_fixtures"]

REPO = Path(__file__).resolve().parents[3]
SCAPWRITER = REPO / "sdk" / "tests"
STANDIN = Path(__file__).resolve().parent / "standin"

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


IN_POD_PATH = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice"
IN_POD = [f"cpu={IN_POD_PATH}/cri-containerd-{CID}.scope", f"memory={IN_POD_PATH}/cri-containerd-{CID}.scope"]
ON_HOST = ["cpu=/user.slice", "memory=/user.slice"]

SHELL_RULE = (
    "- rule: shell\n  desc: a shell\n  condition: evt.type = execve and proc.name = sh\n"
    "  output: 'SHELL tid=%thread.tid pod=%k8s_parse.pod.name ns=%k8s_parse.pod.namespace "
    "ctr=%k8s_parse.container.name app=%k8s_parse.pod.label[app] uid=%k8s_parse.pod.uid{extra}'\n"
    "  priority: WARNING\n"
)
SHELLS = [
    f"SHELL tid=100 pod=web-1 ns=payments ctr=nginx app=web uid={UID}",
    "SHELL tid=200 pod=<NA> ns=<NA> ctr=<NA> app=<NA> uid=<NA>",
]

OLD_FIELDS = [
    "k8s.pod.name", "k8s.pod.uid", "k8s.pod.namespace", "k8s.ns.name", "k8s.pod.ip", "k8s.pod.labels",
    "k8s.pod.label", "k8s.pod.owner.kind", "k8s.pod.owner.name", "k8s.node.name", "k8s.container.name",
]  # fmt: skip
"""The fields of k8s_parse 0.1.0."""


def proc_entry(tid: int, comm: str, cgroups: list[str]) -> Any:
    from falco_plugin_tools.host.scap import ProcEntry

    return ProcEntry(
        tid=tid, pid=tid, ptid=1, comm=comm, exe=comm, exe_path=f"/usr/bin/{comm}", args=[], cwd="/",
        fdlimit=1024, flags=0, uid=0, gid=0, cgroups=cgroups,
    )  # fmt: skip


@pytest.fixture
def pod_capture(kube: FakeKube, node: Callable[..., Node], tmp_path: Path) -> Path:
    """A capture with the dumped pod web-1 (payments/nginx), then an execve of sh in it (tid 100)
    and one on the host (tid 200)."""
    sw = scapwriter()
    kube.add(pod_object("web-1", "payments", uid=UID, labels={"app": "web"}, containers={"nginx": CID}))
    live = node({"api_server": kube.url})
    live.plugin.async_events.start()
    live.pump(until=lambda: bool(live.changes))
    dumped = live.plugin.async_events.dump_state()
    assert len(dumped) == 1

    w = sw.ScapWriter().proclist([proc_entry(1, "systemd", ["cpu=/init.scope"]), proc_entry(100, "nginx", IN_POD)])
    w.proclist([proc_entry(200, "bash", ON_HOST)])
    for i, d in enumerate(dumped):
        w.event(with_ts(d.raw, TS + i))
    w.event(execve_exit(sw, 100, IN_POD, TS + 10))
    w.event(execve_exit(sw, 200, ON_HOST, TS + 11))
    path: Path = w.save(tmp_path / "k8s.scap")
    return path


@pytest.fixture
def standin(build_plugin_project: Callable[[Path], BuildResult], tmp_path: Path) -> Callable[..., Path]:
    """``standin(name, fields)``: the library of a plugin named ``name`` declaring ``fields`` (dicts with
    name, type and arg, as in the registry checker's fields.yaml) for the syscall source, with no values."""

    def make(name: str, fields: list[dict[str, Any]]) -> Path:
        package = f"k8sparse_standin_{name}"
        project = tmp_path / f"standin-{name}"
        shutil.copytree(STANDIN, project, ignore=shutil.ignore_patterns("__pycache__"))
        (project / "src" / "k8sparse_standin").rename(project / "src" / package)
        toml = project / "pyproject.toml"
        toml.write_text(
            toml.read_text()
            .replace('"k8sparse-standin"', f'"k8sparse-standin-{name}"')
            .replace("k8sparse_standin.plugin", f"{package}.plugin")
        )
        (project / "src" / package / "standin.json").write_text(json.dumps({"name": name, "fields": fields}))
        return build_plugin_project(project).library

    return make


def container_fields() -> list[dict[str, Any]]:
    from falco_plugin_tools.registry.fields import load_known

    fields: list[dict[str, Any]] = load_known()["plugins"]["container"]["fields"]
    return fields


def run_falco(
    tmp_path: Path, libraries: dict[str, Path], rules: str, capture: Path
) -> subprocess.CompletedProcess[str]:
    """Falco replaying ``capture`` with ``libraries`` (plugin name -> library) loaded, in that order."""
    assert FALCO is not None
    (tmp_path / "rules.yaml").write_text(rules)
    config = tmp_path / "falco.yaml"
    config.write_text(
        json.dumps(
            {
                "plugins": [{"name": name, "library_path": str(lib)} for name, lib in libraries.items()],
                "load_plugins": list(libraries),
                "stdout_output": {"enabled": True},
                "json_output": False,
            }
        )
    )
    return subprocess.run(
        [str(FALCO), "-c", str(config), "-r", str(tmp_path / "rules.yaml"), "-o", "engine.kind=replay",
         "-o", f"engine.replay.capture_file={capture}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def shells(run: subprocess.CompletedProcess[str]) -> list[str]:
    return [line[line.index("SHELL") :] for line in run.stdout.splitlines() if "SHELL" in line]


def test_falco_replays_a_capture_with_the_dumped_pods(k8s_lib: Any, pod_capture: Path, tmp_path: Path) -> None:
    run = run_falco(tmp_path, {"k8s_parse": k8s_lib.library}, SHELL_RULE.format(extra=""), pod_capture)
    assert run.returncode == 0, run.stdout + run.stderr
    assert shells(run) == SHELLS, run.stdout + run.stderr


def test_falco_loads_k8s_parse_next_to_the_container_plugin(
    k8s_lib: Any, pod_capture: Path, standin: Callable[..., Path], tmp_path: Path
) -> None:
    """Falco's default set-up loads its container plugin for the syscall source: k8s_parse's fields
    overlap none of its fields, so Falco starts with both and renders both plugins' fields."""
    container = standin("container", container_fields())
    rules = SHELL_RULE.format(extra=" container=%container.id k8spod=%k8s.pod.name")
    run = run_falco(tmp_path, {"container": container, "k8s_parse": k8s_lib.library}, rules, pod_capture)
    assert run.returncode == 0, run.stdout + run.stderr
    assert shells(run) == [f"{line} container=<NA> k8spod=<NA>" for line in SHELLS], run.stdout + run.stderr


def test_falco_refuses_k8s_parse_0_1_0s_field_names_next_to_the_container_plugin(
    pod_capture: Path, standin: Callable[..., Path], tmp_path: Path
) -> None:
    """Why the fields were renamed: with 0.1.0's names (a stand-in declaring them) Falco does not start."""
    container = standin("container", container_fields())
    old = standin(
        "k8s_parse",
        [{"name": n, "type": "string", **({"arg": "key"} if n == "k8s.pod.label" else {})} for n in OLD_FIELDS],
    )
    run = run_falco(tmp_path, {"container": container, "k8s_parse": old}, SHELL_RULE.format(extra=""), pod_capture)
    assert run.returncode != 0
    assert (
        "Plugin 'k8s_parse' supports extraction of field 'k8s.pod.name' that is overlapping for source 'syscall'"
        in run.stdout + run.stderr
    ), run.stdout + run.stderr
