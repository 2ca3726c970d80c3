"""A client of the OCI distribution API: what a push needs, with the registry's authentication.

Written on ``requests`` rather than an OCI client library: the one on PyPI
(``oras``) pushes single image manifests only (no image index, which a
plugin with several platforms is), retries any failure with sleeps of up to
minutes (a refused connection must fail at once, with one line), and handles
either Basic or Bearer authentication but not both. What is needed here is
a dozen requests of the distribution spec.

Authentication follows the registry's ``WWW-Authenticate`` challenge: Basic
(a plain registry with htpasswd) sends the credentials; Bearer (ghcr.io,
Docker Hub, Harbor...) trades them at the challenge's realm for a token of
the repository's pull/push scope. Credentials come from
``FALCO_PLUGIN_REGISTRY_USER`` and ``FALCO_PLUGIN_REGISTRY_PASSWORD``, else
from the Docker config file (``$DOCKER_CONFIG/config.json``, default
``~/.docker/config.json``: ``auths`` entries, ``credHelpers`` or
``credsStore`` through their ``docker-credential-*`` programs).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import requests
from falco_plugin_tools.oci import digest_of

__all__ = [
    "USER_ENV",
    "PASSWORD_ENV",
    "Credentials",
    "Registry",
    "RegistryError",
    "find_credentials",
]

USER_ENV = "FALCO_PLUGIN_REGISTRY_USER"
PASSWORD_ENV = "FALCO_PLUGIN_REGISTRY_PASSWORD"
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(Exception):
    """The registry cannot be reached, refuses, or is refused: one line saying which and why."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    source: str
    """Where they came from, for messages (never the secret itself)."""


def _docker_config(env: Mapping[str, str]) -> Path:
    folder = env.get("DOCKER_CONFIG")
    return (Path(folder) if folder else Path.home() / ".docker") / "config.json"


def _host_of(key: str) -> str:
    """An ``auths`` key (``host``, ``https://host``, ``https://host/v1/``) as ``host``."""
    return key.split("://", 1)[-1].split("/", 1)[0]


def _from_helper(helper: str, registry: str, config: Path) -> Credentials:
    program = f"docker-credential-{helper}"
    try:
        proc = subprocess.run([program, "get"], input=registry, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RegistryError(f"{config} names the credential helper {program} for {registry}: {exc}") from None
    if proc.returncode != 0:
        why = (proc.stdout.strip() or proc.stderr.strip() or f"exit {proc.returncode}").splitlines()[0]
        raise RegistryError(f"{program} has no credentials for {registry}: {why}")
    try:
        found = json.loads(proc.stdout)
        return Credentials(str(found["Username"]), str(found["Secret"]), program)
    except (ValueError, KeyError, TypeError):
        raise RegistryError(f"{program} answered something other than its JSON credentials") from None


def find_credentials(registry: str, env: Mapping[str, str] | None = None) -> Credentials | None:
    """The credentials for ``registry`` (``host[:port]``), or ``None``: anonymous."""
    env = os.environ if env is None else env
    user, password = env.get(USER_ENV), env.get(PASSWORD_ENV)
    if user is not None or password is not None:
        if not user or password is None:
            raise RegistryError(f"set both {USER_ENV} and {PASSWORD_ENV}, or neither")
        return Credentials(user, password, f"${USER_ENV}")
    config = _docker_config(env)
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot read {config}: {exc}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{config} is not a Docker config (not a JSON object)")
    helpers = data.get("credHelpers") or {}
    if isinstance(helpers, dict) and isinstance(helpers.get(registry), str):
        return _from_helper(helpers[registry], registry, config)
    for key, entry in (data.get("auths") or {}).items():
        if _host_of(key) != registry or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                raise RegistryError(f"{config}: the auth of {key} is not base64 of user:password") from None
            return Credentials(user, password, str(config))
        if entry.get("username") and "password" in entry:
            return Credentials(str(entry["username"]), str(entry["password"]), str(config))
    if isinstance(data.get("credsStore"), str):
        return _from_helper(data["credsStore"], registry, config)
    return None


def _error_text(response: requests.Response) -> str:
    """The registry's own words: the distribution spec's ``errors`` list, else the status line."""
    status = f"{response.status_code} {response.reason}".strip()
    try:
        errors = response.json().get("errors") or []
        said = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors)
    except (ValueError, AttributeError):
        said = ""
    return f"{status} ({said})" if said else status


class Registry:
    """One registry, for one repository's pushes (the token scope is the repository's pull and push)."""

    def __init__(
        self,
        host: str,
        repository: str,
        *,
        plain_http: bool = False,
        credentials: Credentials | None = None,
        timeout: float = 60,
    ) -> None:
        self.host = host
        self.repository = repository
        self.base = f"{'http' if plain_http else 'https'}://{host}"
        self.plain_http = plain_http
        self.credentials = credentials
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "falco-plugin-push"
        self._authorization: str | None = None

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------------

    def _send(self, method: str, url: str, headers: Mapping[str, str], data: bytes | None) -> requests.Response:
        sent = dict(headers)
        if self._authorization:
            sent["Authorization"] = self._authorization
        try:
            return self.session.request(method, url, headers=sent, data=data, timeout=self.timeout)
        except requests.exceptions.SSLError as exc:
            hint = "" if self.plain_http else " (a registry that speaks plain HTTP needs --plain-http)"
            raise RegistryError(f"registry {self.host}: TLS failed{hint}: {_reason(exc)}") from None
        except requests.exceptions.ConnectionError as exc:
            raise RegistryError(f"registry {self.base} cannot be reached: {_reason(exc)}") from None
        except requests.exceptions.Timeout:
            raise RegistryError(f"registry {self.base} did not answer in {self.timeout:g} s") from None
        except requests.exceptions.RequestException as exc:
            raise RegistryError(f"registry {self.base}: {_reason(exc)}") from None

    def request(
        self,
        method: str,
        path: str,
        *,
        expect: Iterable[int],
        what: str,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        missing_ok: bool = False,
    ) -> requests.Response:
        """``method path`` (relative to ``/v2/`` or an absolute upload URL), authenticated on demand.

        A status outside ``expect`` is a :class:`RegistryError` naming ``what`` was
        being done; with ``missing_ok`` a 404 is returned for the caller to read."""
        url = path if "://" in path else f"{self.base}/v2/{path}"
        headers = headers or {}
        response = self._send(method, url, headers, data)
        if response.status_code == 401:
            self._authenticate(response)
            response = self._send(method, url, headers, data)
            if response.status_code == 401:
                raise RegistryError(self._refused_login())
        if response.status_code in set(expect) or (missing_ok and response.status_code == 404):
            return response
        if response.status_code == 403:
            who = f"user {self.credentials.username!r}" if self.credentials else "anonymous pushes"
            raise RegistryError(f"registry {self.host} denies {who} to {what}: {_error_text(response)}")
        raise RegistryError(f"registry {self.host} refused to {what}: {_error_text(response)}")

    def _refused_login(self) -> str:
        if self.credentials is None:
            return (
                f"registry {self.host} wants a login: set {USER_ENV} and {PASSWORD_ENV}, "
                f"or log in with docker login {self.host}"
            )
        return (
            f"registry {self.host} refused the user name or password of {self.credentials.username!r} "
            f"(from {self.credentials.source})"
        )

    def _authenticate(self, response: requests.Response) -> None:
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        if scheme.lower() == "basic":
            if self.credentials is None:
                raise RegistryError(self._refused_login())
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            self._authorization = "Basic " + base64.b64encode(pair).decode("ascii")
        elif scheme.lower() == "bearer" and params.get("realm"):
            self._authorization = "Bearer " + self._token(params)
        else:
            raise RegistryError(f"registry {self.host} asks for an authentication this client lacks: {challenge!r}")

    def _token(self, params: Mapping[str, str]) -> str:
        """A token from the challenge's realm for this repository's pull and push."""
        query = {"scope": f"repository:{self.repository}:pull,push"}
        if params.get("service"):
            query["service"] = params["service"]
        auth = (self.credentials.username, self.credentials.password) if self.credentials else None
        try:
            answer = self.session.get(params["realm"], params=query, auth=auth, timeout=self.timeout)
        except requests.exceptions.RequestException as exc:
            raise RegistryError(f"the token service {params['realm']} of {self.host} failed: {_reason(exc)}") from None
        if answer.status_code in (401, 403):
            raise RegistryError(self._refused_login())
        if answer.status_code != 200:
            raise RegistryError(f"the token service {params['realm']} of {self.host}: {_error_text(answer)}")
        try:
            body = answer.json()
            return str(body.get("token") or body["access_token"])
        except (ValueError, KeyError, AttributeError):
            raise RegistryError(f"the token service {params['realm']} of {self.host} answered no token") from None

    # -- the distribution API ----------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: reachable, speaks the API, and the credentials are accepted (where it asks)."""
        self.request("GET", "", expect=(200,), what="answer the API's version check (GET /v2/)")

    def has_blob(self, digest: str) -> bool:
        found = self.request(
            "HEAD", f"{self.repository}/blobs/{digest}", expect=(200,), missing_ok=True, what=f"look up blob {digest}"
        )
        return found.status_code == 200

    def push_blob(self, data: bytes, what: str) -> str:
        """Upload ``data`` (once: a blob already there is not sent again); its digest."""
        digest = digest_of(data)
        if self.has_blob(digest):
            return digest
        started = self.request(
            "POST", f"{self.repository}/blobs/uploads/", expect=(202,), what=f"start the upload of {what}"
        )
        location = started.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.host} started an upload of {what} but gave no Location")
        if "://" not in location:
            location = self.base + location
        separator = "&" if "?" in location else "?"
        self.request(
            "PUT",
            f"{location}{separator}digest={digest}",
            expect=(201,),
            what=f"store {what}",
            headers={"Content-Type": "application/octet-stream"},
            data=data,
        )
        return digest

    def get_blob(self, digest: str) -> bytes:
        data = self.request("GET", f"{self.repository}/blobs/{digest}", expect=(200,), what=f"send blob {digest}")
        return bytes(data.content)

    def get_manifest(self, reference: str, accept: Iterable[str]) -> tuple[str, bytes] | None:
        """``(media type, body)`` of the manifest or index at a tag or digest; ``None`` where there is none."""
        found = self.request(
            "GET",
            f"{self.repository}/manifests/{reference}",
            expect=(200,),
            missing_ok=True,
            what=f"send the manifest of {self.repository}:{reference}",
            headers={"Accept": ", ".join(accept)},
        )
        if found.status_code == 404:
            return None
        media_type = found.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            media_type = str(json.loads(found.content).get("mediaType") or media_type)
        except (ValueError, AttributeError):
            raise RegistryError(f"{self.host}/{self.repository}:{reference} is not a JSON manifest") from None
        return media_type, bytes(found.content)

    def put_manifest(self, reference: str, media_type: str, body: bytes) -> str:
        """Store a manifest or index under a digest or tag; its digest, checked against the registry's."""
        digest = digest_of(body)
        stored = self.request(
            "PUT",
            f"{self.repository}/manifests/{reference}",
            expect=(201,),
            what=f"store the manifest {self.repository}:{reference}",
            headers={"Content-Type": media_type},
            data=body,
        )
        said = stored.headers.get("Docker-Content-Digest")
        if said and said != digest:
            raise RegistryError(f"registry {self.host} stored {self.repository}:{reference} as {said}, not {digest}")
        return digest

    def tags(self) -> list[str]:
        """Every tag of the repository (none when it does not exist yet), following pagination."""
        out: list[str] = []
        path: str | None = f"{self.repository}/tags/list"
        while path:
            page = self.request("GET", path, expect=(200,), missing_ok=True, what=f"list the tags of {self.repository}")
            if page.status_code == 404:
                return out
            try:
                out += [str(t) for t in (page.json().get("tags") or [])]
            except (ValueError, AttributeError):
                raise RegistryError(f"registry {self.host} sent a tag list that is not JSON") from None
            following = page.links.get("next", {}).get("url")
            path = None if not following else (following if "://" in following else self.base + following)
        return out


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests error, on one line (urllib3 nests them several deep)."""
    text = str(exc)
    found = re.search(
        r"\[SSL: [^\]]+\] [^('\")]+|\[Errno -?\d+\] [^'\")]+|Connection refused|certificate verify failed", text
    )
    reason = found.group(0) if found else text
    return " ".join(reason.split())[:300]
