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
import signal
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


def execve_exit(sw: Any, tid: int, cgroups: list[str], ts: int, exe: str = "/bin/sh") -> bytes:
    """A successful execve of ``exe`` by ``tid`` (every parameter of the current layout)."""
    comm = exe.rsplit("/", 1)[-1]
    values: dict[str, Any] = {
        "res": 0, "exe": exe, "args": ["-c", "id"], "tid": tid, "pid": tid, "ptid": 1, "cwd": "/",
        "fdlimit": 1024, "pgft_maj": 0, "pgft_min": 0, "vm_size": 0, "vm_rss": 0, "vm_swap": 0, "comm": comm,
        "cgroups": cgroups, "env": [], "tty": 0, "vpgid": tid, "loginuid": 0, "flags": 0, "cap_inheritable": 0,
        "cap_permitted": 0, "cap_effective": 0, "exe_ino": 0, "exe_ino_ctime": 0, "exe_ino_mtime": 0, "uid": 0,
        "trusted_exepath": exe, "pgid": tid, "gid": 0, "filename": exe,
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
def dumped(kube: FakeKube, node: Callable[..., Node]) -> list[bytes]:
    """What the plugin dumps into a capture Falco records: the pod web-1 (payments/nginx), learnt
    from the API server."""
    kube.add(pod_object("web-1", "payments", uid=UID, labels={"app": "web"}, containers={"nginx": CID}))
    live = node({"api_server": kube.url})
    live.plugin.async_events.start()
    live.pump(until=lambda: bool(live.changes))
    events = [bytes(d.raw) for d in live.plugin.async_events.dump_state()]
    assert len(events) == 1
    return events


def pod_capture_writer(dumped: list[bytes], *more_procs: Any) -> Any:
    """A capture: the process list, the dumped pods, then an execve of sh in web-1 (tid 100) and one
    on the host (tid 200)."""
    sw = scapwriter()
    w = sw.ScapWriter().proclist([proc_entry(1, "systemd", ["cpu=/init.scope"]), proc_entry(100, "nginx", IN_POD)])
    w.proclist([proc_entry(200, "bash", ON_HOST), *more_procs])
    for i, raw in enumerate(dumped):
        w.event(with_ts(raw, TS + i))
    w.event(execve_exit(sw, 100, IN_POD, TS + 10))
    w.event(execve_exit(sw, 200, ON_HOST, TS + 11))
    return w


@pytest.fixture
def pod_capture(dumped: list[bytes], tmp_path: Path) -> Path:
    path: Path = pod_capture_writer(dumped).save(tmp_path / "k8s.scap")
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
    tmp_path: Path,
    libraries: dict[str, Path],
    rules: str,
    capture: Path,
    init_config: dict[str, dict[str, Any]] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Falco replaying ``capture`` with ``libraries`` (plugin name -> library) loaded, in that order."""
    assert FALCO is not None

    def init_of(name: str) -> dict[str, Any]:
        # An empty mapping is not an init config to Falco: leave the key out.
        config = (init_config or {}).get(name)
        return {"init_config": config} if config else {}

    (tmp_path / "rules.yaml").write_text(rules)
    config = tmp_path / "falco.yaml"
    config.write_text(
        json.dumps(
            {
                "plugins": [
                    {"name": name, "library_path": str(lib), **init_of(name)} for name, lib in libraries.items()
                ],
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


# -- a pod's process before (or without) the API server ---------------------------------------

CURL_UID = "5d2e8f14-7a3b-4c6d-9e0f-1a2b3c4d5e6f"
CURL_CID = container_id(0xC0DE)
CURL_POD_PATH = f"/kubepods/besteffort/pod{CURL_UID}"
CURL_CGROUPS = [f"cpu,cpuacct={CURL_POD_PATH}/{CURL_CID}", f"memory={CURL_POD_PATH}/{CURL_CID}", "cpuset=/"]
SHIM_CGROUPS = ["cpu,cpuacct=/system.slice/containerd.service", "memory=/system.slice/containerd.service"]
CURL_EXITS: list[tuple[int, dict[str, Any]]] = [
    (159, {"res": 0x5000, "vm_size": 1, "vm_rss": 1, "vm_swap": 0, "addr": 0}),  # brk
    (203, {"uid": 0}),  # getuid
    (93, {"res": 0, "path": "/"}),  # getcwd
    (19, {"fd": 3, "domain": 2, "type": 1, "proto": 0, "flags": 0}),  # socket
    (5, {"res": 0, "fd": 3}),  # close
]
"""What curl does after its execve, as exit events."""
CURL_RULE = (
    "- rule: traced\n  desc: the shim and what it starts\n  condition: thread.tid in (300, 301)\n"
    "  output: 'TRACED tid=%thread.tid %evt.type uid=%k8s_parse.pod.uid ctr=%k8s_parse.container.id "
    "pod=%k8s_parse.pod.name'\n  priority: WARNING\n"
)


@pytest.fixture
def curl_capture(dumped: list[bytes], tmp_path: Path) -> Path:
    """``pod_capture``, then curl started by runc (tid 301) in a pod that no dump holds (besteffort,
    cgroupfs layout), next to the shim (tid 300, on the host)."""
    sw = scapwriter()
    w = pod_capture_writer(
        dumped, proc_entry(300, "containerd-shim", SHIM_CGROUPS), proc_entry(301, "runc:[2:INIT]", CURL_CGROUPS)
    )
    w.event(bytes(sw.build_event(203, {"uid": 0}, ts=TS + 20, tid=300)))
    w.event(execve_exit(sw, 301, CURL_CGROUPS, TS + 21, exe="/usr/bin/curl"))
    for i, (code, values) in enumerate(CURL_EXITS):
        w.event(bytes(sw.build_event(code, values, ts=TS + 30 + i, tid=301)))
    path: Path = w.save(tmp_path / "curl.scap")
    return path


def traced(run: subprocess.CompletedProcess[str]) -> list[str]:
    return [line[line.index("TRACED") :] for line in run.stdout.splitlines() if "TRACED" in line]


def test_a_pods_process_has_its_uid_and_container_from_the_first_event_with_no_api_server(
    k8s_lib: Any, curl_capture: Path, tmp_path: Path
) -> None:
    """The uid and container id come from the cgroups alone; the pod's other fields need the pod."""
    run = run_falco(tmp_path, {"k8s_parse": k8s_lib.library}, CURL_RULE, curl_capture)
    assert run.returncode == 0, run.stdout + run.stderr
    in_pod = f"uid={CURL_UID} ctr={CURL_CID} pod=<NA>"
    assert traced(run) == [
        "TRACED tid=300 getuid uid=<NA> ctr=<NA> pod=<NA>",
        f"TRACED tid=301 execve {in_pod}",
        f"TRACED tid=301 brk {in_pod}",
        f"TRACED tid=301 getuid {in_pod}",
        f"TRACED tid=301 getcwd {in_pod}",
        f"TRACED tid=301 socket {in_pod}",
        f"TRACED tid=301 close {in_pod}",
    ], run.stdout + run.stderr


def test_replay_gives_the_same_fields_with_or_without_an_api_server(
    k8s_lib: Any, kube: FakeKube, curl_capture: Path, tmp_path: Path
) -> None:
    """A replay shows the pods of the capture (its dumped state), whatever the API server says now."""
    kube.add(pod_object("curl-1", "tools", uid=CURL_UID, containers={"curl": CURL_CID}))
    kube.modify(UID, lambda o: o["metadata"].update(name="web-renamed"))
    rules = CURL_RULE + "\n" + SHELL_RULE.format(extra="").replace("rule: shell", "rule: shell2")
    runs = []
    for i, config in enumerate([{}, {"api_server": kube.url, "initial_list_wait": 5}]):
        (tmp_path / str(i)).mkdir()
        run = run_falco(tmp_path / str(i), {"k8s_parse": k8s_lib.library}, rules, curl_capture, {"k8s_parse": config})
        assert run.returncode == 0, run.stdout + run.stderr
        runs.append(shells(run) + traced(run))
    assert runs[0] == runs[1]
    assert runs[0][:2] == SHELLS and f"TRACED tid=301 close uid={CURL_UID} ctr={CURL_CID} pod=<NA>" in runs[0]
    assert len(kube.requests("list")) == 1  # the dump's session's: a replay starts no watcher


# -- a live Falco ---------------------------------------------------------------------------------


def test_a_live_falco_waits_for_the_pods_and_its_captures_carry_them(
    k8s_lib: Any, kube: FakeKube, tmp_path: Path
) -> None:
    """Falco with no driver (the syscall source live, with no syscalls): the first list is in before
    Falco reads events, a rule sees the pod events, and the capture a rule starts holds the pods
    (what dump_state wrote, then the pod events), ready for a replay without the API server."""
    assert FALCO is not None
    from falco_plugin_tools.host.async_events import ASYNCEVENT_E, decode_async_event
    from falco_plugin_tools.host.scap import ScapReader

    kube.add(pod_object("web-1", "payments", uid=UID, containers={"nginx": CID}))
    kube.add(pod_object("db-0", "payments"))
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- rule: pod event\n  desc: a k8s_pod event\n  condition: evt.asynctype = k8s_pod\n"
        "  output: 'POD %evt.asynctype'\n  priority: INFO\n"
    )
    config = tmp_path / "falco.yaml"
    config.write_text(
        json.dumps(
            {
                "engine": {"kind": "nodriver"},
                "plugins": [
                    {
                        "name": "k8s_parse",
                        "library_path": str(k8s_lib.library),
                        "init_config": {"api_server": kube.url, "initial_list_wait": 30},
                    }
                ],
                "load_plugins": ["k8s_parse"],
                "rules_files": [str(rules)],
                "stdout_output": {"enabled": True},
                "json_output": False,
                "capture": {"enabled": True, "path_prefix": str(tmp_path / "cap"), "mode": "all_rules"},
            }
        )
    )
    # -M: nodriver never ends by itself; the pods are in before Falco reads its first event
    run = subprocess.run([str(FALCO), "-c", str(config), "-M", "2"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len([line for line in run.stdout.splitlines() if "POD k8s_pod" in line]) == 2, run.stdout + run.stderr
    captured = []
    for path in sorted(tmp_path.glob("cap_*.scap")):
        with ScapReader(path) as reader:
            for ev in reader.events():
                if ev.type == ASYNCEVENT_E and decode_async_event(ev.raw).name == "k8s_pod":
                    change = json.loads(decode_async_event(ev.raw).payload)
                    captured.append((change["action"], change["pod"]["name"]))
    # The capture opens on the first alert, after that pod event was parsed: it starts with what
    # dump_state wrote (the pods known then), and the pod events after it follow.
    assert captured[0][0] == "state" and {name for _, name in captured} == {"web-1", "db-0"}, captured


# -- a large pod list in a live Falco ---------------------------------------------------------------

LARGE_LIST = 5000
"""Pods in the list: more than libsinsp 0.25's async queue holds, and more than emit_burst."""
QUEUE_FULL = "async event queue is full"
"""What libsinsp logs (at warning) for each async event it drops."""
POD_RULE = (
    "- rule: pod event\n  desc: a k8s_pod event\n  condition: evt.asynctype = k8s_pod\n"
    "  output: 'POD %evt.asynctype'\n  priority: INFO\n"
    "- rule: sample\n  desc: a metrics plugin's sample\n  condition: evt.asynctype = metrics_sample\n"
    "  output: 'SAMPLE %evt.asynctype'\n  priority: INFO\n"
)


def live_falco_until_every_pod_is_accounted_for(
    tmp_path: Path, library: Path, init_config: dict[str, Any], pods: int, others: tuple[dict[str, Any], ...] = ()
) -> tuple[int, int, str]:
    """A live Falco (no driver) with k8s_parse and a rule per pod event, its libs logger at info (the
    plugin's log; the queue-full line is a warning), ended once each of ``pods`` pod events either
    reached the rules or was logged as dropped by libsinsp (or after 60 s). ``others``: more plugins
    (entries of Falco's ``plugins``), loaded first. (pod events parsed, queue-full lines, Falco's output)."""
    assert FALCO is not None
    rules = tmp_path / "rules.yaml"
    rules.write_text(POD_RULE)
    config = tmp_path / "falco.yaml"
    config.write_text(
        json.dumps(
            {
                "engine": {"kind": "nodriver"},
                "plugins": [
                    *others,
                    {"name": "k8s_parse", "library_path": str(library), "init_config": init_config},
                ],
                "load_plugins": [*(other["name"] for other in others), "k8s_parse"],
                "rules_files": [str(rules)],
                "stdout_output": {"enabled": True},
                "json_output": False,
                "log_stderr": True,
                "log_level": "info",
                "libs_logger": {"enabled": True, "severity": "info"},
            }
        )
    )
    falco = subprocess.Popen(
        [str(FALCO), "-c", str(config), "-M", "60"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    parsed = full = 0
    stopped = False
    lines: list[str] = []
    assert falco.stdout is not None
    for line in falco.stdout:
        lines.append(line)
        parsed += "POD k8s_pod" in line
        full += QUEUE_FULL in line
        if parsed + full == pods and not stopped:
            stopped = True  # once: a second SIGINT kills Falco
            falco.send_signal(signal.SIGINT)  # Falco's clean stop; the rest of its output still follows
    rc = falco.wait(timeout=30)
    assert rc == 0, f"Falco exited with {rc}:\n" + "".join(line for line in lines if "POD k8s_pod" not in line)
    return parsed, full, "".join(lines)


def test_a_live_falco_gets_every_pod_of_a_large_list(k8s_lib: Any, kube: FakeKube, tmp_path: Path) -> None:
    """Paced by default (emit_rate, emit_burst): a list of 5,000 pods, more than libsinsp's async queue
    holds, reaches the rules whole, the first emit_burst while Falco's start waits for the list and the
    others at emit_rate once Falco takes events, and libsinsp drops none."""
    for i in range(LARGE_LIST):
        kube.add(pod_object(f"pod-{i}", "crowded"))
    parsed, full, output = live_falco_until_every_pod_is_accounted_for(
        tmp_path, k8s_lib.library, {"api_server": kube.url}, LARGE_LIST
    )
    assert (parsed, full) == (LARGE_LIST, 0), output[-3000:]
    assert "the first pod list is larger than emit_burst (500)" in output, output[-3000:]


def test_unpaced_a_live_falco_loses_pods_of_a_large_list(k8s_lib: Any, kube: FakeKube, tmp_path: Path) -> None:
    """Why the pacing: with emit_rate 0 the same list overflows libsinsp's async queue, which drops
    events (logging each) while telling the plugin they were taken, so they are never sent again."""
    for i in range(LARGE_LIST):
        kube.add(pod_object(f"pod-{i}", "crowded"))
    parsed, full, output = live_falco_until_every_pod_is_accounted_for(
        tmp_path, k8s_lib.library, {"api_server": kube.url, "emit_rate": 0}, LARGE_LIST
    )
    assert full > 0 and parsed == LARGE_LIST - full, output[-3000:]


def test_a_paced_large_list_leaves_room_for_other_plugins_async_events(
    k8s_lib: Any, kube: FakeKube, build_plugin_project: Callable[[Path], BuildResult], tmp_path: Path
) -> None:
    """libsinsp's async queue is shared: while one plugin's burst fills it, the others' events are
    dropped too. Next to the metrics plugin sampling every 10 ms, the paced list of 5,000 pods
    arrives whole, libsinsp drops no event of either plugin, and the samples keep arriving."""
    metrics = build_plugin_project(REPO / "plugins" / "metrics").library
    for i in range(LARGE_LIST):
        kube.add(pod_object(f"pod-{i}", "crowded"))
    others = ({"name": "metrics", "library_path": str(metrics), "init_config": {"interval": 0.01}},)
    parsed, full, output = live_falco_until_every_pod_is_accounted_for(
        tmp_path, k8s_lib.library, {"api_server": kube.url}, LARGE_LIST, others
    )
    assert (parsed, full) == (LARGE_LIST, 0), output[-3000:]
    assert "SAMPLE metrics_sample" in output, output[-3000:]
