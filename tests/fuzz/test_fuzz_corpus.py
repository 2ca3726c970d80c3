"""The fuzz corpus (tests/fuzz/corpus/*.json) replayed as ordinary tests, through the C host.

Each entry is an input worth keeping: an edge case, or something fuzzing
found. It runs for every plugin project it names (``"projects"``, folder names under
plugins/; default: all) and
must keep the invariant of :mod:`fuzzkit`. Placeholders in the text:
``{scratch}`` (a scratch directory), ``{port}`` (a refused loopback port),
``{pad}`` (``pad.text`` repeated ``pad.count`` times). How to add an entry:
tests/fuzz/README.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fuzzkit import (
    CORPUS,
    HEADER,
    PROJECTS,
    Sandbox,
    Target,
    check_process,
    check_values,
    closed_port,
    event_file,
    payload_of,
    plugin_event,
    run_chost,
)


def _entries(file: str) -> list[tuple[Path, int, dict[str, Any]]]:
    """(project, index, entry) for every plugin project an entry names (``"projects"``: folder names; default: all)."""
    data = json.loads((CORPUS / file).read_text())
    return [
        (project, i, entry)
        for i, entry in enumerate(data)
        for project in PROJECTS
        if project.name in entry.get("projects", [project.name])
    ]


def _ids(cases: list[tuple[Path, int, dict[str, Any]]]) -> list[str]:
    return [f"{i}-{project.name}" for project, i, _ in cases]


INIT = _entries("init_configs.json")
OPEN = _entries("open_params.json")
EVENTS = _entries("events.json")


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path, closed_port())


def expand(text: str, entry: dict[str, Any], sandbox: Sandbox) -> str:
    pad = entry.get("pad")
    if pad:
        text = text.replace("{pad}", pad["text"] * pad["count"])
    return text.replace("{scratch}", str(sandbox.scratch)).replace("{port}", str(sandbox.port))


@pytest.mark.parametrize(("project", "index", "entry"), INIT, ids=_ids(INIT))
def test_init_config_corpus(
    project: Path,
    index: int,
    entry: dict[str, Any],
    fuzz_target: Callable[[Path], Target],
    chost: Path,
    sandbox: Sandbox,
) -> None:
    target = fuzz_target(project)
    config = expand(entry["config"], entry, sandbox)
    check_process(run_chost(chost, target, "--config", config, "-n", "0", cwd=sandbox.scratch))


@pytest.mark.parametrize(("project", "index", "entry"), OPEN, ids=_ids(OPEN))
def test_open_params_corpus(
    project: Path,
    index: int,
    entry: dict[str, Any],
    fuzz_target: Callable[[Path], Target],
    chost: Path,
    sandbox: Sandbox,
) -> None:
    target = fuzz_target(project)
    if not target.has_source:
        pytest.skip(f"{target.name} has no event source")
    params = expand(entry["params"], entry, sandbox)
    fields = ["--fields", ",".join(entry["fields"])] if entry.get("fields") else []
    reads = str(target.profile.read_after_open)
    check_process(run_chost(chost, target, "--open", params, "-n", reads, *fields, cwd=sandbox.scratch))


def corpus_events(entry: dict[str, Any], sandbox: Sandbox) -> list[bytes]:
    """The raw events of an ``events.json`` entry: plugin events from payloads, or raw headers over a body."""
    payloads = [expand(p, entry, sandbox).encode() for p in entry.get("payloads", [])]
    payloads += [bytes.fromhex(p) for p in entry.get("payloads_hex", [])]
    records = [plugin_event(p) for p in payloads]
    for raw in entry.get("raw", []):
        body = bytes.fromhex(raw["body_hex"])
        records.append(HEADER.pack(0, 0, HEADER.size + len(body), raw["type"], raw["nparams"]) + body)
    return records


@pytest.mark.parametrize(("project", "index", "entry"), EVENTS, ids=_ids(EVENTS))
def test_event_corpus(
    project: Path,
    index: int,
    entry: dict[str, Any],
    fuzz_target: Callable[[Path], Target],
    chost: Path,
    sandbox: Sandbox,
) -> None:
    target = fuzz_target(project)
    if not target.fields:
        pytest.skip(f"{target.name} has no fields")
    default_args = {f.name: "[1]" if f.is_index else "[/id]" for f in target.fields if f.arg_required}
    exprs = entry.get("fields") or [f.name + default_args.get(f.name, "") for f in target.fields]
    records = corpus_events(entry, sandbox)
    path = event_file(records, sandbox.scratch)
    run = run_chost(chost, target, "--events", str(path), "--fields", ",".join(exprs), cwd=sandbox.scratch)
    assert check_process(run) is None, f"the run failed\n{run}"
    check_values(run, target, exprs, [payload_of(r) for r in records])
