"""Property-based tests of every reference plugin through the C host.

Whatever the init config, open params, event bytes or field arguments, the
plugin answers with a return code and a message, or a right value: never a
crash, a hang, or a word on stderr (see :mod:`fuzzkit`). The ``ci`` profile
keeps this to a few dozen runs of the C host per property; ``nox -s fuzz``
and ``FALCO_FUZZ_PROFILE=long`` go further.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fuzzkit import (
    PROJECTS,
    Sandbox,
    Target,
    check_process,
    check_values,
    closed_port,
    event_file,
    events,
    field_exprs,
    open_params_text,
    payload_of,
    plugin_event,
    run_chost,
    settings_text,
)
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.parametrize("project", PROJECTS, ids=[p.name for p in PROJECTS])


@pytest.fixture
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    return Sandbox(tmp_path_factory.mktemp("fuzz"), closed_port())


def default_open(target: Target, sandbox: Sandbox) -> str:
    """The plugin's first suggested open params, kept inside the sandbox."""
    import json

    for text in target.open_suggestions:
        try:
            doc = json.loads(text)
        except ValueError:
            return text
        return json.dumps(sandbox.confine(doc, target.profile.confined))
    return ""


def test_any_init_config(project: Path, fuzz_target: Callable[[Path], Target], chost: Path, sandbox: Sandbox) -> None:
    target = fuzz_target(project)
    params = default_open(target, sandbox)
    reads = str(target.profile.read_after_open)

    @given(config=settings_text(target, sandbox, target.init_schema))
    def prop(config: str) -> None:
        check_process(run_chost(chost, target, "--config", config, "--open", params, "-n", reads, cwd=sandbox.scratch))

    prop()


def test_any_open_params(project: Path, fuzz_target: Callable[[Path], Target], chost: Path, sandbox: Sandbox) -> None:
    target = fuzz_target(project)
    if not target.has_source:
        pytest.skip(f"{target.name} has no event source")
    reads = target.profile.read_after_open

    @given(params=open_params_text(target, sandbox))
    def prop(params: str) -> None:
        run = run_chost(chost, target, "--open", params, "-n", str(reads), cwd=sandbox.scratch)
        check_process(run)
        assert sum(line.startswith("evt ") for line in run.stdout.split("\n")) <= reads, str(run)

    prop()


def test_any_event_bytes(project: Path, fuzz_target: Callable[[Path], Target], chost: Path, sandbox: Sandbox) -> None:
    target = fuzz_target(project)
    if not target.fields:
        pytest.skip(f"{target.name} has no fields")

    @given(records=st.lists(events(target.profile.payloads), min_size=1, max_size=6), data=st.data())
    def prop(records: list[bytes], data: st.DataObject) -> None:
        exprs = data.draw(field_exprs(target, random_args=False), label="fields")
        check_events(chost, target, sandbox, records, exprs)

    prop()


def test_any_field_arguments(
    project: Path, fuzz_target: Callable[[Path], Target], chost: Path, sandbox: Sandbox
) -> None:
    target = fuzz_target(project)
    if not any(f.is_index or f.is_key for f in target.fields):
        pytest.skip(f"{target.name} has no field that takes an argument")

    @given(
        payloads=st.lists(target.profile.payloads, min_size=1, max_size=3),
        exprs=field_exprs(target, random_args=True),
    )
    def prop(payloads: list[bytes], exprs: list[str]) -> None:
        check_events(chost, target, sandbox, [plugin_event(p) for p in payloads], exprs)

    prop()


def check_events(chost: Path, target: Target, sandbox: Sandbox, records: list[bytes], exprs: list[str]) -> None:
    path = event_file(records, sandbox.scratch)
    try:
        run = run_chost(chost, target, "--events", str(path), "--fields", ",".join(exprs), cwd=sandbox.scratch)
    finally:
        path.unlink()
    assert check_process(run) is None, f"the run failed\n{run}"
    check_values(run, target, exprs, [payload_of(r) for r in records])
