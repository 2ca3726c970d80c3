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
from scapwriter import ScapWriter, build_event, sample_event
from test_scap import CODE, SINSP_FIELDS, captures, sinsp_example, sinsp_rows

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


# -- event sources: a plugin event belongs to the source of the plugin whose id it carries ----------------------------

DUMMY_ID, NOT_LOADED_ID = 29, 4  # dummy_py's id; upstream dummy_c's, a plugin these replays never load
NO_THREAD = (1 << 64) - 1
SOURCE_FIELDS = ["evt.num", "evt.type", "evt.source", "dummy.value"]


def plugin_event(plugin_id: int, payload: bytes, ts: int) -> bytes:
    return build_event(322, {"plugin_id": plugin_id, "event_data": payload}, ts=ts, tid=NO_THREAD)


def async_event(plugin_id: int, name: str, data: bytes, ts: int) -> bytes:
    return build_event(402, {"plugin_id": plugin_id, "name": name, "data": data}, ts=ts, tid=1)


@pytest.fixture
def mixed_sources(tmp_path: Path) -> Path:
    """One file, three sources: a syscall event, dummy_py's events, another plugin's, async events of both kinds."""
    w = ScapWriter()
    w.event(build_event(CODE["PPME_SYSCALL_CLOSE_X"], {"res": 0}, ts=1, tid=1))
    w.event(plugin_event(DUMMY_ID, b"7", ts=2))
    w.event(plugin_event(NOT_LOADED_ID, b"8", ts=3))
    w.event(async_event(0, "sys_async", b"y", ts=4))
    w.event(async_event(DUMMY_ID, "dummy_async", b"9", ts=5))
    w.event(plugin_event(DUMMY_ID, b"10", ts=6))
    return w.save(tmp_path / "mixed.scap")


# (evt.num, evt.type, evt.source, dummy.value) as libsinsp gives them with dummy_py loaded
MIXED_EXPECTED = [
    (1, "close", "syscall", None),
    (2, "pluginevent", "dummy_py", 7),
    (3, "pluginevent", None, None),  # a plugin that is not loaded: no source, so no plugin sees it
    (4, "sys_async", "syscall", None),  # an async event with id 0 is the syscall source's
    (5, "dummy_async", "dummy_py", None),  # dummy_py's, but dummy_py extracts from plugin events only
    (6, "pluginevent", "dummy_py", 10),
]


def test_each_plugin_event_gets_the_source_of_the_plugin_whose_id_it_carries(
    mixed_sources: Path, dummy_library: Path
) -> None:
    # Fails on the replay that gave every event the syscall source: dummy.value was <NA> throughout.
    rows = replay(dummy_library, mixed_sources, SOURCE_FIELDS)
    assert [tuple(rows[n][f] for f in SOURCE_FIELDS) for n in sorted(rows)] == MIXED_EXPECTED


def test_event_sources_agree_with_sinsp_example(mixed_sources: Path, dummy_library: Path) -> None:
    tool = sinsp_example()
    fmt = "*" + " ".join(f"%{f}" for f in SOURCE_FIELDS)
    done = subprocess.run(
        [str(tool), "-a", "-j", "-s", str(mixed_sources), "-p", f"{dummy_library}|{{}}", "-o", fmt],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    theirs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [tuple(row.get(f) for f in SOURCE_FIELDS) for row in theirs] == MIXED_EXPECTED


def test_a_plugin_event_without_a_plugin_id_is_an_error_naming_the_event(tmp_path: Path, dummy_library: Path) -> None:
    capture = ScapWriter().event(build_event(322, raw_params=[b"\x01\x00", b"7"], ts=1, tid=NO_THREAD))
    cmd = [sys.executable, "-m", "falco_plugin_tools.cli", "run", str(dummy_library), "--capture"]
    done = subprocess.run([*cmd, str(capture.save(tmp_path / "bad.scap"))], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "event 1 (offset" in done.stderr and "without a 4-byte plugin id" in done.stderr
    assert "Traceback" not in done.stderr


# -- initial state: what a capture starts with is parsed, not shown ---------------------------------------------------


@pytest.fixture
def leading_state(tmp_path: Path) -> Path:
    """A capture that starts with state events (dump_state's async events, a user, a group), as Falco's do."""
    w = ScapWriter()
    w.event(async_event(0, "state_a", b"1", ts=1))
    w.event(sample_event(CODE["PPME_USER_ADDED_E"], ts=1, tid=1)[0])
    w.event(sample_event(CODE["PPME_GROUP_ADDED_E"], ts=1, tid=1)[0])
    w.event(async_event(DUMMY_ID, "state_b", b"2", ts=2))
    w.event(build_event(CODE["PPME_SYSCALL_CLOSE_X"], {"res": 0}, ts=3, tid=1))
    w.event(async_event(0, "later", b"3", ts=4))  # after the first other event: an event like any other
    w.event(sample_event(CODE["PPME_USER_ADDED_E"], ts=5, tid=1)[0])
    return w.save(tmp_path / "leading_state.scap")


LEADING_SHOWN = [(5, "close"), (6, "later"), (7, "useradded")]


def test_the_state_events_a_capture_starts_with_are_numbered_but_not_shown(
    leading_state: Path, dummy_library: Path
) -> None:
    # Failed before: events 1-4 were shown too.
    rows = replay(dummy_library, leading_state, ["evt.num", "evt.type"])
    assert [(rows[n]["evt.num"], rows[n]["evt.type"]) for n in sorted(rows)] == LEADING_SHOWN


def test_the_leading_state_events_agree_with_sinsp_example(leading_state: Path) -> None:
    tool = sinsp_example()
    done = subprocess.run(
        [str(tool), "-a", "-j", "-s", str(leading_state), "-o", "*%evt.num %evt.type"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [(r["evt.num"], r["evt.type"]) for r in rows] == LEADING_SHOWN


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
