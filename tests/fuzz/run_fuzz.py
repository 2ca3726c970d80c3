"""Run the coverage-guided event fuzzer (fuzz_events.py) on every built plugin, within a time budget.

    python tests/fuzz/run_fuzz.py [--seconds N] [--jobs J] [PROJECT ...]
    python tests/fuzz/run_fuzz.py --show INPUT     # an input as an entry for corpus/events.json

``nox -s fuzz`` builds the plugins and calls this. The budget is shared out
evenly between the plugin projects (default: every ``plugins/*``). Each
fuzzer starts from the inputs of ``corpus/events.json`` and keeps what it
learns in ``build/fuzz/<project>/corpus``; a failing input is written to
``build/fuzz/<project>/`` as ``crash-*``, ``timeout-*`` or ``oom-*`` and
makes this script exit 1.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
HEADER = struct.Struct("=QQIHI")


def seeds(project: str) -> list[bytes]:
    """Fuzz inputs (format: fuzz_events.split_input) for the corpus entries that apply to ``project``."""
    out: list[bytes] = []
    for entry in json.loads((HERE / "corpus" / "events.json").read_text()):
        if project not in entry.get("projects", [project]):
            continue
        pad = entry.get("pad")
        args = "\n".join(f.split("[", 1)[1][:-1] for f in entry.get("fields", []) if f.endswith("]")).encode()
        prefix = bytes([0, len(args)]) + args if len(args) < 256 else b"\0\0"
        for p in entry.get("payloads", []):
            text = p.replace("{pad}", pad["text"] * pad["count"]) if pad else p
            out.append(prefix + text.encode())
        out += [prefix + bytes.fromhex(p) for p in entry.get("payloads_hex", [])]
        for raw in entry.get("raw", []):
            body = bytes.fromhex(raw["body_hex"])
            event = HEADER.pack(0, 0, HEADER.size + len(body), raw["type"], raw["nparams"]) + body
            out.append(b"\x02\x00" + event)
    return out


def show(path: Path) -> dict[str, Any]:
    """One fuzz input as a corpus/events.json entry."""
    data = path.read_bytes()
    kind = data[0] % 4 if data else 0
    n = data[1] if len(data) > 1 else 0
    args = data[2 : 2 + n].decode("utf-8", "replace").split("\n") if n else []
    rest = data[2 + n :]
    entry: dict[str, Any] = {}
    if kind <= 1:
        entry["payloads_hex"] = [rest.hex()]
    else:
        raw = rest.ljust(HEADER.size, b"\0")
        _ts, _tid, _len, etype, nparams = HEADER.unpack_from(raw)
        entry["raw"] = [{"type": 322 if kind == 3 else etype, "nparams": nparams, "body_hex": raw[HEADER.size :].hex()}]
    if args:
        entry["args (set the field names)"] = args
    entry["why"] = f"found by fuzz_events.py ({path.name})"
    return entry


def library_of(project: Path) -> Path:
    found = sorted(project.glob("lib*.so"))
    if not found:
        sys.exit(f"{project}: no lib<name>.so; build it first (falco-plugin build {project})")
    return found[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60, help="total time budget (default 60)")
    ap.add_argument("--jobs", type=int, default=1, help="fuzzer processes per plugin (default 1)")
    ap.add_argument("--show", type=Path, help="print a fuzz input as a corpus entry and exit")
    ap.add_argument("projects", nargs="*", help="plugin project folders (default: plugins/*)")
    opts = ap.parse_args()
    if opts.show:
        print(json.dumps(show(opts.show), indent=1))
        return 0
    projects = [Path(p).resolve() for p in opts.projects] or sorted(
        p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml")
    )
    budget = max(1, opts.seconds // len(projects))
    failed = []
    for project in projects:
        work = ROOT / "build" / "fuzz" / project.name
        corpus = work / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seeds(project.name)):
            (corpus / f"seed-{i:03d}").write_bytes(seed)
        argv = [
            sys.executable,
            str(HERE / "fuzz_events.py"),
            str(library_of(project)),
            f"-max_total_time={budget}",
            "-timeout=10",
            "-rss_limit_mb=4096",
            "-max_len=8192",
            f"-dict={HERE / 'events.dict'}",
            f"-artifact_prefix={work}/",
            "-print_final_stats=1",
            *([f"-jobs={opts.jobs}", f"-workers={opts.jobs}"] if opts.jobs > 1 else []),
            str(corpus),
        ]
        print(f"== {project.name}: {budget} s, corpus {corpus}", flush=True)
        if subprocess.run(argv, cwd=work).returncode != 0:
            failed.append(project.name)
            artifacts = sorted(str(p) for p in work.glob("*-*") if p.name.split("-")[0] in {"crash", "timeout", "oom"})
            print(f"== {project.name}: FAILED; inputs: {', '.join(artifacts) or '(none written)'}", flush=True)
    if failed:
        print(f"fuzzing found failures in: {', '.join(failed)} (see tests/fuzz/README.md)")
        return 1
    print(f"fuzzing: no failure in {len(projects)} plugin(s), {budget} s each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
