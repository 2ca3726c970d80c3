"""What a Python parsing plugin costs inside the real Falco replaying a capture.

A capture of N syscall events (default 1,000,000) is written with the test
suite's writer (``sdk/tests/scapwriter.py``): 64 threads from the process
list, half the events ``open`` exits, half ``read`` exits. Falco replays it
(``engine.kind: replay``) against a rule that never fires, three ways:

* no plugin: libsinsp alone;
* the Python ``bench_tables`` plugin (``bench/tables_py``): ``parse_event`` on
  every ``open`` exit reads the event's thread in the ``threads`` table and
  increments a column of its own;
* the same plugin in C (``bench/reference/tables.c``), for scale.

Each figure is the best CPU time (user + system) of ``--repeat`` runs, the
configurations interleaved; the table gives the time per event and the ratio
to Falco without plugin. Informative only: the exit status is 0 whatever the
timings are.

    python bench/falco_parse.py [--events N] [--repeat R] [--falco PATH]
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "falco"))  # the helper the Falco tests run Falco with
sys.path.insert(0, str(ROOT / "sdk" / "tests"))  # the capture writer of the test suite
sys.path.insert(0, str(ROOT / "bench"))  # bench/run.py builds the table plugins

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
from run import compile_tables_bench  # noqa: E402
from scapwriter import ScapWriter, block, build_event  # noqa: E402

OPEN_X, READ_X = 3, 7
EV_BLOCK = 0x216
THREADS = 64
CONDITION = "evt.type = mkdir and proc.name = never_such_process"


def write_capture(path: Path, events: int) -> Path:
    """``events`` events over ``THREADS`` threads of one process list, as a plain .scap file."""
    procs = [
        ProcEntry(1000 + i, 1000 + i, 1, f"worker{i}", "/bin/w", "/bin/w", [], "/", 1024, 0, 0, 0)
        for i in range(THREADS)
    ]
    templates = [
        bytearray(build_event(OPEN_X, {"fd": 3, "name": "/etc/hosts", "flags": 1, "mode": 0, "dev": 0, "ino": 0})),
        bytearray(build_event(READ_X, {"res": 4, "data": b"data"})),
    ]
    with path.open("wb") as out:
        out.write(ScapWriter().proclist(procs).bytes())
        for n in range(events):
            raw = templates[n % 2]
            struct.pack_into("<QQ", raw, 0, 1_700_000_000_000_000_000 + n * 1000, 1000 + n % THREADS)
            out.write(block(EV_BLOCK, struct.pack("<H", 0) + raw))  # an EV block: cpu, then the event
    return path


def run(falco: Path, work: Path, capture: Path, plugin: PluginConf | None) -> float:
    rules = work / "rules.yaml"
    rules.write_text(f"- rule: never\n  desc: never fires\n  condition: {CONDITION}\n  output: x\n  priority: INFO\n")
    config = falco_config([plugin] if plugin else [], rules=[rules], json_output=False, engine=replay_engine(capture))
    path = write_config(work / f"falco-{plugin.name if plugin else 'none'}.yaml", config)
    done = run_falco(falco, path, timeout=900)
    if done.returncode != 0 or "Events detected: 0" not in done.stdout:
        raise SystemExit(f"Falco failed or a rule fired:\n{done.describe()}")
    return done.cpu_seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--falco", type=Path, default=None)
    args = parser.parse_args(argv)
    falco = args.falco or find_falco()
    if falco is None:
        print("no Falco: set FALCO or use --falco", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="falco-parse-bench-") as tmp:
        work = Path(tmp)
        capture = write_capture(work / "bench.scap", args.events)
        _, c_lib, py_lib = compile_tables_bench(work)
        configs: list[tuple[str, PluginConf | None]] = [
            ("no plugin", None),
            ("bench_tables (Python)", PluginConf("bench_tables", py_lib, "")),
            ("bench_tables (C)", PluginConf("bench_tables_c", c_lib, "")),
        ]
        best = best_interleaved([partial(run, falco, work, capture, conf) for _, conf in configs], args.repeat)
    base = best[0]
    print(f"real Falco replaying {args.events:,} syscall events (half of them parsed), best CPU time of {args.repeat}")
    print(f"{'configuration':<24} {'CPU s':>7} {'ns/event':>9} {'vs no plugin':>13}")
    for (label, _), t in zip(configs, best, strict=True):
        print(f"{label:<24} {t:>7.2f} {t / args.events * 1e9:>9.0f} {t / base:>12.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
