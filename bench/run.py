"""Hot-path benchmark: dummy_py (built by the SDK) against the same plugin written in C.

Both libraries run in the SDK's C host (``falco-plugin-chost``), which loads a
plugin the way libsinsp does and times the plugin calls themselves:

* ``next_batch`` per event produced (the plugins batch up to 128 events);
* ``extract_fields`` per call, one field per call, as libsinsp asks.

State tables are measured the same way in ``bench/reference/tables_host.c``,
a minimal host with a ``threads`` table: ``bench/tables_py`` (built here)
against ``bench/reference/tables.c``, per ``parse_event`` call (reads one
field of the thread and writes one) and per ``extract_fields`` call of a
field reading it.

And the stateful paths, with the SDK's async and metrics fixture plugins
(``tests/plugins/async_events``, ``tests/plugins/metrics``) against
``reference/async.c``:

* async events per second reaching the C host's handler from one background
  thread (``emit`` in a loop; budget at least 200,000/s);
* ``get_metrics`` per call (five metrics), from the C host;
* one metric update (``counter.inc()``) from plugin code, for the C cell the
  SDK gives a built plugin and, for comparison, the locked pure-Python value
  it uses outside one.

Each measurement is repeated and the median is reported next to the budget
the Python plugin must stay within. Timings are informative: the exit status
is 0 whatever they are (only a failure to build or run exits non-zero).

    python bench/run.py [--lib PATH] [--quick] [--repeat N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import falco_plugin
import falco_plugin_tools.abi
from falco_plugin_tools.host.chost import compile_chost

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LIB = ROOT / "plugins" / "dummy" / "libdummy_py.so"
REFERENCE_SRC = Path(__file__).resolve().parent / "reference" / "dummy.c"
TABLES_REFERENCE_SRC = Path(__file__).resolve().parent / "reference" / "tables.c"
TABLES_HOST_SRC = Path(__file__).resolve().parent / "reference" / "tables_host.c"
TABLES_PROJECT = Path(__file__).resolve().parent / "tables_py"
ASYNC_REFERENCE_SRC = Path(__file__).resolve().parent / "reference" / "async.c"
FIXTURES = ROOT / "tests" / "plugins"
ABI_DIR = Path(falco_plugin_tools.abi.__file__).parent

SOURCE_EVENTS = 2_000_000
EXTRACT_EVENTS = 1_000_000
QUICK_SOURCE_EVENTS = 20_000
QUICK_EXTRACT_EVENTS = 10_000
SOURCE_BUDGET_NS = 300.0
EXTRACT_BUDGET_NS = 500.0
CONFIG = '{"jitter": 10}'
PARSE_BUDGET_NS = 1000.0
TABLE_EXTRACT_BUDGET_NS = 600.0
TABLE_CALLS = 1_000_000
QUICK_TABLE_CALLS = 10_000
TABLE_LINE = re.compile(r"^bench (parse|extract)_ns_per_call ([0-9.]+)$", re.MULTILINE)
TABLE_METRICS = (
    ("parse_event: read + write a threads field", "--parse", PARSE_BUDGET_NS),
    ("extract: a threads field", "--extract", TABLE_EXTRACT_BUDGET_NS),
)

ASYNC_SECONDS = 2.0
QUICK_ASYNC_SECONDS = 0.3
METRICS_CALLS = 1_000_000
QUICK_METRICS_CALLS = 10_000
EMIT_BUDGET_PER_S = 200_000.0
ASYNC_LINE = re.compile(r"^async events=(\d+) late=(\d+) per_s=([0-9.]+) stop_ms=([0-9.]+)$", re.MULTILINE)
METRICS_LINE = re.compile(r"^bench metrics_ns_per_call ([0-9.]+)$", re.MULTILINE)
BENCH_LINE = re.compile(r"^bench (source_ns_per_event|extract_ns_per_call) ([0-9.]+)$", re.MULTILINE)
LOOP_LINE = re.compile(r"^bench loop_ns_per_event ([0-9.]+)$", re.MULTILINE)
ENGINE_LINES = 1
"""Cache lines the host touches before each event in the Falco-like table (none before
each field call at this count): the part of a stand-in for Falco's own work between
plugin calls that evicts the plugin's data, as the real engine does (chost --engine-work)."""
FALCO_LIKE = (
    ("source only", "source", None, 1550),
    ("one field (dummy.value)", "extract", "dummy.value", 1880),
    ("three fields", "extract", "dummy.value,dummy.strvalue,dummy.divisible[3]", 3550),
)
"""The rows of bench/falco.py's table, each with the instructions of Falco's own work per
event for that rule, as bench/falco_profile.py measured them (the rest of the stand-in:
chost --engine-spin)."""
DONE_LINE = re.compile(r"^done events=(\d+) rc=", re.MULTILINE)


def compile_reference(dest_dir: Path) -> Path:
    """Build bench/reference/dummy.c the way a C plugin is normally built."""
    compiler = os.environ.get("CC") or shutil.which("cc") or "gcc"
    out = dest_dir / "libdummy_c_ref.so"
    cmd = [compiler, "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-I", str(ABI_DIR)]
    subprocess.run([*cmd, str(REFERENCE_SRC), "-o", str(out)], check=True)
    return out


def compile_tables_bench(dest_dir: Path) -> tuple[Path, Path, Path]:
    """The table host, the C reference and the Python plugin of the table benchmark."""
    from falco_plugin_tools.build import build_plugin

    compiler = os.environ.get("CC") or shutil.which("cc") or "gcc"
    host, ref = dest_dir / "tables_host", dest_dir / "libbench_tables_c.so"
    subprocess.run(
        [compiler, "-O2", "-Wall", "-I", str(ABI_DIR), str(TABLES_HOST_SRC), "-o", str(host), "-ldl"], check=True
    )
    cmd = [compiler, "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-I", str(ABI_DIR)]
    subprocess.run([*cmd, str(TABLES_REFERENCE_SRC), "-o", str(ref)], check=True)
    python = build_plugin(TABLES_PROJECT, dest_dir / "tables_py").library
    return host, ref, python


def run_tables_host(host: Path, lib: Path, mode: str, calls: int) -> str:
    proc = subprocess.run([str(host), str(lib), mode, str(calls)], capture_output=True, text=True, env={}, timeout=300)
    if proc.returncode != 0 or f"done calls={calls}" not in proc.stdout:
        raise BenchError(f"{lib.name} {mode}: host exited {proc.returncode}: {proc.stderr.strip() or proc.stdout}")
    return proc.stdout


def measure_tables(host: Path, python_lib: Path, c_lib: Path, repeat: int, calls: int) -> list[Result]:
    outputs = [run_tables_host(host, lib, "--check", 1000) for lib in (python_lib, c_lib)]
    if outputs[0] != outputs[1]:
        raise BenchError(f"the table reference and {python_lib.name} disagree:\n{outputs[0]}\n{outputs[1]}")
    results = [Result(label, budget) for label, _, budget in TABLE_METRICS]
    for _ in range(repeat):
        for (_, mode, _), result in zip(TABLE_METRICS, results, strict=True):
            for lib, runs in ((python_lib, result.python_runs), (c_lib, result.c_runs)):
                timing = TABLE_LINE.search(run_tables_host(host, lib, mode, calls))
                if not timing:
                    raise BenchError(f"{lib.name} {mode}: no timing in the host output")
                runs.append(float(timing.group(2)))
    return results


def compile_async_reference(dest_dir: Path) -> Path:
    compiler = os.environ.get("CC") or shutil.which("cc") or "gcc"
    out = dest_dir / "libasync_c_ref.so"
    cmd = [compiler, "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-pthread", "-Wall", "-I", str(ABI_DIR)]
    subprocess.run([*cmd, str(ASYNC_REFERENCE_SRC), "-o", str(out)], check=True)
    return out


@dataclass(frozen=True)
class Metric:
    """One row of the table: what the host is asked to do, and the budget."""

    label: str
    kind: str  # "source" or "extract"
    fields: str | None
    budget_ns: float


METRICS = (
    Metric("source: next_batch, ns/event", "source", None, SOURCE_BUDGET_NS),
    Metric("extract dummy.value (uint64)", "extract", "dummy.value", EXTRACT_BUDGET_NS),
    Metric("extract dummy.strvalue (string)", "extract", "dummy.strvalue", EXTRACT_BUDGET_NS),
    Metric("extract dummy.divisible[3] (uint64, arg)", "extract", "dummy.divisible[3]", EXTRACT_BUDGET_NS),
    # Three calls per event: the second and third reuse the event already seen.
    Metric(
        "extract all 3 fields per event",
        "extract",
        "dummy.value,dummy.strvalue,dummy.divisible[3]",
        EXTRACT_BUDGET_NS,
    ),
)


@dataclass
class Result:
    metric: str
    budget_ns: float
    python_runs: list[float] = field(default_factory=list)
    c_runs: list[float] = field(default_factory=list)

    @property
    def python_ns(self) -> float:
        return statistics.median(self.python_runs)

    @property
    def c_ns(self) -> float:
        return statistics.median(self.c_runs)

    @property
    def ratio(self) -> float:
        return self.python_ns / self.c_ns if self.c_ns > 0 else float("inf")

    @property
    def within_budget(self) -> bool:
        return self.python_ns <= self.budget_ns

    def summary(self) -> dict[str, float | bool]:
        return {
            "python_ns": self.python_ns,
            "c_ns": self.c_ns,
            "ratio": self.ratio,
            "within_budget": self.within_budget,
        }


class BenchError(Exception):
    """The host failed or did not run the whole benchmark."""


def run_host(chost: Path, lib: Path, metric: Metric, events: int, engine_lines: int = 0, engine_spin: int = 0) -> float:
    """Run one measurement in the C host; returns its ns per event or per call (with
    ``engine_lines`` or ``engine_spin``, the ns per event of the whole loop, the host's
    stand-in for Falco's work included)."""
    args = [str(chost), str(lib), "--config", CONFIG, "--open", json.dumps({"start": 1, "maxEvents": events})]
    falco_like = bool(engine_lines or engine_spin)
    if falco_like:
        args += ["--engine-work", str(engine_lines), "--engine-spin", str(engine_spin)]
    if metric.kind == "source":
        args += ["--bench-source", str(events)]
    else:
        assert metric.fields is not None
        args += ["--bench-extract", str(events), "--fields", metric.fields]
    # An empty environment, as the tests run the host: nothing from this
    # interpreter's venv (PYTHONPATH, VIRTUAL_ENV...) may reach the plugin.
    proc = subprocess.run([*args, "--quiet"], capture_output=True, text=True, env={}, timeout=300)
    where = f"{lib.name} {metric.label}"
    if proc.returncode != 0:
        raise BenchError(f"{where}: host exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    done = DONE_LINE.search(proc.stdout)
    if not done or int(done.group(1)) != events:
        raise BenchError(f"{where}: expected {events} events, host said: {proc.stdout.strip()}")
    if falco_like:
        loop = LOOP_LINE.search(proc.stdout)
        if not loop:
            raise BenchError(f"{where}: no loop timing in the host output: {proc.stdout.strip()}")
        return float(loop.group(1))
    timing = BENCH_LINE.search(proc.stdout)
    if not timing:
        raise BenchError(f"{where}: no timing in the host output: {proc.stdout.strip()}")
    return float(timing.group(2))


def measure_falco_like(
    chost: Path, python_lib: Path, c_lib: Path, repeat: int, events: int
) -> list[tuple[str, float, float]]:
    """(row, C loop ns/event, Python loop ns/event), medians: the rows of bench/falco.py's table."""
    runs: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label, _, _, _ in FALCO_LIKE}
    for _ in range(repeat):
        for label, kind, fields_, spin in FALCO_LIKE:
            metric = Metric(label, kind, fields_, 0)
            runs[label][0].append(run_host(chost, c_lib, metric, events, ENGINE_LINES, spin))
            runs[label][1].append(run_host(chost, python_lib, metric, events, ENGINE_LINES, spin))
    return [(label, statistics.median(c), statistics.median(py)) for label, (c, py) in runs.items()]


def render_falco_like(rows: Sequence[tuple[str, float, float]]) -> str:
    lines = [
        f"Falco-like: the whole host loop per event, with host work standing in for Falco's own ({ENGINE_LINES} "
        "cache line and Falco's instructions per event) (compare with nox -s falco's table)",
        f"{'row':<26} {'C ns/ev':>8} {'py ns/ev':>9} {'ratio (C/py)':>13}",
    ]
    lines += [f"{label:<26} {c:>8.1f} {py:>9.1f} {c / py:>13.2f}" for label, c, py in rows]
    return "\n".join(lines)


def check_same_plugin(chost: Path, python_lib: Path, c_lib: Path) -> None:
    """Both libraries must extract the same values (jitter 0 makes the samples deterministic)."""
    args = ["--config", '{"jitter": 0}', "--open", '{"start": 7, "maxEvents": 5}']
    args += ["--fields", "dummy.value,dummy.strvalue,dummy.divisible[3]"]
    outputs = []
    for lib in (python_lib, c_lib):
        proc = subprocess.run(
            [str(chost), str(lib), *args],
            capture_output=True,
            text=True,
            env={},
            timeout=60,
        )
        if proc.returncode != 0:
            raise BenchError(f"{lib.name}: host exited {proc.returncode}: {proc.stderr.strip()}")
        outputs.append([line for line in proc.stdout.splitlines() if line.startswith(("evt ", "done "))])
    if outputs[0] != outputs[1]:
        raise BenchError(f"the reference and {python_lib.name} disagree:\n{outputs[0]}\n{outputs[1]}")


def measure(chost: Path, python_lib: Path, c_lib: Path, repeat: int, source_n: int, extract_n: int) -> list[Result]:
    results = [Result(m.label, m.budget_ns) for m in METRICS]
    # Rounds interleave the libraries and metrics so that a slow spell of the
    # machine spreads over every number instead of skewing one.
    for _ in range(repeat):
        for metric, result in zip(METRICS, results, strict=True):
            n = source_n if metric.kind == "source" else extract_n
            result.python_runs.append(run_host(chost, python_lib, metric, n))
            result.c_runs.append(run_host(chost, c_lib, metric, n))
    return results


@dataclass
class Stateful:
    """The async and metrics figures (medians of the rounds)."""

    emit_per_s: list[float] = field(default_factory=list)
    emit_per_s_c: list[float] = field(default_factory=list)
    stop_ms: list[float] = field(default_factory=list)
    get_metrics_ns: list[float] = field(default_factory=list)
    get_metrics_ns_c: list[float] = field(default_factory=list)
    update_ns: list[float] = field(default_factory=list)
    update_ns_pure_python: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | bool]:
        out: dict[str, float | bool] = {
            name: statistics.median(runs) for name, runs in vars(self).items() if isinstance(runs, list) and runs
        }
        out["emit_within_budget"] = bool(self.emit_per_s) and statistics.median(self.emit_per_s) >= EMIT_BUDGET_PER_S
        return out


def _chost(chost: Path, lib: Path, *args: str) -> str:
    proc = subprocess.run([str(chost), str(lib), *args], capture_output=True, text=True, env={}, timeout=300)
    if proc.returncode != 0:
        raise BenchError(f"{lib.name} {' '.join(args)}: host exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def _emit_rate(chost: Path, lib: Path, config: str, seconds: float) -> tuple[float, float]:
    out = _chost(chost, lib, "--config", config, "--async-seconds", str(seconds), "--quiet")
    m = ASYNC_LINE.search(out)
    if not m or int(m.group(2)) != 0:
        raise BenchError(f"{lib.name}: unexpected async summary: {out.strip()}")
    return float(m.group(3)), float(m.group(4))


def _get_metrics_ns(chost: Path, lib: Path, calls: int) -> float:
    out = _chost(chost, lib, "--bench-metrics", str(calls))
    m = METRICS_LINE.search(out)
    if not m:
        raise BenchError(f"{lib.name}: no get_metrics timing: {out.strip()}")
    return float(m.group(1))


def _update_ns(metrics_lib: Path, calls: int) -> float:
    """One ``inc()`` of a C cell, timed inside the plugin (the fixture's ``bench:N`` operation)."""
    from falco_plugin_tools.host import HostEvent, PluginLibrary

    event = HostEvent.plugin_event(b"x", 999, num=1, source="fxt_metrics")
    with PluginLibrary.load(metrics_lib) as lib, lib.init("") as plugin:
        got = plugin.extract(event, f"metrics.op[bench:{calls}]")
    assert isinstance(got, int)
    return got / 1000.0


def _pure_python_update_ns(calls: int) -> float:
    from falco_plugin import Counter

    class Holder:
        hits = Counter("hits")

    inc = Holder().hits.inc
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        inc()
    return (time.perf_counter_ns() - t0) / calls


def measure_stateful(chost: Path, tmp: Path, repeat: int, seconds: float, calls: int) -> Stateful:
    from falco_plugin_tools.build import build_plugin

    async_lib = build_plugin(FIXTURES / "async_events", tmp / "async").library
    metrics_lib = build_plugin(FIXTURES / "metrics", tmp / "metrics").library
    c_lib = compile_async_reference(tmp)
    result = Stateful()
    for _ in range(repeat):
        rate, stop = _emit_rate(chost, async_lib, '{"workers": 1}', seconds)
        result.emit_per_s.append(rate)
        result.stop_ms.append(stop)
        result.emit_per_s_c.append(_emit_rate(chost, c_lib, "", seconds)[0])
        result.get_metrics_ns.append(_get_metrics_ns(chost, metrics_lib, calls))
        result.get_metrics_ns_c.append(_get_metrics_ns(chost, c_lib, calls))
        result.update_ns.append(_update_ns(metrics_lib, calls))
        result.update_ns_pure_python.append(_pure_python_update_ns(calls))
    return result


def render_stateful(s: Stateful) -> str:
    got = s.summary()
    verdict = "yes" if got["emit_within_budget"] else "NO"
    return "\n".join(
        [
            f"async emit, events/s reaching the host: python {got['emit_per_s']:,.0f}  C {got['emit_per_s_c']:,.0f}"
            f"  budget >= {EMIT_BUDGET_PER_S:,.0f}  within budget: {verdict}",
            f"  clearing the handler (stop + join the worker): {got['stop_ms']:.1f} ms",
            f"get_metrics (5 metrics), ns/call: python {got['get_metrics_ns']:.1f}  C {got['get_metrics_ns_c']:.1f}",
            f"metric update (counter.inc()), ns: C cell {got['update_ns']:.1f}"
            f"  pure-Python locked value {got['update_ns_pure_python']:.1f}",
        ]
    )


def render(results: Sequence[Result]) -> str:
    header = ("metric", "python ns", "C ns", "ratio", "budget ns", "within budget")
    rows = [
        (
            r.metric,
            f"{r.python_ns:.1f}",
            f"{r.c_ns:.1f}",
            f"{r.ratio:.1f}x",
            f"{r.budget_ns:.0f}",
            "yes" if r.within_budget else "NO",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join((first, *rest))

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--lib", type=Path, default=DEFAULT_LIB, help=f"the Python-built dummy library (default {DEFAULT_LIB})"
    )
    parser.add_argument("--quick", action="store_true", help="a few thousand events, one round (a smoke test)")
    parser.add_argument(
        "--repeat", type=int, default=None, help="rounds per measurement, the median counts (default 5)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results to PATH as JSON")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 5
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    lib: Path = args.lib.resolve()
    if not lib.is_file():
        print(f"error: {lib} does not exist; build it first (falco-plugin build plugins/dummy)", file=sys.stderr)
        return 1
    source_n = QUICK_SOURCE_EVENTS if args.quick else SOURCE_EVENTS
    extract_n = QUICK_EXTRACT_EVENTS if args.quick else EXTRACT_EVENTS
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="falco-bench-") as tmp:
        try:
            chost = compile_chost(Path(tmp))
            c_lib = compile_reference(Path(tmp))
        except subprocess.CalledProcessError as exc:
            print(f"error: compiling failed: {exc}", file=sys.stderr)
            return 1
        try:
            table_host, table_c, table_py = compile_tables_bench(Path(tmp))
        except (subprocess.CalledProcessError, falco_plugin.SDKError) as exc:
            print(f"error: building the table benchmark failed: {exc}", file=sys.stderr)
            return 1
        table_calls = QUICK_TABLE_CALLS if args.quick else TABLE_CALLS
        try:
            check_same_plugin(chost, lib, c_lib)
            results = measure(chost, lib, c_lib, args.repeat, source_n, extract_n)
            falco_like = measure_falco_like(chost, lib, c_lib, args.repeat, extract_n)
            table_results = measure_tables(table_host, table_py, table_c, args.repeat, table_calls)
            stateful = measure_stateful(
                chost,
                Path(tmp),
                args.repeat,
                QUICK_ASYNC_SECONDS if args.quick else ASYNC_SECONDS,
                QUICK_METRICS_CALLS if args.quick else METRICS_CALLS,
            )
        except (BenchError, subprocess.TimeoutExpired, subprocess.CalledProcessError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    elapsed = time.monotonic() - started

    print(f"python plugin: {lib}")
    print("C reference:   bench/reference/dummy.c (cc -O2)")
    print(
        f"source {source_n:,} events, extract {extract_n:,} events, "
        f"median of {args.repeat} run(s), {platform.machine()} x{os.cpu_count()}, {elapsed:.0f}s"
    )
    print()
    print(render(results))
    print()
    print(render_falco_like(falco_like))
    print()
    print(f"state tables: bench/tables_py vs bench/reference/tables.c, {table_calls:,} calls")
    print(render(table_results))
    print()
    over = [r for r in (*results, *table_results) if not r.within_budget]
    for r in over:
        print(f"OVER BUDGET: {r.metric}: {r.python_ns:.1f} ns > {r.budget_ns:.0f} ns")
    if not over:
        print("all within budget")
    print()
    print(render_stateful(stateful))

    if args.json:
        payload = {
            "library": str(lib),
            "source_events": source_n,
            "extract_events": extract_n,
            "repeat": args.repeat,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "results": [{**asdict(r), **r.summary()} for r in results],
            "falco_like": [{"row": label, "c_ns": c, "python_ns": py, "ratio": c / py} for label, c, py in falco_like],
            "tables": [{**asdict(r), **r.summary()} for r in table_results],
            "stateful": {**asdict(stateful), **stateful.summary()},
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
