"""http_poll's fields survive a capture: every one reads the event (URL, status and record travel in it)."""

from __future__ import annotations

import json
from pathlib import Path

from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.replay_check import replay_check
from httppoll_kit import FakeApi, record

pytest_plugins = ["httppoll_fixtures"]


def test_every_field_has_its_values_after_a_replay(api: FakeApi, http_poll_lib: BuildResult, tmp_path: Path) -> None:
    api.records = [record(n) for n in range(1, 13)]
    api.page_size = 4
    params = {"url": api.url, "interval": 0.05, "records": "/data", "id": "/id", "timestamp": "/published"}
    check = replay_check(
        http_poll_lib.library, tmp_path / "out.scap", open_params=json.dumps({**params, "max_polls": 1}), n=10, skip=2
    )
    assert check.ok, check.report()
    assert check.events == 10
    # http_poll.value needs a JSON pointer as its argument: the check cannot guess one
    assert check.fields == ["http_poll.url", "http_poll.status", "http_poll.id", "http_poll.raw"]
    assert check.unchecked == ["http_poll.value"]
