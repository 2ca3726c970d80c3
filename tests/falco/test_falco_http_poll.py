"""http_poll in the real Falco, polling an audit API this test serves on 127.0.0.1: its rules fire on the records."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from falco_plugin_tools.build import BuildResult
from falco_runner import PLUGIN_ONLY, REPO, FalcoRun, PluginConf, falco_config, run_falco, write_config

RULES = REPO / "plugins" / "http_poll" / "rules" / "http_poll_rules.yaml"


def audit(n: int, action: str, actor: dict[str, str] | None, result: str = "SUCCESS", **extra: Any) -> dict[str, Any]:
    """A record shaped as the rules file describes."""
    rec: dict[str, Any] = {
        "id": f"evt-{n}",
        "published": f"2024-05-01T12:00:{n:02d}Z",
        "action": action,
        "outcome": {"result": result},
        "client": {"ip": f"203.0.113.{n}", "country": "FR"},
        **extra,
    }
    if actor is not None:
        rec["actor"] = actor
    return rec


PAGES = [
    [
        audit(1, "repo.delete", {"login": "alice", "type": "User"}, target={"type": "repository", "name": "acme/pay"}),
        audit(2, "org.delete", {"login": "ci-bot", "type": "Bot"}, target={"type": "org", "name": "acme"}),
        audit(
            3,
            "user.login",
            {"login": "mallory", "type": "User"},
            "FAILURE",
            client={"ip": "198.51.100.9", "country": "US"},
        ),
        audit(4, "user.login", {"login": "bob", "type": "User"}, "FAILURE"),  # from a trusted country
    ],
    [
        audit(5, "hook.create", None),
        audit(6, "repo.create", {"login": "bob", "type": "User"}),
    ],
]


class AuditApi:
    """``GET /v1/audit?page=N``: ``{"data": [...]}`` with a ``Link: rel="next"`` to the following page."""

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        api = self
        self.requests: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.requests.append(self.path)
                page = int(self.path.partition("page=")[2] or 1)
                body = json.dumps({"data": pages[page - 1] if page <= len(pages) else []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if page < len(pages):
                    self.send_header("Link", f'<{api.url}?page={page + 1}>; rel="next"')
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/audit"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def audit_api() -> Iterator[AuditApi]:
    api = AuditApi(PAGES)
    yield api
    api.close()


def http_poll_conf(build: BuildResult, url: str) -> PluginConf:
    """One poll of ``url`` (then the stream ends, and so does Falco), with the pointers the rules assume."""
    params = {"url": url, "records": "/data", "id": "/id", "timestamp": "/published", "max_polls": 1, "interval": 0.05}
    return PluginConf("http_poll", build.library, {"retries": 0, "connect_timeout": 5}, json.dumps(params))


def alerts_by_rule(run: FalcoRun, source: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for alert in run.alerts:
        if alert["source"] == source:
            out.setdefault(alert["rule"], []).append(alert["output_fields"])
    return out


def check_http_poll_alerts(run: FalcoRun, api: AuditApi) -> None:
    """What the reference rules must say about :data:`PAGES` (one alert per record at most: rule_matching first)."""
    alerts = alerts_by_rule(run, "http_poll")
    assert {rule: [f["http_poll.id"] for f in fields] for rule, fields in alerts.items()} == {
        "Repository deleted": ["evt-1"],
        "Destructive action by a non-human actor": ["evt-2"],
        "Sign-in failure from an untrusted country": ["evt-3"],
        "Audit record without an actor": ["evt-5"],
    }, run.describe()
    [deleted] = alerts["Repository deleted"]
    assert deleted["http_poll.value[/target/name]"] == "acme/pay"
    assert deleted["http_poll.value[/actor/login]"] == "alice"
    assert deleted["http_poll.value[/client/ip]"] == "203.0.113.1"
    [bot] = alerts["Destructive action by a non-human actor"]
    assert (bot["http_poll.value[/actor/type]"], bot["http_poll.value[/action]"]) == ("Bot", "org.delete")
    [login] = alerts["Sign-in failure from an untrusted country"]
    assert (login["http_poll.value[/client/country]"], login["http_poll.value[/actor/login]"]) == ("US", "mallory")
    [anonymous] = alerts["Audit record without an actor"]
    assert anonymous["http_poll.url"] == f"{api.url}?page=2"  # the page the record came in
    assert anonymous["http_poll.value[/action]"] == "hook.create"
    assert api.requests == ["/v1/audit", "/v1/audit?page=2"]


def test_the_reference_rules_fire_on_polled_records(
    falco: Path, plugin_build: Callable[[str], BuildResult], audit_api: AuditApi, tmp_path: Path
) -> None:
    plugin = http_poll_conf(plugin_build("http_poll"), audit_api.url)
    config = write_config(tmp_path / "falco.yaml", falco_config([plugin], rules=[RULES]))
    run = run_falco(falco, config, *PLUGIN_ONLY, "-v", timeout=120)
    assert run.returncode == 0, run.describe()
    assert not run.noise(), run.describe()
    assert run.captured() == {"http_poll": 6}, run.describe()
    check_http_poll_alerts(run, audit_api)
    # the event time is the record's timestamp
    first = next(a for a in run.alerts if a["output_fields"].get("http_poll.id") == "evt-1")
    assert first["time"].startswith("2024-05-01T12:00:01")


def test_both_reference_plugins_run_together_in_one_falco(
    falco: Path, plugin_build: Callable[[str], BuildResult], audit_api: AuditApi, tmp_path: Path
) -> None:
    """Two Python plugins share one interpreter in Falco, each with its own source, thread and rules."""
    dummy = plugin_build("dummy")
    plugins = [
        PluginConf("dummy_py", dummy.library, {"jitter": 0}, json.dumps({"start": 0, "maxEvents": 50})),
        http_poll_conf(plugin_build("http_poll"), audit_api.url),
    ]
    rules = [REPO / "plugins" / "dummy" / "rules" / "dummy_py_rules.yaml", RULES]
    config = write_config(tmp_path / "falco.yaml", falco_config(plugins, rules=rules))
    run = run_falco(falco, config, *PLUGIN_ONLY, "-v", timeout=120)
    assert run.returncode == 0, run.describe()
    assert not run.noise(), run.describe()
    assert run.captured() == {"dummy_py": 50, "http_poll": 6}, run.describe()
    check_http_poll_alerts(run, audit_api)
    dummy_alerts = alerts_by_rule(run, "dummy_py")
    assert list(dummy_alerts) == ["Dummy sample is a multiple of seven"]
    assert [f["dummy.value"] for f in dummy_alerts["Dummy sample is a multiple of seven"]] == [
        7,
        14,
        21,
        28,
        35,
        42,
        49,
    ]
