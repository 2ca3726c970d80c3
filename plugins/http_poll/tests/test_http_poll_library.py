"""The built library, end to end: in the C host (a process with an empty environment, as
Falco starts plugins) and in the SDK's Python host."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from falco_plugin_tools.build import BuildResult
from httppoll_kit import DEADLINE, FakeApi, HostRun, Reply, TlsFiles, free_port, plugin_threads, record, wait_for

pytest_plugins = ["httppoll_fixtures"]

FIELDS = ["http_poll.id", "http_poll.url", "http_poll.status", "http_poll.value[/actor/login]", "http_poll.raw"]
TOKEN = "tok-5e3f9a0c7d21"
SECRET = f"Bearer {TOKEN}"


def params(api: FakeApi, **extra: Any) -> str:
    base = {"url": api.url, "interval": 0.05, "records": "/data", "id": "/id", "timestamp": "/published"}
    return json.dumps({**base, **extra})


FAST = json.dumps({"retries": 1, "backoff_initial": 0.01, "backoff_max": 0.02})


# -- C host ----------------------------------------------------------------------------------


def test_c_host_gets_every_page_as_events_with_fields_then_the_end(
    api: FakeApi, run_host: Callable[..., HostRun]
) -> None:
    api.records = [record(n) for n in range(1, 6)]
    api.page_size = 2
    run = run_host(config=FAST, params=params(api, max_polls=2), fields=FIELDS)
    assert run.ok, run.output
    assert [e["http_poll.id"] for e in run.events] == [f"evt-{n}" for n in range(1, 6)]
    assert [e["http_poll.url"] for e in run.events] == [
        api.url, api.url, f"{api.url}?page=2", f"{api.url}?page=2", f"{api.url}?page=3"
    ]  # fmt: skip
    assert {e["http_poll.status"] for e in run.events} == {"200"}
    assert [e["http_poll.value[/actor/login]"] for e in run.events] == [f"user{n}" for n in range(1, 6)]
    assert [json.loads(e["http_poll.raw"]) for e in run.events] == api.records
    assert "done events=5 rc=2" in run.proc.stdout  # EOF after max_polls


def test_c_host_reads_https_from_a_private_ca(
    tls_api: FakeApi, tls_files: TlsFiles, run_host: Callable[..., HostRun]
) -> None:
    tls_api.records = [record(1)]
    run = run_host(config=json.dumps({"ca_bundle": str(tls_files.ca)}), params=params(tls_api, max_polls=1))
    assert run.ok, run.output
    assert [e["http_poll.id"] for e in run.events] == ["evt-1"]


def test_c_host_restart_with_a_checkpoint_loses_and_repeats_nothing(
    api: FakeApi, run_host: Callable[..., HostRun], tmp_path: Path
) -> None:
    p = params(api, max_polls=1, cursor_param="since", checkpoint=str(tmp_path / "cp.json"))
    api.records = [record(1), record(2)]
    first = run_host(config=FAST, params=p)
    api.records += [record(3), record(4)]
    second = run_host(config=FAST, params=p)
    assert [e["http_poll.id"] for e in first.events] == ["evt-1", "evt-2"]
    assert [e["http_poll.id"] for e in second.events] == ["evt-3", "evt-4"]


def test_c_host_secret_from_the_environment_is_sent_but_never_printed(
    api: FakeApi, run_host: Callable[..., HostRun]
) -> None:
    closed = free_port()
    api.script.extend(
        [
            Reply(401, b'{"error": "bad token"}'),
            Reply(500),
            Reply(500),
            Reply(200, b"<html>" + SECRET.encode()),
            Reply(302, headers={"Location": f"http://127.0.0.1:{closed}/cb?token={TOKEN}"}),
            Reply(302, headers={"Location": f"http://127.0.0.1:{closed}/cb?token={TOKEN}"}),
        ]
    )
    config = json.dumps({**json.loads(FAST), "headers": [{"name": "Authorization", "value_from_env": "API_TOKEN"}]})
    run = run_host(config=config, params=params(api, max_polls=4), env={"API_TOKEN": SECRET, "CHOST_LOG": "1"})
    assert run.ok, run.output
    assert {s.headers.get("authorization") for s in api.seen} == {SECRET}
    assert "HTTP 401" in run.proc.stderr and "not JSON" in run.proc.stderr  # the failures were logged...
    assert TOKEN not in run.output  # ...without the secret


def test_c_host_gets_a_record_holding_a_lone_surrogate_and_the_records_after_it(
    api: FakeApi, run_host: Callable[..., HostRun]
) -> None:
    api.script.append(Reply(200, rb'{"data": [{"id": "evt-1", "note": "\ud800!"}, {"id": "evt-2", "note": "ok"}]}'))
    fields = ["http_poll.id", "http_poll.value[/note]", "http_poll.raw"]
    run = run_host(config=FAST, params=params(api, max_polls=1), fields=fields)
    assert run.ok, run.output
    assert [e["http_poll.id"] for e in run.events] == ["evt-1", "evt-2"]
    assert [e["http_poll.value[/note]"] for e in run.events] == [r"\ud800!", "ok"]
    raw = [e["http_poll.raw"] for e in run.events]
    assert raw == [r'{"id":"evt-1","note":"\ud800!"}', '{"id":"evt-2","note":"ok"}']  # JSON for the very record


def test_c_host_missing_secret_variable_fails_init_with_a_clear_error(run_host: Callable[..., HostRun]) -> None:
    config = json.dumps({"headers": [{"name": "Authorization", "value_from_env": "API_TOKEN"}]})
    run = run_host(config=config, params='{"url": "http://127.0.0.1:9/x"}')
    assert run.proc.returncode == 1
    assert (
        "could not initialize plugin: init: invalid init config: "
        "headers[0] (Authorization): environment variable API_TOKEN is not set"
    ) in run.proc.stderr


def test_c_host_bad_open_params_fail_open_naming_the_key(run_host: Callable[..., HostRun]) -> None:
    run = run_host(params='{"url": "http://127.0.0.1:9/x", "records": "data"}')
    assert run.proc.returncode == 1
    assert "open: invalid open params: records: invalid JSON pointer 'data'" in run.proc.stderr


def test_c_host_bad_pointer_in_a_field_is_an_extraction_error(api: FakeApi, run_host: Callable[..., HostRun]) -> None:
    api.records = [record(1)]
    run = run_host(params=params(api, max_polls=1), fields=["http_poll.value[actor]", "http_poll.id"])
    assert run.ok, run.output
    assert run.events == [
        {
            "http_poll.value[actor]": "<error: extracting http_poll.value[actor]: "
            "invalid JSON pointer 'actor': it must be empty or start with '/'>",
            "http_poll.id": "evt-1",
        }
    ]


# -- Python host -----------------------------------------------------------------------------


@pytest.fixture
def py_host(http_poll_lib: BuildResult) -> Iterator[Any]:
    host = pytest.importorskip("falco_plugin_tools.host")
    if not hasattr(host, "PluginLibrary"):
        pytest.skip("the SDK's Python host is not there yet")
    with host.PluginLibrary.load(http_poll_lib.library) as lib:
        yield lib


def test_python_host_sees_record_timestamps_progress_and_the_end(api: FakeApi, py_host: Any) -> None:
    api.records = [record(1, published="2024-05-01T12:00:01.000000123Z"), record(2)]
    with py_host.init(FAST) as plugin, plugin.open(params(api, max_polls=2)) as capture:
        assert capture.progress() == (0.0, "0/2 polls")
        events = list(capture.events(timeout_s=10))
        assert [e.ts for e in events] == [1714564801_000000123, 1714564802_000000000]
        assert [plugin.extract(e, "http_poll.value[/action]") for e in events] == ["repo.delete", "repo.create"]
        assert plugin.extract(events[0], "http_poll.value[/nothing]") is None
        assert capture.progress() == (100.0, "2/2 polls")
        assert capture.last_rc == 2  # EOF


def test_python_host_open_close_cycles_against_a_trickling_server_leave_no_thread(api: FakeApi, py_host: Any) -> None:
    baseline = len(plugin_threads())
    with py_host.init(FAST) as plugin:
        for cycle in range(1, 4):
            api.script.append(Reply(200, b'{"data": [', length=10**6, trickle=0.1))  # a body that never ends
            with plugin.open(params(api)):
                wait_for(lambda n=cycle: len(api.seen) == n, "the request")
                started = time.monotonic()
            assert time.monotonic() - started < DEADLINE, "close hung"
            wait_for(lambda: len(plugin_threads()) == baseline, "the worker to end")
        api.script.append(Reply(200, b'{"data": [', length=10**6, trickle=0.1))
        plugin.open(params(api))  # left open: the host closes it before plugin_destroy
        wait_for(lambda: len(api.seen) == 4, "the request")
        started = time.monotonic()
    assert time.monotonic() - started < DEADLINE, "destroy hung"
    wait_for(lambda: len(plugin_threads()) == baseline, "the worker to end")


def test_python_host_logs_never_carry_the_secret(api: FakeApi, py_host: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_POLL_TEST_TOKEN", SECRET)
    api.script.extend([Reply(403), Reply(200, b"{" + SECRET.encode())])
    header = {"name": "Authorization", "value_from_env": "HTTP_POLL_TEST_TOKEN"}
    config = json.dumps({**json.loads(FAST), "headers": [header]})
    with py_host.init(config) as plugin:
        with plugin.open(params(api, max_polls=2)) as capture:
            assert list(capture.events(timeout_s=10)) == []
        messages = [r.message for r in plugin.logs]
    assert api.seen[0].headers["authorization"] == SECRET
    assert any("HTTP 403" in m for m in messages)
    assert not any(TOKEN in m for m in messages)
