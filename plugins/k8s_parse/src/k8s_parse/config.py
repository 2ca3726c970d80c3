"""Configuration: how to reach the API server, which pods to watch, what to keep of them.

Every setting has an in-cluster default, so that in a DaemonSet the plugin
needs little more than ``node_name`` (from the downward API, e.g.
``node_name: ${FALCO_K8S_NODE_NAME}`` in Falco's configuration)::

    api_server: https://10.96.0.1:443     # default: from KUBERNETES_SERVICE_HOST/PORT
    token_file: /var/run/secrets/kubernetes.io/serviceaccount/token
    ca_bundle:  /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from falco_plugin import Config, ConfigError, setting

from .pods import KeyFilter

__all__ = ["SERVICE_ACCOUNT", "K8sParseConfig", "WatchSettings", "resolve"]

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where the kubelet mounts a pod's service account token and the cluster CA."""

EMIT_RATE = 2000.0
"""Default pace of pod events (events/s): see the README's "Large clusters"."""
EMIT_BURST = 500
"""Default burst: what goes while Falco's start waits, when Falco takes no event. It is half of the
1000 events the SDK's README gives libsinsp's async queue (in Falco 0.44.1 here, 4096 went in before the
first drop), so that other plugins' events still find room; the maximum of emit_burst, 900, stays below."""

LOG_LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}


class K8sParseConfig(Config):
    """Init configuration of k8s_parse."""

    api_server: str = setting(
        "API server URL (https://host:port); default: in-cluster, from KUBERNETES_SERVICE_HOST and "
        "KUBERNETES_SERVICE_PORT. With neither, pods come only from capture files",
        default="",
    )
    token_file: str = setting(
        "File holding the bearer token, re-read at every connection (so rotation needs no restart); "
        "default: the service account token when it exists, else no token",
        default="",
    )
    ca_bundle: str = setting(
        "PEM file of the CAs that sign the API server's certificate; default: the service account's "
        "ca.crt when it exists, else the system's CAs",
        default="",
    )
    tls_verify: bool = setting("Verify the API server's certificate", default=True)
    node_name: str = setting("Watch only the pods of this node (spec.nodeName); empty: every pod", default="")
    labels: list[str] = setting("Label keys to keep, as shell patterns (* for all)", default=["*"])
    annotations: list[str] = setting("Annotation keys to keep, as shell patterns (none by default)", default=[])
    resync_period: float = setting(
        "Seconds between full relists even when the watch is healthy (0: only when needed)",
        default=0.0,
        minimum=0,
    )
    watch_timeout: int = setting(
        "Seconds the API server keeps one watch open (timeoutSeconds) before the plugin resumes it",
        default=300,
        minimum=1,
    )
    page_size: int = setting("Pods per page when listing (limit, continue)", default=500, minimum=1)
    connect_timeout: float = setting("Seconds to wait for a connection", default=10.0, minimum=0.001)
    read_timeout: float = setting(
        "Seconds of silence after which a connection is taken as dead and reopened (keep it above the "
        "API server's bookmark interval, about a minute)",
        default=120.0,
        minimum=0.001,
    )
    backoff_initial: float = setting("Seconds before the first reconnection; doubles each time", default=0.5, minimum=0)
    backoff_max: float = setting("Longest pause between reconnections, in seconds", default=30.0, minimum=0)
    backoff_reset: float = setting(
        "Seconds without a failure after which the pause before a reconnection starts again from "
        "backoff_initial (until then repeated failures, 410 Gone included, keep doubling it)",
        default=120.0,
        minimum=0,
    )
    max_list_bytes: int = setting(
        "Largest body of one page of a pod list, in bytes; a larger one is a failure (retried with backoff). "
        "The default fits page_size pods of 128 kB each",
        default=64 * 1024 * 1024,
        minimum=1024,
    )
    max_event_bytes: int = setting(
        "Longest watch event, in bytes (the API server stores objects of at most 1.5 MB); a longer one is a "
        "failure (retried with backoff, then relisted)",
        default=16 * 1024 * 1024,
        minimum=1024,
    )
    max_list_pods: int = setting(
        "Most pods one list may hold (all pages); more is a failure (retried with backoff). The default is "
        "twice the 150,000 pods Kubernetes supports in a cluster",
        default=300_000,
        minimum=1,
    )
    max_list_pages: int = setting(
        "Most pages one list may take (a continue token that never ends is a failure, retried with backoff). "
        "A page may hold fewer than page_size pods, even none, when node_name filters them",
        default=10_000,
        minimum=1,
    )
    initial_list_wait: float = setting(
        "Seconds Falco's start may wait for the first pod list, so that the first events are enriched "
        "(0: do not wait). Bounded so that a slow or unreachable API server delays Falco by at most this",
        default=5.0,
        minimum=0,
        maximum=300,
    )
    emit_rate: float = setting(
        "Most pod events per second the plugin hands to Falco (0: no pacing). Falco 0.44 drops async events "
        "when its queue (shared by all plugins) is full and does not tell the plugin, so a large pod list "
        "sent at once loses pods and crowds out other plugins' events",
        default=EMIT_RATE,
        minimum=0,
    )
    emit_burst: int = setting(
        "Pod events that may go at once before emit_rate applies (also the most sent while Falco's start "
        "waits for the first list, when Falco does not yet take events)",
        default=EMIT_BURST,
        minimum=1,
        maximum=900,
    )
    verbosity: Literal["error", "warning", "info", "debug"] = setting(
        "Least severe messages the plugin logs", default="info"
    )


@dataclass(frozen=True)
class WatchSettings:
    """The configuration with the in-cluster defaults resolved: what the watcher works from."""

    api_server: str
    """Empty: no API server (pods come only from captures)."""
    token_file: str
    ca_bundle: str
    tls_verify: bool
    node_name: str
    labels: KeyFilter
    annotations: KeyFilter
    resync_period: float
    watch_timeout: int
    page_size: int
    connect_timeout: float
    read_timeout: float
    backoff_initial: float
    backoff_max: float
    backoff_reset: float
    max_list_bytes: int
    max_event_bytes: int
    max_list_pods: int
    max_list_pages: int
    log_level: int
    initial_list_wait: float = 0.0
    """Seconds ``start_async`` waits for the first list (0: none)."""
    emit_rate: float = 0.0
    """Pod events per second (0: unpaced)."""
    emit_burst: int = 100


def resolve(config: K8sParseConfig, environ: dict[str, str] | None = None, sa: Path = SERVICE_ACCOUNT) -> WatchSettings:
    """Fill the defaults from the environment and the service account; :class:`ConfigError` for a bad value."""
    env = dict(os.environ) if environ is None else environ
    server = config.api_server.rstrip("/")
    if not server and env.get("KUBERNETES_SERVICE_HOST"):
        host = env["KUBERNETES_SERVICE_HOST"]
        host = f"[{host}]" if ":" in host else host  # an IPv6 service address
        server = f"https://{host}:{env.get('KUBERNETES_SERVICE_PORT', '443')}"
    if server:
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("api_server", f"expected an http(s)://host[:port] URL, got {server!r}")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ConfigError("api_server", f"{exc}") from None
        if parts.query or parts.fragment:
            raise ConfigError("api_server", f"a URL without query or fragment, got {server!r}")
    token = config.token_file or (str(sa / "token") if (sa / "token").is_file() else "")
    ca = config.ca_bundle or (str(sa / "ca.crt") if (sa / "ca.crt").is_file() else "")
    if config.token_file and not Path(config.token_file).is_file():
        raise ConfigError("token_file", f"{config.token_file} is not a readable file")
    if config.ca_bundle and not Path(config.ca_bundle).is_file():
        raise ConfigError("ca_bundle", f"{config.ca_bundle} is not a readable file")
    if 0 < config.emit_rate < 1:
        # The SDK's emit waits at most async_emit_deadline (1 s) for its turn: a slower pace would
        # refuse every event.
        raise ConfigError("emit_rate", f"must be 0 (no pacing) or at least 1 event per second, got {config.emit_rate}")
    if config.backoff_max < config.backoff_initial:
        raise ConfigError(
            "backoff_max", f"must be >= backoff_initial ({config.backoff_initial}), got {config.backoff_max}"
        )
    return WatchSettings(
        api_server=server,
        token_file=token,
        ca_bundle=ca,
        tls_verify=config.tls_verify,
        node_name=config.node_name,
        labels=KeyFilter(tuple(config.labels)),
        annotations=KeyFilter(tuple(config.annotations)),
        resync_period=config.resync_period,
        watch_timeout=config.watch_timeout,
        page_size=config.page_size,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        backoff_initial=config.backoff_initial,
        backoff_max=config.backoff_max,
        backoff_reset=config.backoff_reset,
        max_list_bytes=config.max_list_bytes,
        max_event_bytes=config.max_event_bytes,
        max_list_pods=config.max_list_pods,
        max_list_pages=config.max_list_pages,
        log_level=LOG_LEVELS[config.verbosity],
        initial_list_wait=config.initial_list_wait,
        emit_rate=config.emit_rate,
        emit_burst=config.emit_burst,
    )
