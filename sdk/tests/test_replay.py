"""``falco-plugin run LIB --capture FILE``: a capture replayed through a parsing
plugin shows what libsinsp shows (the same events, numbers, types, threads and
processes as ``sinsp-example -s FILE``), next to the plugin's own fields."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from falco_plugin_tools.build import BuildResult
from test_scap import SINSP_FIELDS, captures, sinsp_example, sinsp_rows

TABLES_PARSE = Path(__file__).resolve().parents[2] / "tests" / "plugins" / "tables_parse"


def replay(library: Path, capture: Path, fields: list[str]) -> dict[int, dict[str, Any]]:
    cmd = [sys.executable, "-m", "falco_plugin_tools.cli", "run", str(library), "--capture", str(capture), "--json"]
    done = subprocess.run([*cmd, "--fields", ",".join(fields)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return {row["num"]: row["fields"] for row in rows}


@pytest.mark.parametrize("capture", captures() or [None], ids=lambda p: p.name if p else "none")
def test_a_replayed_capture_shows_what_sinsp_example_shows(
    capture: Path | None, build_plugin_project: Callable[[Path], BuildResult]
) -> None:
    tool = sinsp_example()
    if capture is None:
        pytest.skip("no captures in <repo>/../shared/captures")
    library = build_plugin_project(TABLES_PARSE).library
    theirs = sinsp_rows(tool, capture)
    mine = replay(library, capture, SINSP_FIELDS)
    assert sorted(mine) == sorted(theirs)
    mismatches = [
        (n, f, theirs[n][f], mine[n][f]) for n in sorted(theirs) for f in SINSP_FIELDS if theirs[n][f] != mine[n][f]
    ]
    assert mismatches == []


@pytest.mark.parametrize("capture", captures() or [None], ids=lambda p: p.name if p else "none")
def test_the_parsers_column_is_extracted_for_each_event_of_the_capture(
    capture: Path | None, build_plugin_project: Callable[[Path], BuildResult]
) -> None:
    if capture is None:
        pytest.skip("no captures in <repo>/../shared/captures")
    library = build_plugin_project(TABLES_PARSE).library
    rows = replay(library, capture, ["proc.name", "thread.tid", "fxt.tag", "fxt.comm"])
    counts: dict[int, int] = {}
    for num in sorted(rows):
        row = rows[num]
        if row["fxt.tag"] is None:
            continue
        comm, _, count = row["fxt.tag"].rpartition("#")
        # The parser counts the events of each thread it parsed and tags it comm#count.
        assert comm == row["fxt.comm"]
        assert int(count) > counts.get(row["thread.tid"], 0)
        counts[row["thread.tid"]] = int(count)
    assert counts, "the parser tagged no thread"


@pytest.mark.parametrize("capture", captures() or [None], ids=lambda p: p.name if p else "none")
def test_a_failing_parser_is_logged_and_the_replay_goes_on_as_in_falco(
    capture: Path | None, build_plugin_project: Callable[[Path], BuildResult]
) -> None:
    """libsinsp ignores a failed parse_event and goes on (Falco exits 0): so does the replay, every event
    shown, the first failure logged at warning by the plugin, the failures counted, exit status 1."""
    if capture is None:
        pytest.skip("no captures in <repo>/../shared/captures")
    library = build_plugin_project(TABLES_PARSE).library
    cmd = [sys.executable, "-m", "falco_plugin_tools.cli", "run", str(library), "--capture", str(capture)]
    fields = ["--fields", "evt.num,proc.name,fxt.comm"]
    good = subprocess.run([*cmd, *fields], capture_output=True, text=True, timeout=300)
    bad = subprocess.run(
        [*cmd, *fields, "--init-config", '{"misuse": "bad_value"}'], capture_output=True, text=True, timeout=300
    )
    assert good.returncode == 0, good.stderr
    assert bad.returncode == 1, bad.stderr
    shown = [line for line in bad.stdout.splitlines() if line.startswith("#")]
    assert shown == [line for line in good.stdout.splitlines() if line.startswith("#")]
    warning = "WARNING fxt_tables: parse_event: writing field fxt.count of table threads: expected uint64, got str"
    assert bad.stderr.splitlines().count(warning) == 1, bad.stderr
    assert " errors=" in bad.stdout.splitlines()[-1]


def test_exited_threads_leave_the_table_and_the_registry_stays_bounded(
    tmp_path: Path, build_plugin_project: Callable[[Path], BuildResult]
) -> None:
    """libsinsp removes a thread once it has exited; the Python host did not, and kept every entry and
    subtable it ever handed out (walked on every call: the replay slowed down as the capture went on).
    Here 400 short-lived processes each open a file and exit: afterwards the table holds the live
    thread only, and what the registry keeps for the plugin does not depend on how many came and went."""
    from falco_plugin_tools.host import PluginLibrary
    from falco_plugin_tools.host.replay import Replay
    from falco_plugin_tools.host.tables import TableRegistry, threads_table
    from scapwriter import ScapWriter, build_event
    from test_scap import open_x, proc

    procexit = 186  # PPME_PROCEXIT_1_E
    writer = ScapWriter().machine_info().proclist([proc(1)])
    for i in range(400):
        tid = 1000 + i
        writer.event(open_x(3, "/etc/passwd", tid=tid))
        writer.event(build_event(procexit, [0, 0, 0, 0, 0], tid=tid))
    writer.event(open_x(3, "/etc/hosts", tid=1))
    capture = writer.save(tmp_path / "churn.scap")
    library = build_plugin_project(TABLES_PARSE).library
    registry = TableRegistry(threads_table())
    with PluginLibrary.load(library) as lib, lib.init("", tables=registry) as plugin:
        tags = [plugin.extract(r.event, "fxt.tag") for r in Replay(capture, [plugin], registry["threads"]).events()]
        # each thread parsed twice (its open, its procexit), a fresh count each: no tid was reused
        assert tags[:-1] == ["<NA>#1", "<NA>#2"] * 400 and str(tags[-1]).endswith("#1")
        assert sorted(registry["threads"].entries) == [1]
        assert registry.handed_out < 20, registry.handed_out
    assert registry.violations == []
