"""Checkpoints: a restart resumes where the host stopped, without loss and without duplicates."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from httppoll_kit import FakeApi, Stream, record

pytest_plugins = ["httppoll_fixtures"]

AUDIT = {"records": "/data", "id": "/id", "timestamp": "/published", "cursor_param": "since"}


def test_restart_after_the_end_delivers_only_new_records(
    api: FakeApi, open_stream: Callable[..., Stream], tmp_path: Path
) -> None:
    checkpoint = str(tmp_path / "cp.json")
    api.records = [record(1), record(2), record(3)]
    first = open_stream(url=api.url, checkpoint=checkpoint, max_polls=1, **AUDIT)
    assert first.ids(first.until_end()) == ["evt-1", "evt-2", "evt-3"]
    first.close()

    api.records += [record(4), record(5)]
    second = open_stream(url=api.url, checkpoint=checkpoint, max_polls=1, **AUDIT)
    assert second.ids(second.until_end()) == ["evt-4", "evt-5"]
    assert api.seen[-1].query["since"] == "2024-05-01T12:00:03Z"  # resumed from the saved cursor


def test_checkpoint_holds_the_cursor_and_the_delivered_keys(
    api: FakeApi, open_stream: Callable[..., Stream], tmp_path: Path
) -> None:
    checkpoint = tmp_path / "cp.json"
    api.records = [record(1), record(2)]
    open_stream(url=api.url, checkpoint=str(checkpoint), max_polls=1, **AUDIT).until_end()
    saved = json.loads(checkpoint.read_text())
    assert saved["cursor"] == "2024-05-01T12:00:02Z"
    assert saved["delivered"] == ["id:evt-1", "id:evt-2"]


def test_records_of_a_batch_the_host_did_not_finish_come_again_after_a_restart(
    api: FakeApi, open_stream: Callable[..., Stream], tmp_path: Path
) -> None:
    checkpoint = str(tmp_path / "cp.json")
    api.records = [record(n) for n in range(1, 6)]
    first = open_stream(config={"max_batch": 2}, url=api.url, checkpoint=checkpoint, **AUDIT)
    assert first.ids(first.take(2)) == ["evt-1", "evt-2"]
    assert first.ids(first.take(2)) == ["evt-3", "evt-4"]  # handed out, never confirmed by another call
    first.close()  # the host stops here: it may not have processed evt-3 and evt-4

    second = open_stream(url=api.url, checkpoint=checkpoint, max_polls=1, **AUDIT)
    # The poll that brought evt-1..5 was not consumed to its end, so its cursor was not saved:
    # the second run asks from the start and drops what the host had finished.
    assert second.ids(second.until_end()) == ["evt-3", "evt-4", "evt-5"]
    assert "since" not in api.seen[-1].query
    assert second.stats.duplicates == 2


def test_restart_without_cursor_relies_on_the_saved_keys(
    api: FakeApi, open_stream: Callable[..., Stream], tmp_path: Path
) -> None:
    checkpoint = str(tmp_path / "cp.json")
    api.records = [{"msg": "a"}, {"msg": "b"}]
    open_stream(url=api.url, records="/data", checkpoint=checkpoint, max_polls=1).until_end()
    api.records.append({"msg": "c"})
    second = open_stream(url=api.url, records="/data", checkpoint=checkpoint, max_polls=1)
    assert [e.record for e in second.until_end()] == [{"msg": "c"}]


def test_a_checkpoint_that_cannot_be_written_later_is_logged_once_and_retried(
    api: FakeApi, open_stream: Callable[..., Stream], tmp_path: Path
) -> None:
    directory = tmp_path / "state"
    directory.mkdir()
    api.records = [record(1)]
    s = open_stream(url=api.url, checkpoint=str(directory / "cp.json"), **AUDIT)
    (directory / "cp.json").unlink()
    directory.rmdir()  # the directory disappears under the running plugin
    s.take(1)
    api.records.append(record(2))
    s.take(1)
    assert len([line for line in s.logs.lines if "cannot write it" in line]) == 1
    directory.mkdir()
    api.records.append(record(3))
    s.take(1)
    s.batch()
    assert (directory / "cp.json").exists()
