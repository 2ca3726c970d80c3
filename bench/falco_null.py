"""The null pair: what the SDK itself costs per event and per field call, in the real Falco and the C host.

``bench/reference/null.c`` (null_c) and ``bench/null_py`` (null_py, built here
by the SDK) are the same plugin, doing no work of their own: source ``null``
handing out 128 ready-made one-byte payloads per ``next_batch`` until
``maxEvents`` (open params), and a field ``null.one`` (uint64) that is always
1. So the same rules run on both, and whatever Falco spends on null_py beyond
null_c is the SDK's: taking the GIL, the glue, the calls into Python.

In the real Falco (``engine.kind: nodriver``, one library per run, a rule that
never fires), as ``bench/falco.py`` does for dummy: CPU time (user + system) of
the Falco process, best of ``--repeat`` (default 5), the two plugins
interleaved, start-up (the same run with 1 event) subtracted, Falco's own
count of the events it read checked. Rows:

* source only: ``evt.num = 0``, no field extracted;
* one field: ``null.one = 0``, one field call per event;
* one field, 2 sources: the same with upstream's ``dummy_c`` loaded too (10
  events): with more than one source, Falco reads each on a thread of its
  own, so the plugin is called from a thread that is not the one that
  initialised it (and, for a Python plugin, started Python).

In the C host (``chost --bench-source`` / ``--bench-extract``, the time inside
the plugin calls only), median of ``--repeat``: ns per event of
``next_batch``, ns per ``extract_fields`` call of ``null.one``.

    python bench/falco_null.py [--events N] [--chost-events N] [--repeat R] [--falco PATH] [--null-py LIB]
                               [--no-falco] [--no-chost]

Timings are informative: the exit status is 0 whatever they are (only a
failure to build or run, a count mismatch or an alert exits non-zero).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "falco"))  # the helper the Falco tests run Falco with

import falco_plugin_tools.abi  # noqa: E402
from falco_plugin_tools.host.chost import compile_chost  # noqa: E402
from falco_runner import (  # noqa: E402
    DUMMY_C,
    PLUGIN_ONLY,
    PluginConf,
    best_interleaved,
    falco_config,
    find_falco,
    run_falco,
    write_config,
)

BENCH = Path(__file__).resolve().parent
NULL_C_SRC = BENCH / "reference" / "null.c"
NULL_PY_PROJECT = BENCH / "null_py"
ABI_DIR = Path(falco_plugin_tools.abi.__file__).parent
SOURCE = "null"
DEFAULT_EVENTS = 4_000_000
CHOST_EVENTS = 2_000_000
BENCH_LINE = re.compile(r"^bench (source_ns_per_event|extract_ns_per_call) ([0-9.]+)$", re.MULTILINE)
DONE_LINE = re.compile(r"^done events=(\d+) rc=", re.MULTILINE)


@dataclass(frozen=True)
class Plugin:
    label: str
    name: str
    library: Path


@dataclass(frozen=True)
class Row:
    label: str
    condition: str
    second_source: bool = False


ROWS = [
    Row("source only (evt.num = 0)", "evt.num = 0"),
    Row("one field (null.one = 0)", "null.one = 0"),
    Row("one field, 2 sources", "null.one = 0", second_source=True),
]
SECOND_SOURCE_EVENTS = 10


class BenchError(Exception):
    pass


def build_pair(workdir: Path, null_py: Path | None) -> tuple[Path, Path]:
    """(null_c, null_py) libraries: the C one compiled as C plugins are, the Python one built by the SDK
    unless given."""
    compiler = os.environ.get("CC") or shutil.which("cc") or "gcc"
    null_c = workdir / "libnull_c.so"
    cmd = [compiler, "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-I", str(ABI_DIR)]
    subprocess.run([*cmd, str(NULL_C_SRC), "-o", str(null_c)], check=True)
    if null_py is None:
        from falco_plugin_tools.build import build_plugin

        null_py = build_plugin(NULL_PY_PROJECT, workdir / "null_py").library
    return null_c, null_py


def rule_file(path: Path, condition: str) -> Path:
    rule = {
        "rule": "never fires",
        "desc": "benchmark rule: its condition is false for every event",
        "condition": condition,
        "output": "unexpected match (evt.num=%evt.num)",
        "priority": "INFO",
        "source": SOURCE,
    }
    path.write_text(json.dumps([rule], indent=2) + "\n")
    return path


def run_once(falco: Path, workdir: Path, plugin: Plugin, row: Row, events: int, clock: str) -> float:
    """Seconds (``clock``: CPU or wall) one Falco process takes to read ``events`` events of ``plugin``."""
    rules = rule_file(workdir / f"{plugin.name}_rules.yaml", row.condition)
    confs = [PluginConf(plugin.name, plugin.library, None, json.dumps({"maxEvents": events}))]
    expected = {SOURCE: events}
    if row.second_source:
        params = json.dumps({"start": 1, "maxEvents": SECOND_SOURCE_EVENTS})
        confs.append(PluginConf("dummy_c", DUMMY_C, {"jitter": 10}, params))
        expected["dummy_c"] = SECOND_SOURCE_EVENTS
    config = write_config(workdir / f"{plugin.name}.yaml", falco_config(confs, rules=[rules], json_output=False))
    run = run_falco(falco, config, *PLUGIN_ONLY, "-v", timeout=600)
    if run.returncode != 0:
        raise BenchError(f"Falco failed:\n{run.describe()}")
    if run.captured() != expected:
        raise BenchError(f"{plugin.label}: Falco read {run.captured()}, expected {expected}")
    if "Events detected: 0" not in run.stdout:
        raise BenchError(f"{plugin.label}: the rule {row.condition!r} fired:\n{run.stdout[-2000:]}")
    return run.cpu_seconds if clock == "cpu" else run.seconds


def measure_falco(
    falco: Path, workdir: Path, plugins: Sequence[Plugin], events: int, repeat: int, clock: str
) -> list[tuple[str, list[float]]]:
    """Events per second of Falco, per row and plugin."""
    rows: list[tuple[str, list[float]]] = []
    for row in ROWS:
        one, full = (
            best_interleaved([partial(run_once, falco, workdir, p, row, n, clock) for p in plugins], repeat)
            for n in (1, events)
        )
        rates = [(events - 1) / (f - o) if f > o else float("inf") for f, o in zip(full, one, strict=True)]
        rows.append((row.label, rates))
        print(f"  {row.label}: {', '.join(f'{p.label} {r:,.0f} ev/s' for p, r in zip(plugins, rates, strict=True))}")
    return rows


def render(title: str, plugins: Sequence[Plugin], rows: list[tuple[str, list[float]]], number: str, diff: bool) -> str:
    """A table of one value per plugin and row (formatted by ``number``), then Python against C:
    their difference (``diff``) or their ratio."""
    c, py = plugins
    lines = [
        f"| {title:<28} | {c.label:>12} | {py.label:>12} | {'py - C' if diff else 'py / C':>6} |",
        f"|{'-' * 30}|{'-' * 13}:|{'-' * 13}:|{'-' * 7}:|",
    ]
    for label, (c_value, py_value) in rows:
        versus = f"{py_value - c_value:>6.1f}" if diff else f"{py_value / c_value:>6.2f}"
        lines.append(f"| {label:<28} | {c_value:>12{number}} | {py_value:>12{number}} | {versus} |")
    return "\n".join(lines)


def run_chost(chost: Path, lib: Path, kind: str, events: int) -> float:
    """ns per event (source) or per field call (extract) inside the plugin, from the C host."""
    args = [str(chost), str(lib), "--open", json.dumps({"maxEvents": events})]
    if kind == "source":
        args += ["--bench-source", str(events)]
    else:
        args += ["--bench-extract", str(events), "--fields", "null.one"]
    # An empty environment, as the tests run the host: nothing of this venv may reach the plugin.
    proc = subprocess.run([*args, "--quiet"], capture_output=True, text=True, env={}, timeout=300)
    if proc.returncode != 0:
        raise BenchError(f"{lib.name} {kind}: host exited {proc.returncode}: {proc.stderr.strip() or proc.stdout}")
    done = DONE_LINE.search(proc.stdout)
    timing = BENCH_LINE.search(proc.stdout)
    if not done or int(done.group(1)) != events or not timing:
        raise BenchError(f"{lib.name} {kind}: expected {events} events and a timing, host said: {proc.stdout}")
    return float(timing.group(2))


def measure_chost(chost: Path, plugins: Sequence[Plugin], repeat: int, events: int) -> list[tuple[str, list[float]]]:
    """Median ns per unit, per row and plugin (rounds interleave the plugins)."""
    kinds = (
        ("next_batch, ns/event", "source", events),
        ("extract null.one, ns/call", "extract", events),
    )
    runs: dict[str, list[list[float]]] = {label: [[] for _ in plugins] for label, _, _ in kinds}
    for _ in range(repeat):
        for label, kind, events in kinds:
            for i, plugin in enumerate(plugins):
                runs[label][i].append(run_chost(chost, plugin.library, kind, events))
    return [(label, [statistics.median(r) for r in per_plugin]) for label, per_plugin in runs.items()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--events", type=int, default=DEFAULT_EVENTS, help=f"events per Falco run (default {DEFAULT_EVENTS:,})"
    )
    parser.add_argument(
        "--chost-events", type=int, default=CHOST_EVENTS, help=f"events per C host run (default {CHOST_EVENTS:,})"
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="time Falco runs by the CPU time of the process (default; steady on a shared machine) or wall clock",
    )
    parser.add_argument("--falco", type=Path, help="the falco binary (default: $FALCO, else shared/realhost/falco)")
    parser.add_argument("--null-py", type=Path, help="a built null_py library (default: build bench/null_py here)")
    parser.add_argument("--no-falco", action="store_true", help="skip the real Falco table")
    parser.add_argument("--no-chost", action="store_true", help="skip the C host table")
    args = parser.parse_args(argv)
    if args.events < 2 or args.chost_events < 1 or args.repeat < 1:
        parser.error("--events must be >= 2, --chost-events and --repeat >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    falco = None if args.no_falco else (args.falco or find_falco())
    if not args.no_falco and falco is None:
        print("error: no Falco: pass --falco PATH or set FALCO (or --no-falco)", file=sys.stderr)
        return 2
    if falco is not None and not DUMMY_C.is_file():
        print(f"error: {DUMMY_C} (upstream's dummy_c, the second source) does not exist", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-null-") as tmp:
        workdir = Path(tmp)
        try:
            null_c, null_py = build_pair(workdir, args.null_py)
            chost = None if args.no_chost else compile_chost(workdir)
        except subprocess.CalledProcessError as exc:
            print(f"error: compiling failed: {exc}", file=sys.stderr)
            return 1
        plugins = [Plugin("null_c", "null_c", null_c), Plugin("null_py", "null_py", null_py)]
        print(f"null_py: {null_py}")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
        tables = []
        try:
            if chost is not None:
                print(f"C host: median of {args.repeat}")
                rows = measure_chost(chost, plugins, args.repeat, args.chost_events)
                tables.append(render("C host, ns inside the plugin", plugins, rows, ".1f", diff=True))
            if falco is not None:
                clock = "CPU time (user + system)" if args.clock == "cpu" else "wall clock"
                print(
                    f"Falco {falco}: {args.events:,} events per run, best of {args.repeat}, "
                    f"start-up (1 event) subtracted, {clock}"
                )
                rates = measure_falco(falco, workdir, plugins, args.events, args.repeat, args.clock)
                tables.append(render("Falco, events/s of CPU", plugins, rates, ",.0f", diff=False))
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    for table in tables:
        print()
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
