"""What k8s_parse costs inside the real Falco replaying a capture of execve events in pods.

A capture of N execve exits (default 100,000) is written with the test
suite's writer: 64 threads of 8 pods (systemd cgroup layout) in the process
list, the 8 pods as the ``k8s_pod`` state events k8s_parse dumps into a
capture, then the execve exits, round robin over the threads. Falco replays
it (``engine.kind: replay``) with rules that never fire:

* no plugin: libsinsp alone (rule ``evt.type = mkdir and proc.name = ...``);
* k8s_parse, the same rule: its parse cost (every execve exit is parsed);
* k8s_parse, a rule that reads two pod fields on every execve
  (``k8s_parse.pod.name = x or k8s_parse.pod.namespace = y``): the fields' cost;
* the same two with ``bench/reference/k8s_columns.c``, a C plugin whose pod
  fields are one read of a string column of ``threads`` each (the floor);
* the first three again on a capture whose execve exits are of 64 threads
  in no pod (most of a node's events), marked ``host:``.

Before timing, one run of each plugin with a rule that fires on the first
execve checks that the fields have the pod's values. Each figure is the best
CPU time (user + system) of ``--repeat`` runs, the configurations
interleaved, less the best CPU time of the same configuration replaying the
capture without its execve exits (start-up, the process list and the pods:
about 50 ms for the Python plugin, which would otherwise count as per-event
cost). Informative only: the exit status is 0 whatever the timings are.

    python bench/falco_k8s.py [--events N] [--repeat R] [--falco PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "falco"))  # the helper the Falco tests run Falco with
sys.path.insert(0, str(ROOT / "sdk" / "tests"))  # the capture writer of the test suite
sys.path.insert(0, str(ROOT / "plugins" / "k8s_parse" / "src"))  # the pod model, for the dumped events

import falco_plugin_tools.abi  # noqa: E402
from falco_plugin_tools.host.scap import ProcEntry  # noqa: E402
from falco_runner import (  # noqa: E402
    PluginConf,
    best_interleaved,
    falco_config,
    find_falco,
    replay_engine,
    run_falco,
    write_config,
)
from k8s_parse.pods import Container, Pod, encode_change  # noqa: E402
from scapwriter import ScapWriter, block, build_event  # noqa: E402

ASYNC_EVENT, EXECVE_X = 402, 293
EV_BLOCK = 0x216
PODS, THREADS = 8, 64
TS = 1_700_000_000_000_000_000
NEVER = "evt.type = mkdir and proc.name = never_such_process"
REFERENCE_SRC = ROOT / "bench" / "reference" / "k8s_columns.c"
K8S_PARSE = ROOT / "plugins" / "k8s_parse"


def uid(p: int) -> str:
    return f"{p:08x}-0000-4000-8000-{p:012x}"


def cid(t: int) -> str:
    return f"{t:064x}"


def cgroups(t: int) -> list[str]:
    if t >= PODS + THREADS:  # the host's threads
        return ["cpu,cpuacct=/user.slice/user-1000.slice", "memory=/user.slice/user-1000.slice", "cpuset=/"]
    p = t % PODS
    pod = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid(p).replace('-', '_')}.slice"
    path = f"{pod}/cri-containerd-{cid(t)}.scope"
    return [f"cpu,cpuacct={path}", f"memory={path}", "cpuset=/"]


def execve_exit(tid: int, ts: int, cgroup_list: list[str] | None = None) -> bytes:
    values = {
        "res": 0, "exe": "/bin/sh", "args": ["-c", "id"], "tid": tid, "pid": tid, "ptid": 1, "cwd": "/",
        "fdlimit": 1024, "pgft_maj": 0, "pgft_min": 0, "vm_size": 0, "vm_rss": 0, "vm_swap": 0, "comm": "sh",
        "cgroups": cgroup_list or cgroups(tid), "env": [], "tty": 0, "vpgid": tid, "loginuid": 0, "flags": 0,
        "cap_inheritable": 0, "cap_permitted": 0, "cap_effective": 0, "exe_ino": 0, "exe_ino_ctime": 0,
        "exe_ino_mtime": 0, "uid": 0, "trusted_exepath": "/bin/sh", "pgid": tid, "gid": 0, "filename": "/bin/sh",
    }  # fmt: skip
    return bytes(build_event(EXECVE_X, values, ts=ts, tid=tid))


def write_capture(path: Path, events: int, on_host: bool = False) -> Path:
    """The pods, then ``events`` execve exits of the threads in them (``on_host``: of as many threads
    in no pod)."""
    first = PODS + THREADS if on_host else PODS
    procs = [
        ProcEntry(t, t, 1, "sh", "/bin/sh", "/bin/sh", [], "/", 1024, 0, 0, 0, cgroups=cgroups(t))
        for t in range(PODS, PODS + 2 * THREADS)
    ]
    with path.open("wb") as out:
        out.write(ScapWriter().proclist(procs).bytes())
        for p in range(PODS):
            containers = tuple(Container(f"c{t}", cid(t)) for t in range(PODS, PODS + THREADS) if t % PODS == p)
            pod = Pod(uid(p), f"pod-{p}", f"ns-{p}", labels={"app": f"a{p}"}, containers=containers)
            raw = build_event(
                ASYNC_EVENT,
                {"plugin_id": 0, "name": "k8s_pod", "data": encode_change("state", pod)},
                ts=TS + p,
                tid=2**64 - 1,
            )
            out.write(block(EV_BLOCK, b"\0\0" + bytes(raw)))
        for n in range(events):
            raw = execve_exit(first + n % THREADS, TS + 1000 + n)
            out.write(block(EV_BLOCK, b"\0\0" + raw))
    return path


def run(
    falco: Path, work: Path, capture: Path, plugin: PluginConf | None, condition: str, output: str = "x"
) -> tuple[float, str]:
    rules = work / "rules.yaml"
    rules.write_text(f"- rule: r\n  desc: bench\n  condition: {condition}\n  output: '{output}'\n  priority: INFO\n")
    config = falco_config([plugin] if plugin else [], rules=[rules], json_output=False, engine=replay_engine(capture))
    path = write_config(work / "falco.yaml", config)
    done = run_falco(falco, path, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"Falco failed:\n{done.describe()}")
    return done.cpu_seconds, done.stdout


def build(work: Path) -> tuple[Path, Path]:
    from falco_plugin_tools.build import build_plugin

    compiler = os.environ.get("CC") or shutil.which("cc") or "gcc"
    ref = work / "libk8s_columns_c.so"
    abi = Path(falco_plugin_tools.abi.__file__).parent
    subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-I", str(abi), str(REFERENCE_SRC),
         "-o", str(ref)],
        check=True,
    )  # fmt: skip
    return build_plugin(K8S_PARSE, work / "k8s_parse").library, ref


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--falco", type=Path, default=None)
    args = parser.parse_args(argv)
    falco = args.falco or find_falco()
    if falco is None:
        print("no Falco: set FALCO or use --falco", file=sys.stderr)
        return 2
    n = args.events
    with tempfile.TemporaryDirectory(prefix="falco-k8s-bench-") as tmp:
        work = Path(tmp)
        capture = write_capture(work / "bench.scap", n)
        host = write_capture(work / "host.scap", n, on_host=True)
        empty = write_capture(work / "empty.scap", 0)
        py_lib, c_lib = build(work)
        py, c = PluginConf("k8s_parse", py_lib), PluginConf("k8s_columns_c", c_lib)
        # The fields must have the pod's values, or the timings mean nothing.
        for conf, prefix, want in ((py, "k8s_parse", "pod-0 ns-0"), (c, "k8sref", "web-1 payments")):
            first = f"evt.type = execve and thread.tid = {PODS}"
            _, out = run(falco, work, capture, conf, first, f"CHECK %{prefix}.pod.name %{prefix}.pod.namespace")
            if f"CHECK {want}" not in out:
                raise SystemExit(f"{conf.name}: the fields do not have the pod's values:\n{out}")
        py_fields = "evt.type = execve and (k8s_parse.pod.name = nope or k8s_parse.pod.namespace = nope)"
        c_fields = "evt.type = execve and (k8sref.pod.name = nope or k8sref.pod.namespace = nope)"
        configs: list[tuple[str, PluginConf | None, str, Path]] = [
            ("no plugin", None, NEVER, capture),
            ("k8s_parse, no field", py, NEVER, capture),
            ("k8s_parse, 2 fields", py, py_fields, capture),
            ("C columns, no field", c, NEVER, capture),
            ("C columns, 2 fields", c, c_fields, capture),
            ("host: no plugin", None, NEVER, host),
            ("host: k8s_parse, 0 f.", py, NEVER, host),
            ("host: k8s_parse, 2 f.", py, py_fields, host),
        ]

        # each configuration on its capture, then on the empty one (what it costs besides the events)
        def cpu(replayed: Path, plugin: PluginConf | None, condition: str) -> float:
            return run(falco, work, replayed, plugin, condition)[0]

        times = best_interleaved(
            [
                partial(cpu, r, plugin, condition)
                for _, plugin, condition, replayed in configs
                for r in (replayed, empty)
            ],
            args.repeat,
        )
        best, fixed = times[0::2], times[1::2]
    best = [t - f for t, f in zip(best, fixed, strict=True)]
    base = best[0]
    print(
        f"real Falco replaying {n:,} execve exits of {THREADS} threads in {PODS} pods, best CPU time of {args.repeat}"
    )
    print(f"{'configuration':<22} {'CPU s':>7} {'ns/event':>9} {'vs no plugin':>13}   (start-up excluded)")
    for (label, _, _, replayed), t in zip(configs, best, strict=True):
        vs = t / (base if replayed == capture else best[5])
        print(f"{label:<22} {t:>7.3f} {t / n * 1e9:>9.0f} {vs:>12.2f}x")
    ns = [t / n * 1e9 for t in best]
    print(f"k8s_parse: parse {ns[1] - ns[0]:.0f} ns per execve, {(ns[2] - ns[1]) / 2:.0f} ns per field read")
    print(f"C columns: parse {ns[3] - ns[0]:.0f} ns per execve, {(ns[4] - ns[3]) / 2:.0f} ns per field read")
    print(
        f"host threads, k8s_parse: parse {ns[6] - ns[5]:.0f} ns per execve, {(ns[7] - ns[6]) / 2:.0f} ns per field read"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
