"""Throughput in the real Falco: dummy_py (built by the SDK) against upstream's C++ dummy_c.

Each run is a whole Falco process (``engine.kind: nodriver``,
``--disable-source syscall``) reading N events from one plugin (open params
``{"start": 1, "maxEvents": N}``, init config ``{"jitter": 10}``) against one
rule that never fires, so what is timed is Falco pulling events from the
plugin and evaluating the condition, with no output. Rows:

* source only: ``evt.num = 0``, no plugin field extracted;
* one field: ``dummy.value = 0``;
* three fields: ``dummy.value = 0 or dummy.strvalue = "0" or dummy.divisible[3] = 2``
  (all false, so all three are extracted);
* start-up: the whole process with 1 event, in seconds.

Every measurement is the best of ``--repeat`` runs (default 3), the two
plugins interleaved. Start-up (the same config with 1 event) is subtracted:
``ev/s = (N - 1) / (best(N events) - best(1 event))``. Falco's own count of
the events it read (``-v``) must be N for both plugins, or the run fails.

Runs are timed by the CPU time (user + system, all threads) of the Falco
process by default: on a machine shared with other work, wall-clock time
mostly measures how long Falco waited for a core (``--clock wall`` for it).

    python bench/falco.py [--events N] [--repeat R] [--falco PATH] [--dummy-py LIB] [--dummy-c LIB]

Timings are informative: the exit status is 0 whatever they are (only a
failure to run Falco, a count mismatch or an alert exits non-zero).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "falco"))  # the helper the Falco tests run Falco with

from falco_runner import (  # noqa: E402
    DUMMY_C,
    PLUGIN_ONLY,
    FalcoRun,
    PluginConf,
    best_interleaved,
    falco_config,
    find_falco,
    run_falco,
    write_config,
)

DEFAULT_EVENTS = 2_000_000
INIT_CONFIG = {"jitter": 10}


@dataclass(frozen=True)
class Plugin:
    label: str
    name: str
    source: str
    library: Path


@dataclass(frozen=True)
class Row:
    label: str
    condition: str


ROWS = [
    Row("source only (evt.num = 0)", "evt.num = 0"),
    Row("one field (dummy.value = 0)", "dummy.value = 0"),
    Row(
        "three fields (value, strvalue, divisible[3])",
        'dummy.value = 0 or dummy.strvalue = "0" or dummy.divisible[3] = 2',
    ),
]


class BenchError(Exception):
    pass


def rule_file(path: Path, source: str, condition: str) -> Path:
    rule = {
        "rule": "never fires",
        "desc": "benchmark rule: its condition is false for every event",
        "condition": condition,
        "output": "unexpected match (evt.num=%evt.num)",
        "priority": "INFO",
        "source": source,
    }
    path.write_text(json.dumps([rule], indent=2) + "\n")
    return path


def run_config(workdir: Path, plugin: Plugin, row: Row, events: int, tag: str) -> Path:
    """The Falco config (and its rule file, both named after ``tag``) of one run: ``plugin``
    producing ``events`` events against ``row``'s rule."""
    rules = rule_file(workdir / f"{tag}_rules.yaml", plugin.source, row.condition)
    conf = PluginConf(plugin.name, plugin.library, INIT_CONFIG, json.dumps({"start": 1, "maxEvents": events}))
    return write_config(workdir / f"{tag}.yaml", falco_config([conf], rules=[rules], json_output=False))


def run_once(falco: Path, workdir: Path, plugin: Plugin, row: Row, events: int, clock: str) -> float:
    """Seconds (``clock``: CPU or wall) one Falco process takes to read ``events`` events of ``plugin``."""
    config = run_config(workdir, plugin, row, events, plugin.source)
    run: FalcoRun = run_falco(falco, config, *PLUGIN_ONLY, "-v", timeout=600)
    if run.returncode != 0:
        raise BenchError(f"Falco failed:\n{run.describe()}")
    captured = run.captured()
    if captured != {plugin.source: events}:
        raise BenchError(f"{plugin.label}: Falco read {captured}, expected {events} events of {plugin.source}")
    if "Events detected: 0" not in run.stdout:
        raise BenchError(f"{plugin.label}: the rule {row.condition!r} fired:\n{run.stdout[-2000:]}")
    return run.cpu_seconds if clock == "cpu" else run.seconds


def best_of(
    falco: Path, workdir: Path, plugins: Sequence[Plugin], row: Row, events: int, repeat: int, clock: str
) -> list[float]:
    """Best time per plugin, the plugins interleaved so that a busy moment of the machine hits both."""
    return best_interleaved([partial(run_once, falco, workdir, p, row, events, clock) for p in plugins], repeat)


def measure(
    falco: Path, plugins: Sequence[Plugin], events: int, repeat: int, clock: str
) -> tuple[list[tuple[str, list[float]]], list[float]]:
    """Events per second per row and plugin, and the start-up seconds per plugin."""
    rows: list[tuple[str, list[float]]] = []
    startup: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-falco-") as tmp:
        workdir = Path(tmp)
        for row in ROWS:
            one = best_of(falco, workdir, plugins, row, 1, repeat, clock)
            full = best_of(falco, workdir, plugins, row, events, repeat, clock)
            rates = [(events - 1) / (f - o) if f > o else float("inf") for f, o in zip(full, one, strict=True)]
            rows.append((row.label, rates))
            print(
                f"  {row.label}: {', '.join(f'{p.label} {r:,.0f} ev/s' for p, r in zip(plugins, rates, strict=True))}"
            )
            if not startup:
                startup = one
    return rows, startup


def render(plugins: Sequence[Plugin], rows: list[tuple[str, list[float]]], startup: list[float]) -> str:
    c, py = plugins
    header = f"| {'row':<46} | {c.label + ' ev/s':>14} | {py.label + ' ev/s':>14} | {'ratio':>6} |"
    lines = [header, f"|{'-' * 48}|{'-' * 15}:|{'-' * 15}:|{'-' * 7}:|"]
    for label, (c_rate, py_rate) in rows:
        lines.append(f"| {label:<46} | {c_rate:>14,.0f} | {py_rate:>14,.0f} | {py_rate / c_rate:>6.2f} |")
    c_s, py_s = startup
    lines.append(
        f"| {'start-up (1 event, whole process, seconds)':<46} | {c_s:>14.3f} | {py_s:>14.3f} | {py_s / c_s:>6.2f} |"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--events", type=int, default=DEFAULT_EVENTS, help=f"events per run (default {DEFAULT_EVENTS:,})"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts (default 3)")
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="time runs by the CPU time of the Falco process (default; steady on a shared machine) or wall clock",
    )
    parser.add_argument("--falco", type=Path, help="the falco binary (default: $FALCO, else shared/realhost/falco)")
    parser.add_argument(
        "--dummy-py", type=Path, default=ROOT / "plugins" / "dummy" / "libdummy_py.so", help="the dummy_py library"
    )
    parser.add_argument(
        "--dummy-c", type=Path, help="upstream's libdummy_c.so (default: shared/realhost's, else the one beside Falco)"
    )
    args = parser.parse_args(argv)
    if args.events < 2 or args.repeat < 1:
        parser.error("--events must be >= 2 and --repeat >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    falco = args.falco or find_falco()
    if falco is None:
        print("error: no Falco: pass --falco PATH or set FALCO", file=sys.stderr)
        return 2
    dummy_c = args.dummy_c or (DUMMY_C if DUMMY_C.is_file() else falco.parent / DUMMY_C.name)
    plugins = [
        Plugin("C", "dummy_c", "dummy_c", dummy_c),
        Plugin("dummy_py", "dummy_py", "dummy_py", args.dummy_py),
    ]
    for p in plugins:
        if not p.library.is_file():
            hint = " (build it: falco-plugin build plugins/dummy)" if p.name == "dummy_py" else ""
            print(f"error: {p.library} does not exist{hint}", file=sys.stderr)
            return 2
    print(f"Falco: {falco}")
    print(f"dummy_c: {dummy_c}\ndummy_py: {args.dummy_py}")
    clock = "CPU time (user + system) of the Falco process" if args.clock == "cpu" else "wall clock"
    print(f"{args.events:,} events per run, best of {args.repeat}, start-up (1 event) subtracted, {clock}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    try:
        rows, startup = measure(falco, plugins, args.events, args.repeat, args.clock)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print()
    print(render(plugins, rows, startup))
    print("\nratio: dummy_py / C (events per second; seconds on the start-up row)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
