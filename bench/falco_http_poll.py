"""http_poll in the real Falco against a loopback audit API: records per second of Falco CPU.

The API (http_poll's test fake, on 127.0.0.1) serves ``--records`` Kubernetes-audit-like
records of about 2.4 KB under ``/data``, ``--page`` per page linked by ``Link: rel="next"``;
each run is a whole Falco process polling once (``max_polls: 1``) against one rule that
never fires:

* source only: ``evt.num = 0``;
* one field: ``http_poll.value[/verb] = "never"``;
* three fields: the same ``or`` ``/user/username`` ``or`` ``/objectRef/resource`` (all false,
  so all three are extracted).

The libraries compared:

* ``C reference``: ``bench/reference/http_poll.c``, http_poll written in C as a C author
  would (libcurl, yyjson compiled in, one parse per page and one per event), compiled here
  with ``cc -O2`` against libcurl and the yyjson source the SDK uses
  (:func:`falco_plugin_tools.build.yyjson.source_dir`). Same event source, payload and field
  names as http_poll, so the same rules run on both; ``--no-c-ref`` leaves it out.
* ``http_poll``: ``plugins/http_poll`` built now with the current SDK.
* ``--baseline-commit REV``: ``plugins/http_poll`` as of that commit (``git archive`` of the
  plugin's folder into a temporary directory), built with the *current* SDK in a child
  process, labelled ``http_poll @REV``; the script checks that the library packs the
  commit's ``plugin.py``. That is what works for ca55bcb, the http_poll before issue 19 (its
  fields in Python on a ``@per_event`` ``json.loads``): its code uses only the author API the
  SDK still offers, so the figure is the old plugin code on today's SDK runtime. An older
  plugin that no longer builds this way stops the script with the build's error (build it
  with its own commit's SDK in a venv of its own and pass it with ``--lib``).
* ``--lib LABEL=PATH`` (repeatable): any other http_poll library.

Every measurement is the best of ``--repeat`` runs, the libraries interleaved, timed by the
CPU time of the Falco process, minus that of the same run with a single record (start-up:
Falco, the plugin's interpreter and imports, one poll); Falco's own count of the events it read (``-v``) must be the
number of records, or the run fails. Printed per library: records per second of Falco CPU
for each rule, the cost of a field in ns (one field: (one-field time - source-only time) /
records, which includes the event's one parse; three fields: (three-field time - source-only
time) / 3 / records), and the ratios against the C reference (records/s: library / C, above 1
is faster; field cost: library / C, above 1 is dearer).

    python bench/falco_http_poll.py [--records N] [--repeat R] [--baseline-commit REV] [--no-c-ref]
                                    [--lib LABEL=PATH ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "falco"), str(REPO / "plugins" / "http_poll" / "tests")]

from falco_runner import (  # noqa: E402
    PLUGIN_ONLY,
    PluginConf,
    best_interleaved,
    falco_config,
    find_falco,
    run_falco,
    write_config,
)
from httppoll_kit import FakeApi  # noqa: E402

C_REFERENCE_SRC = REPO / "bench" / "reference" / "http_poll.c"
C_REFERENCE_NAME = "http_poll_c"
C_LABEL = "C reference"


class CReferenceUnavailableError(Exception):
    """The C reference cannot be compiled here (no C compiler, no libcurl headers, no yyjson source)."""


def compile_c_reference(out_dir: Path, *, fetch_yyjson: bool = True) -> Path:
    """``bench/reference/http_poll.c`` compiled as a C plugin is (``-O2``, only ``plugin_*`` exported),
    with yyjson's source compiled in and libcurl linked."""
    import falco_plugin_tools.abi
    from falco_plugin_tools.build.yyjson import YyjsonError, source_dir

    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise CReferenceUnavailableError("no C compiler (cc)")
    probe = subprocess.run(
        [compiler, "-E", "-x", "c", "-"], input="#include <curl/curl.h>\n", capture_output=True, text=True
    )
    if probe.returncode != 0:
        raise CReferenceUnavailableError("no libcurl headers (Debian: apt-get install libcurl4-openssl-dev)")
    try:
        yyjson = source_dir(fetch=fetch_yyjson)
    except YyjsonError as exc:
        raise CReferenceUnavailableError(f"no yyjson source: {exc}") from None
    abi = Path(falco_plugin_tools.abi.__file__).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    library = out_dir / "libhttp_poll_c.so"
    # yyjson_api empty: yyjson's functions get -fvisibility=hidden like the rest, not exported.
    done = subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-Dyyjson_api=", "-Wall", "-Werror",
         "-I", str(abi), "-I", str(yyjson), str(C_REFERENCE_SRC), str(yyjson / "yyjson.c"), "-lcurl",
         "-o", str(library)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"compiling {C_REFERENCE_SRC} failed:\n{done.stderr}")
    return library


def build_at_commit(commit: str, work: Path) -> Path:
    """``plugins/http_poll`` as of ``commit``, built with the current SDK (see the module's docs)."""
    tree = work / f"src-{commit}"
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "plugins/http_poll"], capture_output=True
    )
    if archive.returncode != 0:
        raise SystemExit(f"git archive {commit} plugins/http_poll: {archive.stderr.decode().strip()}")
    tar_path = work / f"src-{commit}.tar"
    tar_path.write_bytes(archive.stdout)
    with tarfile.open(tar_path) as tar:
        tar.extractall(tree, filter="data")
    project = tree / "plugins" / "http_poll"
    # In a process of its own: this one has imported today's http_poll (the builder would set it
    # aside, but the two builds then share nothing but the SDK).
    out = work / f"lib-{commit}"
    code = "import sys; from falco_plugin_tools.build import build_plugin as b; print(b(*sys.argv[1:]).library)"
    done = subprocess.run([sys.executable, "-c", code, str(project), str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"http_poll as of {commit} does not build with the current SDK:\n{done.stderr[-2000:]}\n"
            "build it with that commit's SDK in a venv of its own and pass it with --lib"
        )
    library = Path(done.stdout.strip().splitlines()[-1])
    packaged = out / "libhttp_poll.site" / "http_poll" / "plugin.py"
    if packaged.read_bytes() != (project / "src" / "http_poll" / "plugin.py").read_bytes():
        raise SystemExit(f"the build of {commit} packaged another http_poll than the commit's")
    return library


@dataclass(frozen=True)
class Lib:
    label: str
    plugin_name: str
    """The name the library reports (Falco's config names each plugin by it)."""
    path: Path


ROWS = {
    "source only": "evt.num = 0",
    "one field": 'http_poll.value[/verb] = "never"',
    "three fields": 'http_poll.value[/verb] = "never" or http_poll.value[/user/username] = "never" '
    'or http_poll.value[/objectRef/resource] = "never"',
}


def audit_record(n: int) -> dict[str, object]:
    """A Kubernetes audit event of about 2.4 KB, as the API server logs it."""
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": f"5c1e{n:08d}-8a3b-4f0e-9a57-3f1b2d6c7e8f",
        "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/team-{n % 40}/pods/web-{n}",
        "verb": ["get", "list", "create", "update", "patch", "delete"][n % 6],
        "user": {
            "username": f"system:serviceaccount:team-{n % 40}:deployer",
            "uid": f"8f0c{n:08d}-1d2e-4c3b-a4f5-0b1c2d3e4f50",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:team-{n % 40}", "system:authenticated"],
        },
        "sourceIPs": [f"10.{n % 250}.{n % 200}.{n % 100}"],
        "userAgent": "kubectl/v1.30.2 (linux/amd64) kubernetes/3c2a0d1",
        "objectRef": {
            "resource": "pods",
            "namespace": f"team-{n % 40}",
            "name": f"web-{n}",
            "apiVersion": "v1",
        },
        "responseStatus": {"metadata": {}, "code": 200},
        "requestObject": {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": f"web-{n}",
                "labels": {"app": "web", "tier": "frontend", "release": f"r{n % 17}"},
                "annotations": {f"note-{k}": "x" * 48 for k in range(18)},
            },
            "spec": {
                "containers": [
                    {"name": "web", "image": "registry.example/web:1.4.2", "ports": [{"containerPort": 8080}]}
                ],
                "serviceAccountName": "deployer",
            },
        },
        "requestReceivedTimestamp": f"2024-05-01T12:{n // 60 % 60:02d}:{n % 60:02d}.{n % 1000000:06d}Z",
        "stageTimestamp": f"2024-05-01T12:{n // 60 % 60:02d}:{n % 60:02d}.{(n + 7) % 1000000:06d}Z",
        "annotations": {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": 'RBAC: allowed by RoleBinding "deployer/team" of Role "deployer"',
        },
    }


def run_once(falco: Path, workdir: Path, lib: Lib, api: FakeApi, condition: str, records: int) -> float:
    rules = workdir / "rules.yaml"
    rule = {
        "rule": "never fires",
        "desc": "benchmark rule",
        "condition": condition,
        "output": "unexpected %evt.num",
        "priority": "INFO",
        "source": "http_poll",
    }
    rules.write_text(json.dumps([rule]))
    params = {"url": api.url, "records": "/data", "id": "/auditID", "timestamp": "/stageTimestamp", "max_polls": 1}
    conf = PluginConf(lib.plugin_name, lib.path, None, json.dumps(params))
    config = write_config(workdir / "falco.yaml", falco_config([conf], rules=[rules], json_output=False))
    run = run_falco(falco, config, *PLUGIN_ONLY, "-v", timeout=600)
    if run.returncode != 0 or run.captured() != {"http_poll": records} or "Events detected: 0" not in run.stdout:
        raise SystemExit(f"{lib.label}: bad run (expected {records} events, no alert):\n{run.describe()[-3000:]}")
    return run.cpu_seconds


def report(libs: Sequence[Lib], runs: dict[str, list[float]], startup: dict[str, float], records: int) -> str:
    """The tables: records/s and field costs per library, then the ratios against the C reference
    and, with a baseline, those of today's http_poll against it."""
    best = {label: [t - startup[label] for t in times] for label, times in runs.items()}

    def field_ns(times: list[float], row: str, fields: int) -> float:
        return (times[list(ROWS).index(row)] - times[0]) / fields / records * 1e9

    lines = ["| rule | " + " | ".join(f"{lib.label} records/s (CPU s)" for lib in libs) + " |"]
    lines.append("|---|" + "---|" * len(libs))
    lines.append("| start-up (1 record) | " + " | ".join(f"({startup[lib.label]:.3f})" for lib in libs) + " |")
    for i, row in enumerate(ROWS):
        cells = [f"{records / best[lib.label][i]:,.0f} ({runs[lib.label][i]:.3f})" for lib in libs]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    for i, row in enumerate(ROWS):
        cells = [f"{best[lib.label][i] / records * 1e6:.2f}" for lib in libs]
        lines.append(f"| us per record, {row} | " + " | ".join(cells) + " |")
    per_field = {"one field": 1, "three fields": 3}
    for row, n in per_field.items():
        cells = [f"{field_ns(best[lib.label], row, n):,.0f}" for lib in libs]
        lines.append(f"| ns per field, {row} rule | " + " | ".join(cells) + " |")
    ref = best.get(C_LABEL)
    others = [lib for lib in libs if lib.label != C_LABEL]
    if ref is not None and others:
        lines += ["", "| vs C reference | " + " | ".join(lib.label for lib in others) + " |"]
        lines.append("|---|" + "---|" * len(others))
        for i, row in enumerate(ROWS):
            cells = [f"{ref[i] / best[lib.label][i]:.2f}x" for lib in others]
            lines.append(f"| records/s, {row} | " + " | ".join(cells) + " |")
        for row, n in per_field.items():
            c = field_ns(ref, row, n)
            costs = [field_ns(best[lib.label], row, n) for lib in others]
            cells = [f"{cost / c:.1f}x" if c > 0 and cost > 0 else "-" for cost in costs]
            lines.append(f"| field cost, {row} rule | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("(records/s: library / C, above 1 is faster; field cost: library / C, above 1 is dearer;")
        lines.append("-: a field cost not above zero, i.e. within the run-to-run variation of the source)")
    baselines = [lib for lib in libs if lib.label.startswith("http_poll @")]
    if "http_poll" in best and baselines:
        lines += ["", "| today's http_poll, times as fast as | " + " | ".join(b.label for b in baselines) + " |"]
        lines.append("|---|" + "---|" * len(baselines))
        for i, row in enumerate(ROWS):
            cells = [f"{best[b.label][i] / best['http_poll'][i]:.2f}x" for b in baselines]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--page", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lib", action="append", default=[], help="LABEL=PATH of an http_poll library")
    parser.add_argument("--baseline-commit", help="also build plugins/http_poll as of this commit")
    parser.add_argument("--no-c-ref", dest="c_ref", action="store_false", help="leave the C reference out")
    parser.add_argument("--no-current", dest="current", action="store_false", help="leave today's build out")
    args = parser.parse_args(argv)
    falco = find_falco()
    if falco is None:
        raise SystemExit("no Falco: set FALCO")
    with tempfile.TemporaryDirectory(prefix="bench-http-poll-") as tmp:
        workdir = Path(tmp)
        libs: list[Lib] = []
        if args.c_ref:
            try:
                libs.append(Lib(C_LABEL, C_REFERENCE_NAME, compile_c_reference(workdir / "c")))
            except CReferenceUnavailableError as exc:
                raise SystemExit(f"cannot build the C reference: {exc} (or run with --no-c-ref)") from None
        if args.current:
            from falco_plugin_tools.build import build_plugin

            libs.append(
                Lib("http_poll", "http_poll", build_plugin(REPO / "plugins" / "http_poll", workdir / "lib").library)
            )
        if args.baseline_commit:
            libs.append(
                Lib(f"http_poll @{args.baseline_commit}", "http_poll", build_at_commit(args.baseline_commit, workdir))
            )
        for item in args.lib:
            label, _, path = item.partition("=")
            libs.append(Lib(label, "http_poll", Path(path)))
        if not libs:
            raise SystemExit("nothing to measure")
        api = FakeApi().start()
        try:
            api.records = [audit_record(n) for n in range(args.records)]
            api.page_size = args.page
            size = sum(len(json.dumps(r)) for r in api.records) / args.records
            print(f"{args.records} records of {size:.0f} bytes on average, {args.page} per page")
            for lib in libs:
                print(f"{lib.label}: {lib.path}")
            # What a run costs besides the records (Falco, the plugin's start, one poll): subtracted.
            api.records = [audit_record(0)]
            once = [partial(run_once, falco, workdir, lib, api, ROWS["source only"], 1) for lib in libs]
            startup = dict(zip((lib.label for lib in libs), best_interleaved(once, args.repeat), strict=True))
            api.records = [audit_record(n) for n in range(args.records)]
            per_row = [
                best_interleaved(
                    [partial(run_once, falco, workdir, lib, api, c, args.records) for lib in libs], args.repeat
                )
                for c in ROWS.values()
            ]
            best = {lib.label: [row[i] for row in per_row] for i, lib in enumerate(libs)}
        finally:
            api.stop()
    print()
    print(report(libs, best, startup, args.records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
