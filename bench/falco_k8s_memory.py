"""Does k8s_parse's memory stay bounded over a long run in the real Falco?

Falco replays two captures written with the test suite's writer, with
k8s_parse loaded and a rule that reads two pod fields on every execve:

* short: the 8 pods of ``bench/falco_k8s.py`` and 10,000 execve exits of
  their 64 threads;
* long: the same start, then N events (default 1,000,000) among which C
  pod changes (default 10,000): pods ``churn-<i>`` added, modified and
  deleted in turn (labels and annotations included), so that none is left
  at the end; the other events are short-lived processes of the 8 pods, a
  clone exit (in the child), an execve exit and a procexit each, every one
  in a container of its own (a cgroup path the parser has not seen: its
  memo of paths must stay bounded).

A sampler reads Falco's resident set size (``VmRSS`` of ``/proc/PID/status``)
every 20 ms. The short run's peak is Falco's RSS after start-up; the long
run's peak shows what a million events and ten thousand pod changes leave
behind (the last samples fall in Falco's shutdown, which frees the tables:
they are not the end-of-run figure). Informative only.

    python bench/falco_k8s_memory.py [--events N] [--changes C] [--falco PATH]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from falco_k8s import (  # noqa: E402
    ASYNC_EVENT,
    EV_BLOCK,
    PODS,
    TS,
    build,
    execve_exit,
    uid,
    write_capture,
)
from falco_runner import PluginConf, falco_config, find_falco, replay_engine, write_config  # noqa: E402
from k8s_parse.pods import Action, Pod, encode_change  # noqa: E402
from scapwriter import block, build_event  # noqa: E402

CLONE_20_X, PROCEXIT_1_E = 223, 186
RULE = "evt.type = execve and (k8s_parse.pod.name = nope or k8s_parse.pod.namespace = nope)"
ACTIONS: tuple[Action, ...] = ("added", "modified", "deleted")


def churn_event(i: int, ts: int) -> bytes:
    """Change ``i`` of the churn: pod ``churn-<i // 3>`` added, modified, then deleted."""
    n = i // 3
    pod = Pod(
        f"c{n:07x}-0000-4000-8000-{n:012x}",
        f"churn-{n}",
        "batch",
        resource_version=str(i),
        labels={"app": "job", "run": str(n), "step": ACTIONS[i % 3]},
        annotations={"note": "x" * 200},
    )
    data = encode_change(ACTIONS[i % 3], pod)
    raw = build_event(ASYNC_EVENT, {"plugin_id": 0, "name": "k8s_pod", "data": data}, ts=ts, tid=2**64 - 1)
    return block(EV_BLOCK, b"\0\0" + bytes(raw))


FIRST_CHILD = 100_000


def child_cgroups(child: int) -> list[str]:
    """A cgroup v2 path in one of the 8 pods, in a container of the child's own."""
    p = child % PODS
    pod = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid(p).replace('-', '_')}.slice"
    return [f"={pod}/cri-containerd-{child:064x}.scope"]


def process_event(n: int, ts: int) -> bytes:
    """Event ``n`` of the process churn: child ``n // 3``'s clone exit, execve exit, then exit."""
    child, step = FIRST_CHILD + n // 3, n % 3
    if step == 0:
        values = {
            "res": 0, "exe": "/bin/sh", "args": [], "tid": child, "pid": child, "ptid": PODS, "cwd": "/",
            "fdlimit": 1024, "pgft_maj": 0, "pgft_min": 0, "vm_size": 0, "vm_rss": 0, "vm_swap": 0, "comm": "sh",
            "cgroups": child_cgroups(child), "flags": 0, "uid": 0, "gid": 0, "vtid": child, "vpid": child,
            "pidns_init_start_ts": 0,
        }  # fmt: skip
        raw = bytes(build_event(CLONE_20_X, values, ts=ts, tid=child))
    elif step == 1:
        raw = execve_exit(child, ts, child_cgroups(child))
    else:
        raw = bytes(
            build_event(PROCEXIT_1_E, {"status": 0, "ret": 0, "sig": 0, "core": 0, "reaper_tid": 0}, ts=ts, tid=child)
        )
    return block(EV_BLOCK, b"\0\0" + raw)


def write_long(path: Path, events: int, changes: int) -> Path:
    changes -= changes % 3  # whole add/modify/delete cycles: no churn pod is left at the end
    write_capture(path, 0)
    every = max(1, events // max(1, changes))
    made = steps = 0
    with path.open("ab") as out:
        for n in range(events):
            ts = TS + 1000 + n
            if made < changes and n % every == 0:
                out.write(churn_event(made, ts))
                made += 1
            else:
                out.write(process_event(steps, ts))
                steps += 1
    return path


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def replay(falco: Path, work: Path, capture: Path, plugin: PluginConf) -> tuple[int, int]:
    """Falco replaying ``capture``: its peak RSS (kB) and how many samples."""
    rules = work / "rules.yaml"
    rules.write_text(f"- rule: r\n  desc: bench\n  condition: {RULE}\n  output: x\n  priority: INFO\n")
    config = write_config(
        work / "falco.yaml", falco_config([plugin], rules=[rules], json_output=False, engine=replay_engine(capture))
    )
    proc = subprocess.Popen(
        [str(falco), "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={}
    )
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            kb = rss_kb(proc.pid)
            if kb:
                samples.append(kb)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, err = proc.communicate(timeout=1800)
    done.set()
    sampler.join()
    if proc.returncode != 0 or "Events detected: 0" not in out:
        raise SystemExit(f"Falco failed or the rule fired:\n{out}\n{err}")
    if not samples:
        raise SystemExit("no RSS sample: the replay ended within 20 ms")
    return max(samples), len(samples)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--falco", type=Path, default=None)
    args = parser.parse_args(argv)
    falco = args.falco or find_falco()
    if falco is None:
        print("no Falco: set FALCO or use --falco", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="falco-k8s-memory-") as tmp:
        work = Path(tmp)
        short = write_capture(work / "short.scap", 10_000)
        long = write_long(work / "long.scap", args.events, args.changes)
        py_lib, _ = build(work)
        plugin = PluginConf("k8s_parse", py_lib)
        start_peak, _ = replay(falco, work, short, plugin)
        peak, count = replay(falco, work, long, plugin)
    print(f"real Falco with k8s_parse, VmRSS sampled every 20 ms ({count} samples in the long run)")
    print(f"short replay (start-up, 10,000 execve exits): peak {start_peak / 1024:.1f} MiB")
    print(
        f"long replay ({args.events:,} events, {args.changes - args.changes % 3:,} pod changes): "
        f"peak {peak / 1024:.1f} MiB, {(peak - start_peak) / 1024:+.1f} MiB over the short run's"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
