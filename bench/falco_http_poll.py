"""http_poll in the real Falco against a loopback audit API: records per second of Falco CPU.

The API (http_poll's test fake, on 127.0.0.1) serves ``--records`` Kubernetes-audit-like
records of about 2.4 KB under ``/data``, ``--page`` per page linked by ``Link: rel="next"``;
each run is a whole Falco process polling once (``max_polls: 1``) against one rule that
never fires:

* source only: ``evt.num = 0``;
* one field: ``http_poll.value[/verb] = "never"``;
* three fields: the same ``or`` ``/user/username`` ``or`` ``/objectRef/resource`` (all false,
  so all three are extracted).

``--lib LABEL=PATH`` (repeatable) names the libraries to compare, e.g. today's http_poll
built from an older commit against the current one (default: plugins/http_poll built now).
Every measurement is the best of ``--repeat`` runs, the libraries interleaved, timed by
the CPU time of the Falco process; Falco's own count of the events it read (``-v``) must
be the number of records, or the run fails.

    python bench/falco_http_poll.py [--records N] [--repeat R] [--lib LABEL=PATH ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "falco"), str(REPO / "plugins" / "http_poll" / "tests")]

from falco_runner import PLUGIN_ONLY, PluginConf, falco_config, find_falco, run_falco, write_config  # noqa: E402
from httppoll_kit import FakeApi  # noqa: E402

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


def run_once(falco: Path, workdir: Path, library: Path, api: FakeApi, condition: str, records: int) -> float:
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
    conf = PluginConf("http_poll", library, None, json.dumps(params))
    config = write_config(workdir / "falco.yaml", falco_config([conf], rules=[rules], json_output=False))
    run = run_falco(falco, config, *PLUGIN_ONLY, "-v", timeout=600)
    if run.returncode != 0 or run.captured() != {"http_poll": records} or "Events detected: 0" not in run.stdout:
        raise SystemExit(f"bad run (expected {records} events, no alert):\n{run.describe()[-3000:]}")
    return run.cpu_seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--page", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lib", action="append", default=[], help="LABEL=PATH of an http_poll library")
    args = parser.parse_args(argv)
    falco = find_falco()
    if falco is None:
        raise SystemExit("no Falco: set FALCO")
    libs: list[tuple[str, Path]] = []
    for item in args.lib:
        label, _, path = item.partition("=")
        libs.append((label, Path(path)))
    with tempfile.TemporaryDirectory(prefix="bench-http-poll-") as tmp:
        workdir = Path(tmp)
        if not libs:
            from falco_plugin_tools.build import build_plugin

            libs = [("http_poll", build_plugin(REPO / "plugins" / "http_poll", workdir / "lib").library)]
        api = FakeApi().start()
        try:
            api.records = [audit_record(n) for n in range(args.records)]
            api.page_size = args.page
            size = sum(len(json.dumps(r)) for r in api.records) / args.records
            print(f"{args.records} records of {size:.0f} bytes on average, {args.page} per page\n")
            print("| rule | " + " | ".join(f"{label} records/s (CPU s)" for label, _ in libs) + " |")
            print("|---|" + "---|" * len(libs))
            for row, condition in ROWS.items():
                best = [float("inf")] * len(libs)
                for _ in range(args.repeat):
                    for i, (_, lib) in enumerate(libs):
                        best[i] = min(best[i], run_once(falco, workdir, lib, api, condition, args.records))
                cells = [f"{args.records / b:,.0f} ({b:.2f})" for b in best]
                print(f"| {row} | " + " | ".join(cells) + " |", flush=True)
        finally:
            api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
