"""Configuration: the init config says how to talk HTTP, the open params say what to fetch.

Secrets (API tokens) belong in request headers whose values come from an
environment variable or a file, never in the config text itself::

    headers:
      - name: Authorization
        value_from_env: API_TOKEN        # e.g. "Bearer abc..." set in Falco's environment
      - name: Accept
        value: application/json
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

from falco_plugin import Config, ConfigError, PluginError, setting

from .pointer import Pointer, PointerError

__all__ = [
    "Header",
    "HttpPollConfig",
    "HttpPollParams",
    "HeaderError",
    "resolve_headers",
    "check_config",
    "check_params",
]

_TOKEN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"  # RFC 9110 header name
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class Header(Config):
    """One request header. Give exactly one of ``value``, ``value_from_env``, ``value_from_file``."""

    name: str = setting(description="Header name, e.g. Authorization", pattern=_TOKEN)
    value: str | None = setting(
        "The value itself; use it only for values that are not secret", default=None, secret=True
    )
    value_from_env: str | None = setting(
        "Name of the environment variable holding the value", default=None, min_length=1
    )
    value_from_file: str | None = setting(
        "Path of a file holding the value (one trailing newline is ignored; re-read at every poll)",
        default=None,
        min_length=1,
    )


class HttpPollConfig(Config):
    """Init configuration of http_poll: how to talk to the API."""

    headers: list[Header] = setting("Request headers; every value is treated as a secret in messages", default=[])
    tls_verify: bool = setting("Verify the server's TLS certificate", default=True)
    ca_bundle: str | None = setting("PEM file of the CAs to trust instead of the default bundle", default=None)
    client_cert: str | None = setting("PEM client certificate for mutual TLS (may also hold the key)", default=None)
    client_key: str | None = setting("PEM private key of client_cert, when in a separate file", default=None)
    proxy: str | None = setting(
        "Proxy URL for every request; by default the HTTP(S)_PROXY environment variables apply",
        default=None,
        secret=True,
    )
    connect_timeout: float = setting("Seconds to wait for a connection", default=10.0, minimum=0.001)
    read_timeout: float = setting(
        "Seconds to wait for the server between bytes of a response", default=30.0, minimum=0.001
    )
    request_timeout: float = setting(
        "Most seconds one request may take, body included; a longer one is cut and retried",
        default=120.0,
        minimum=0.001,
    )
    retries: int = setting("Retries of one request after a 429, a 5xx or a network error", default=5, minimum=0)
    backoff_initial: float = setting("Seconds before the first retry; doubles at each retry", default=1.0, minimum=0)
    backoff_max: float = setting("Longest pause between retries, in seconds", default=60.0, minimum=0)
    max_retry_after: float = setting("Longest Retry-After pause honoured, in seconds", default=300.0, minimum=0)
    rate_limit: float = setting("Most requests per second (0: no limit)", default=0.0, minimum=0)
    max_pages: int = setting("Most pages (Link: rel=next) followed in one poll", default=100, minimum=1)
    max_batch: int = setting("Most events handed to Falco in one batch", default=500, minimum=1)
    dedup_capacity: int = setting(
        "How many delivered record ids are remembered to drop duplicates", default=10000, minimum=1
    )


class HttpPollParams(Config):
    """Open parameters of http_poll: what to fetch."""

    url: str = setting(description="The URL to poll (http or https)", pattern=r"^https?://[^/?#]+")
    interval: float = setting("Seconds between the starts of two polls", default=60.0, minimum=0.001)
    records: str = setting("JSON pointer to the array of records in a response ('' = the whole body)", default="")
    id: str | None = setting("JSON pointer to a record's unique id (default: a hash of the record)", default=None)
    timestamp: str | None = setting(
        "JSON pointer to a record's time: RFC 3339 text or a number since the epoch", default=None
    )
    timestamp_unit: Literal["s", "ms", "us", "ns"] = setting("Unit of numeric timestamps", default="s")
    cursor_param: str | None = setting(
        "Query parameter that receives the cursor (e.g. since)", default=None, min_length=1
    )
    cursor_from: Literal["timestamp", "id"] = setting(
        "The cursor is the newest record timestamp, or the id of the last record received", default="timestamp"
    )
    cursor_start: str | None = setting("Cursor of the first poll when there is no checkpoint", default=None)
    max_polls: int = setting("End the stream after this many polls (0: poll forever)", default=0, minimum=0)
    checkpoint: str | None = setting(
        "File where progress is saved so that a restart resumes without loss", default=None
    )


@dataclass(frozen=True)
class PollSettings:
    """Open params with their pointers parsed: what the poller works from."""

    params: HttpPollParams
    records: Pointer
    id: Pointer | None
    timestamp: Pointer | None


class HeaderError(PluginError):
    """A header value cannot be read. The message names the header, never its value."""


def _where(index: int, header: Header) -> str:
    return f"headers[{index}] ({header.name})"


def read_header(index: int, header: Header) -> str:
    """The current value of one header, from wherever it comes."""
    if header.value is not None:
        value = header.value
    elif header.value_from_env is not None:
        found = os.environ.get(header.value_from_env)
        if found is None:
            raise HeaderError(f"{_where(index, header)}: environment variable {header.value_from_env} is not set")
        value = found
    else:
        assert header.value_from_file is not None
        try:
            with open(header.value_from_file, encoding="utf-8") as f:
                value = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise HeaderError(f"{_where(index, header)}: cannot read {header.value_from_file}: {reason}") from None
        # Files written by `echo` or editors end with a newline that is not part of the token.
        value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        raise HeaderError(f"{_where(index, header)}: the value is empty")
    if _BAD_VALUE.search(value) or value != value.strip():
        # requests would reject it with an error that quotes the value: say it without the value.
        raise HeaderError(f"{_where(index, header)}: the value has a control character or surrounding whitespace")
    return value


def resolve_headers(headers: list[Header]) -> dict[str, str]:
    """Every header with its current value (raises :class:`HeaderError`)."""
    return {h.name: read_header(i, h) for i, h in enumerate(headers)}


def check_config(config: HttpPollConfig) -> None:
    """Checks that span several settings (the schema checks each one alone)."""
    for i, h in enumerate(config.headers):
        given = [v for v in (h.value, h.value_from_env, h.value_from_file) if v is not None]
        if len(given) != 1:
            raise ConfigError(f"headers[{i}]", "give exactly one of value, value_from_env, value_from_file")
    names = [h.name.lower() for h in config.headers]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"headers[{i}].name", f"header {config.headers[i].name} is given twice")
    if config.ca_bundle is not None and not config.tls_verify:
        raise ConfigError("ca_bundle", "a CA bundle is only used with tls_verify: true")
    if config.client_key is not None and config.client_cert is None:
        raise ConfigError("client_key", "client_key needs client_cert")
    for key in ("ca_bundle", "client_cert", "client_key"):
        path = getattr(config, key)
        if path is not None and not os.access(path, os.R_OK):
            raise ConfigError(key, f"cannot read {path}")
    if config.backoff_max < config.backoff_initial:
        raise ConfigError("backoff_max", "must be >= backoff_initial")


def check_params(params: HttpPollParams) -> PollSettings:
    """Parse the pointers of the open params, naming the key of a bad one."""

    def pointer(key: str, text: str | None) -> Pointer | None:
        if text is None:
            return None
        try:
            return Pointer(text)
        except PointerError as exc:
            raise ConfigError(key, str(exc)) from None

    if params.cursor_param is not None and params.cursor_from == "timestamp" and params.timestamp is None:
        raise ConfigError("cursor_param", "a timestamp cursor needs the timestamp pointer")
    if params.cursor_param is not None and params.cursor_from == "id" and params.id is None:
        raise ConfigError("cursor_param", "an id cursor needs the id pointer")
    records = pointer("records", params.records)
    assert records is not None
    return PollSettings(params, records, pointer("id", params.id), pointer("timestamp", params.timestamp))
