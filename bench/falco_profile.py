"""Where a Python plugin's time goes inside the real Falco: instructions per event, by part.

The rows of ``bench/falco.py`` (dummy_py against upstream's C dummy_c), each
run twice under ``valgrind --tool=callgrind`` (``--events`` and twice as
many): the difference divided by the extra events is the cost of one event,
start-up excluded. Instruction counts do not depend on what else the machine
is doing, so a change to the SDK shows up here even on a busy machine; they
track Falco's CPU time closely (the ratios agree with ``bench/falco.py``
within a few hundredths), but are not time: cache misses are not counted.

For dummy_py the cost is split by what callgrind attributes to the plugin's
two entry points:

* Falco: everything outside ``plugin_next_batch`` and ``plugin_extract_fields``
  (libsinsp, the rule engine, the source loop);
* next_batch, extract: the entry point's inclusive cost, split into the
  plugin's own Python (the call of its ``next_batch`` or field method, and
  everything that runs inside it), taking and releasing the GIL, and the rest
  of the SDK's glue (event headers, pointing the Event at the event,
  converting the value).

    python bench/falco_profile.py [--events N] [--falco PATH] [--dummy-py LIB] [--dummy-c LIB]

Needs valgrind; exits 2 without it or without a Falco.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "falco"))
sys.path.insert(0, str(ROOT / "bench"))

from falco import ROWS, Plugin, Row, run_config  # noqa: E402
from falco_runner import DUMMY_C, PLUGIN_ONLY, find_falco  # noqa: E402

DEFAULT_EVENTS = 20_000

# What a callee of an entry point is, by function name.
# The glue calls a field's function through its vectorcall slot (_PyFunction_Vectorcall), and takes and
# drops the GIL with the host thread's kept thread state (PyEval_RestoreThread/SaveThread, after a
# look at the current one); the PyGILState_* pair is what it used before, and still uses on first calls.
PLUGIN_PYTHON = ("PyObject_Vectorcall", "PyObject_CallNoArgs", "_PyFunction_Vectorcall")
GIL = (
    "PyGILState_Ensure",
    "PyGILState_Release",
    "PyEval_RestoreThread",
    "PyEval_SaveThread",
    "_PyThreadState_UncheckedGet",
    "PyThreadState_GetUnchecked",
)
ENTRY_POINTS = {"next_batch": "plugin_next_batch", "extract": "plugin_extract_fields"}

_LINE = re.compile(r"^\s*([\d,]+) \([ \d.%]+\)\s+([*>])\s+(\S+)")
_TOTAL = re.compile(r"^\s*([\d,]+) \([ \d.%]+\)\s+PROGRAM TOTALS")


class ProfileError(Exception):
    pass


@dataclass
class Counts:
    """Instructions of one Falco run: the total, and per entry point its
    inclusive cost and that of each of its callees (by function name)."""

    total: int
    entries: dict[str, int]
    callees: dict[str, dict[str, int]]

    def part(self, entry: str, names: Sequence[str]) -> int:
        return sum(v for k, v in self.callees.get(entry, {}).items() if k in names)


def _function(location: str) -> str:
    return location.rsplit(":", 1)[-1]


def parse_annotate(text: str) -> Counts:
    """``callgrind_annotate --inclusive=yes --tree=calling`` output -> Counts."""
    total = 0
    entries: dict[str, int] = {}
    callees: dict[str, dict[str, int]] = {}
    current: str | None = None
    for line in text.splitlines():
        if m := _TOTAL.match(line):
            total = int(m[1].replace(",", ""))
            continue
        m = _LINE.match(line)
        if not m:
            continue
        cost, kind, fn = int(m[1].replace(",", "")), m[2], _function(m[3])
        if kind == "*":
            # An entry point has a block per source file its inlined code comes
            # from (common.c, object.h...); the largest is the whole function,
            # the others are already inside it.
            current = next((e for e, sym in ENTRY_POINTS.items() if fn == sym), None)
            if current is not None and cost > entries.get(current, 0):
                entries[current] = cost
                callees[current] = {}
            elif current is not None:
                current = None
        elif current is not None:
            callees[current][fn] = callees[current].get(fn, 0) + cost
    if not total:
        raise ProfileError("callgrind_annotate printed no PROGRAM TOTALS")
    return Counts(total, entries, callees)


def run_counted(falco: Path, workdir: Path, plugin: Plugin, row: Row, events: int) -> Counts:
    tag = f"{plugin.name}-{ROWS.index(row)}-{events}"
    config = run_config(workdir, plugin, row, events, tag)
    out = workdir / f"{tag}.callgrind"
    valgrind = shutil.which("valgrind") or "valgrind"
    cmd = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", str(falco), "-c", str(config), *PLUGIN_ONLY]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={}, timeout=900)
    if proc.returncode != 0 or "Events detected: 0" not in proc.stdout:
        raise ProfileError(f"{plugin.label}, {row.label}: Falco failed under callgrind:\n{proc.stderr[-3000:]}")
    annotate = shutil.which("callgrind_annotate") or "callgrind_annotate"
    # Run away from the sources: there, callgrind_annotate lists a function
    # once more under the relative file name the debug information records.
    text = subprocess.run(
        [annotate, "--inclusive=yes", "--tree=calling", str(out)],
        capture_output=True,
        text=True,
        check=True,
        cwd=workdir,
    ).stdout
    out.unlink()
    return parse_annotate(text)


@dataclass
class RowResult:
    label: str
    c: float
    py: float
    parts: dict[str, float]


def per_event(small: Counts, big: Counts, extra: int) -> tuple[float, dict[str, float]]:
    def d(a: int, b: int) -> float:
        return (b - a) / extra

    parts: dict[str, float] = {}
    entries = 0.0
    for entry in ENTRY_POINTS:
        whole = d(small.entries.get(entry, 0), big.entries.get(entry, 0))
        python = d(small.part(entry, PLUGIN_PYTHON), big.part(entry, PLUGIN_PYTHON))
        gil = d(small.part(entry, GIL), big.part(entry, GIL))
        parts[f"{entry}: plugin Python"] = python
        parts[f"{entry}: GIL"] = gil
        parts[f"{entry}: SDK glue"] = whole - python - gil
        entries += whole
    total = d(small.total, big.total)
    parts = {"Falco": total - entries, **parts}
    return total, parts


def measure(falco: Path, plugins: Sequence[Plugin], events: int) -> list[RowResult]:
    results: list[RowResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-falco-profile-") as tmp, ThreadPoolExecutor(2) as pool:
        workdir = Path(tmp)
        for row in ROWS:
            jobs = {
                (p.name, n): pool.submit(run_counted, falco, workdir, p, row, n)
                for p in plugins
                for n in (events, 2 * events)
            }
            totals: list[float] = []
            parts: dict[str, float] = {}
            for p in plugins:
                total, split = per_event(jobs[(p.name, events)].result(), jobs[(p.name, 2 * events)].result(), events)
                totals.append(total)
                if p.name == "dummy_py":
                    parts = split
            results.append(RowResult(row.label, totals[0], totals[1], parts))
            print(f"  {row.label}: C {totals[0]:,.0f}, dummy_py {totals[1]:,.0f} instructions/event", flush=True)
    return results


def render(results: list[RowResult]) -> str:
    names = list(results[0].parts)
    lines = [
        "| " + " | ".join(["instructions per event", *(r.label.split(" (")[0] for r in results)]) + " |",
        "|" + "---|" * (len(results) + 1),
        "| C dummy_c, whole event | " + " | ".join(f"{r.c:,.0f}" for r in results) + " |",
        "| dummy_py, whole event | " + " | ".join(f"{r.py:,.0f}" for r in results) + " |",
        "| ratio C / dummy_py | " + " | ".join(f"{r.c / r.py:.2f}" for r in results) + " |",
    ]
    for name in names:
        lines.append(f"| dummy_py: {name} | " + " | ".join(f"{r.parts[name]:,.0f}" for r in results) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--events", type=int, default=DEFAULT_EVENTS, help=f"events of the smaller run ({DEFAULT_EVENTS})"
    )
    parser.add_argument("--falco", type=Path, help="the falco binary (default: $FALCO, else shared/realhost/falco)")
    parser.add_argument("--dummy-py", type=Path, default=ROOT / "plugins" / "dummy" / "libdummy_py.so")
    parser.add_argument("--dummy-c", type=Path, help="upstream's libdummy_c.so (default: beside Falco)")
    args = parser.parse_args(argv)
    falco = args.falco or find_falco()
    if falco is None:
        print("error: no Falco: pass --falco PATH or set FALCO", file=sys.stderr)
        return 2
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        print("error: needs valgrind (callgrind and callgrind_annotate)", file=sys.stderr)
        return 2
    dummy_c = args.dummy_c or (DUMMY_C if DUMMY_C.is_file() else falco.parent / DUMMY_C.name)
    plugins = [Plugin("C", "dummy_c", "dummy_c", dummy_c), Plugin("dummy_py", "dummy_py", "dummy_py", args.dummy_py)]
    for p in plugins:
        if not p.library.is_file():
            print(f"error: {p.library} does not exist", file=sys.stderr)
            return 2
    print(f"Falco: {falco}\n{args.events:,} and {2 * args.events:,} events per row under callgrind")
    try:
        results = measure(falco, plugins, args.events)
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print()
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
