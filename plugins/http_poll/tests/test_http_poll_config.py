"""Configuration: headers from the environment or files, checks that name the key, open params."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from falco_plugin import ConfigError, PluginError
from http_poll.config import HttpPollConfig, HttpPollParams
from http_poll.plugin import HttpPollPlugin
from httppoll_kit import FakeApi, Stream, record

pytest_plugins = ["httppoll_fixtures"]

SECRET = "Bearer tok-9f8e7d6c5b4a"


def init(config: dict[str, Any]) -> HttpPollPlugin:
    plugin = HttpPollPlugin()
    plugin.log = logging.Logger("test")
    plugin.init(HttpPollConfig.from_dict(config))
    return plugin


def test_header_value_comes_from_the_environment(
    api: FakeApi, open_stream: Callable[..., Stream], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_POLL_TEST_TOKEN", SECRET)
    api.records = [record(1)]
    s = open_stream(
        config={"headers": [{"name": "Authorization", "value_from_env": "HTTP_POLL_TEST_TOKEN"}]},
        url=api.url, records="/data", max_polls=1,
    )  # fmt: skip
    s.until_end()
    assert api.seen[0].headers["authorization"] == SECRET


def test_header_file_is_read_without_its_trailing_newline_and_again_at_each_poll(
    api: FakeApi, open_stream: Callable[..., Stream], tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("first-token\n")
    s = open_stream(
        config={"headers": [{"name": "X-Api-Key", "value_from_file": str(token)}]}, url=api.url, records="/data"
    )
    s.until(lambda: len(api.seen) >= 1)
    token.write_text("rotated-token\n")
    s.until(lambda: api.seen[-1].headers["x-api-key"] == "rotated-token")
    assert api.seen[0].headers["x-api-key"] == "first-token"


def test_missing_environment_variable_fails_init_naming_header_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HTTP_POLL_NOPE", raising=False)
    with pytest.raises(PluginError) as err:
        init({"headers": [{"name": "Authorization", "value_from_env": "HTTP_POLL_NOPE"}]})
    assert str(err.value) == (
        "invalid init config: headers[0] (Authorization): environment variable HTTP_POLL_NOPE is not set"
    )


def test_unreadable_header_file_fails_init(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"headers\[0\] \(X-Key\): cannot read .*none: No such file"):
        init({"headers": [{"name": "X-Key", "value_from_file": str(tmp_path / "none")}]})


@pytest.mark.parametrize(
    "header",
    [
        {"name": "A"},
        {"name": "A", "value": "x", "value_from_env": "Y"},
    ],
)
def test_a_header_needs_exactly_one_source(header: dict[str, str]) -> None:
    with pytest.raises(PluginError, match=r"^invalid init config: headers\[0\]: give exactly one of value"):
        init({"headers": [header]})


def test_header_value_with_a_line_break_is_refused_without_quoting_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_POLL_TEST_TOKEN", SECRET + "\r\nX-Injected: 1")
    with pytest.raises(PluginError) as err:
        init({"headers": [{"name": "Authorization", "value_from_env": "HTTP_POLL_TEST_TOKEN"}]})
    assert "control character" in str(err.value)
    assert SECRET not in str(err.value)


def test_inline_secret_value_is_not_echoed_by_schema_errors() -> None:
    with pytest.raises(ConfigError) as err:
        HttpPollConfig.from_dict({"headers": [{"name": "bad name", "value": SECRET}]})
    assert err.value.path == "headers[0].name"
    assert SECRET not in str(err.value)


def test_duplicate_header_names_are_refused() -> None:
    with pytest.raises(PluginError, match=r"headers\[1\].name: header accept is given twice"):
        init({"headers": [{"name": "Accept", "value": "a"}, {"name": "accept", "value": "b"}]})


def test_ca_bundle_without_verification_is_a_contradiction(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("")
    with pytest.raises(PluginError, match="ca_bundle: a CA bundle is only used with tls_verify: true"):
        init({"tls_verify": False, "ca_bundle": str(tmp_path / "ca.pem")})


def test_unreadable_ca_bundle_fails_init(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="ca_bundle: cannot read"):
        init({"ca_bundle": str(tmp_path / "missing.pem")})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"url": "http://h/x", "records": "data"}, "records: invalid JSON pointer 'data'"),
        ({"url": "http://h/x", "cursor_param": "since"}, "cursor_param: a timestamp cursor needs the timestamp"),
        ({"url": "http://h/x", "cursor_param": "after", "cursor_from": "id"}, "cursor_param: an id cursor needs"),
    ],
)
def test_inconsistent_open_params_fail_open_naming_the_key(params: dict[str, Any], message: str) -> None:
    plugin = init({})
    with pytest.raises(PluginError, match=f"^invalid open params: {message}"):
        plugin.open(HttpPollParams.from_dict(params))


def test_url_must_be_http_or_https() -> None:
    with pytest.raises(ConfigError, match=r"^url: "):
        HttpPollParams.from_dict({"url": "file:///etc/passwd"})


def test_unwritable_checkpoint_fails_open(tmp_path: Path) -> None:
    plugin = init({})
    params = HttpPollParams.from_dict({"url": "http://127.0.0.1:9/x", "checkpoint": str(tmp_path / "no" / "cp.json")})
    with pytest.raises(PluginError, match="cannot write it"):
        plugin.open(params)
