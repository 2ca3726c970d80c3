"""``falco-plugin replay-check``: fields that read the plugin's state instead of the event are what it finds.

The check records a plugin's events with every field, writes them to a
``.scap`` as Falco's capture does, replays the file through a fresh instance
and reports each field whose values differ.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from falco_plugin_tools import cli
from falco_plugin_tools.host.scap import read_scap
from falco_plugin_tools.replay_check import Difference, replay_check
from harness import Built

REALHOST = Path(__file__).resolve().parents[2] / "shared" / "realhost"


def test_the_check_finds_the_field_that_reads_the_plugins_state(built: Built, tmp_path: Path) -> None:
    library = built("replay_state").library
    check = replay_check(library, tmp_path / "out.scap", open_params="20", n=7, skip=2)
    assert not check.ok
    # The file: the label dump_state wrote (label-1, from a skipped event), events 3, 4, 5, label-5, events 6..9.
    # fxt_replay.produced counted every event made, the skipped ones too; the fresh instance made none.
    produced = {3: 2, 4: 3, 5: 4, 6: 6, 7: 7, 8: 8, 9: 9}  # value -> its number in the file
    assert check.differences == [Difference("fxt_replay.produced", num, value, 0) for value, num in produced.items()]
    # fxt_replay.label reads state too, but state the capture rebuilds: dump_state, then the plugin's own events
    assert "fxt_replay.label" in check.fields
    # (libsinsp numbers the dumped event 1 but shows it to no one: the comparison starts at 2)
    labels = {num: v["fxt_replay.label"] for num, v in check.recorded.items()}
    assert labels == {2: "label-1", 3: "label-1", 4: "label-1", 5: None, 6: "label-5", 7: "label-5", 8: "label-5",
                      9: "label-5", 10: None}  # fmt: skip
    assert "FAIL: 1 field(s) do not survive the replay: fxt_replay.produced" in check.report()


def test_without_dump_state_the_state_learned_before_the_capture_is_lost(built: Built, tmp_path: Path) -> None:
    check = replay_check(built("replay_state").library, tmp_path / "out.scap", open_params="20", n=7, skip=2,
                         dump_state=False)  # fmt: skip
    lost = [(d.event, d.recorded, d.replayed) for d in check.differences if d.field == "fxt_replay.label"]
    assert lost == [(1, "label-1", None), (2, "label-1", None), (3, "label-1", None)]


def test_the_capture_holds_the_state_then_the_recorded_events_after_the_skipped_ones(
    built: Built, tmp_path: Path
) -> None:
    out = tmp_path / "out.scap"
    replay_check(built("replay_state").library, out, open_params="20", n=7, skip=2)
    _, events = read_scap(out)
    shown = [(e.type_name, e.params()["event_data" if e.type == 322 else "data"]) for e in events]
    assert shown == [
        ("fxt_label", b"label-1"),
        *[("pluginevent", b"%d" % n) for n in (3, 4, 5)],
        ("fxt_label", b"label-5"),
        *[("pluginevent", b"%d" % n) for n in (6, 7, 8, 9)],
        ("fxt_label", b"label-9"),
    ]
    # async events carry the open source plugin's id, as libsinsp writes it in them live
    assert {e.params()["plugin_id"] for e in events} == {999_111}


def test_the_reference_source_plugin_survives_its_replay(built: Built, tmp_path: Path) -> None:
    params = json.dumps({"start": 100, "maxEvents": 400})
    check = replay_check(built("dummy").library, tmp_path / "out.scap", open_params=params, n=300, skip=50)
    assert check.ok, check.report()
    assert (check.events, check.fields) == (300, ["dummy.value", "dummy.strvalue"])
    assert check.unchecked == ["dummy.divisible"]


def test_the_command_exits_1_on_a_difference_and_0_without(
    built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["replay-check", "--open-params", "10", "-n", "3"]
    assert cli.main([*args, str(built("replay_state").library)]) == 1
    assert "fxt_replay.produced  1      1         0" in capsys.readouterr().out
    assert cli.main([*args[:1], "-n", "3", str(built("dummy").library)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "OK: every field has the same values after the replay"
    assert cli.main([*args, str(tmp_path / "libmissing.so")]) == 2
    assert "libmissing.so" in capsys.readouterr().err


def test_the_written_capture_replays_in_sinsp_example(built: Built, tmp_path: Path) -> None:
    tool = REALHOST / "sinsp-example"
    if not tool.is_file():
        pytest.skip(f"no sinsp-example at {tool}")
    library = built("dummy").library
    out = tmp_path / "out.scap"
    params = json.dumps({"start": 7, "maxEvents": 100})
    assert replay_check(library, out, open_params=params, n=40, skip=5).ok
    done = subprocess.run(
        [str(tool), "-j", "-s", str(out), "-p", f"{library}|{{}}", "-o", "*%evt.num %evt.source %dummy.value"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    theirs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    ours = [int(e.params()["event_data"]) for e in read_scap(out)[1]]
    assert [(r["evt.num"], r["evt.source"], r["dummy.value"]) for r in theirs] == [
        (n, "dummy_py", v) for n, v in enumerate(ours, start=1)
    ]


def test_sinsp_example_rebuilds_the_state_from_the_capture_as_the_check_did(built: Built, tmp_path: Path) -> None:
    tool = REALHOST / "sinsp-example"
    if not tool.is_file():
        pytest.skip(f"no sinsp-example at {tool}")
    library = built("replay_state").library
    out = tmp_path / "out.scap"
    check = replay_check(library, out, open_params="20", n=7, skip=2)
    done = subprocess.run(
        [str(tool), "-j", "-s", str(out), "-p", f"{library}|", "-o", "*%evt.num %fxt_replay.value %fxt_replay.label"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    theirs = {
        row["evt.num"]: (row["fxt_replay.value"], row["fxt_replay.label"])
        for row in map(json.loads, (line for line in done.stdout.splitlines() if line.startswith("{")))
        if row.get("fxt_replay.value") is not None
    }
    recorded = {
        num: (v["fxt_replay.value"], v["fxt_replay.label"])
        for num, v in check.recorded.items()
        if v["fxt_replay.value"] is not None
    }
    assert theirs == recorded
    assert theirs[2] == (3, "label-1")  # known from the dumped state alone
