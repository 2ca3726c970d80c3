"""A real OCI registry for the push tests, and a pull that walks it the way falcoctl does.

The registry is Debian's ``docker-registry`` (the CNCF distribution registry,
2.8): ``docker-registry serve CONFIG`` on 127.0.0.1, on a port the kernel
picks (the registry logs which), storing in a temporary directory. The pull
uses plain HTTP requests, independent of the code under test: tag -> image
index -> the platform's manifest -> config -> layer, checking each digest.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


def registry_binary() -> str | None:
    return shutil.which("docker-registry")


NOT_INSTALLED = (
    "no docker-registry binary: the push tests need Debian's docker-registry package "
    "(.ci/run installs it: apt-get install docker-registry apache2-utils)"
)


@dataclass(frozen=True)
class Registry:
    host: str
    """``127.0.0.1:<port>``."""
    storage: Path

    def url(self, path: str) -> str:
        return f"http://{self.host}/v2/{path}"

    def tags(self, repository: str) -> list[str]:
        """The repository's tags (none for a repository never pushed to)."""
        listed = requests.get(self.url(f"{repository}/tags/list"), timeout=30)
        if listed.status_code == 404:
            return []
        listed.raise_for_status()
        return sorted(listed.json().get("tags") or [])

    def digest_of_tag(self, repository: str, tag: str) -> str:
        found = requests.head(
            self.url(f"{repository}/manifests/{tag}"), headers={"Accept": f"{INDEX}, {MANIFEST}"}, timeout=30
        )
        found.raise_for_status()
        return str(found.headers["Docker-Content-Digest"])


@contextmanager
def running_registry(
    binary: str, workdir: Path, *, htpasswd: Path | None = None, readonly: bool = False
) -> Iterator[Registry]:
    """A registry serving from ``workdir/storage`` until the block ends."""
    storage = workdir / "storage"
    storage.mkdir(parents=True)
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "maintenance": {"readonly": {"enabled": readonly}, "uploadpurging": {"enabled": False}},
        },
        "http": {"addr": "127.0.0.1:0", "secret": "push-tests"},
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "push-tests", "path": str(htpasswd)}}
    config_path = workdir / "config.yml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    log_path = workdir / "registry.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([binary, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT)
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None:
            found = _LISTENING.search(log_path.read_text(errors="replace"))
            if found:
                port = found.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start:\n{log_path.read_text(errors='replace')}")
            else:
                time.sleep(0.05)
        yield Registry(f"127.0.0.1:{port}", storage)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def htpasswd_file(path: Path, user: str, password: str) -> Path:
    """An htpasswd file with a bcrypt entry (the only hash the registry accepts)."""
    htpasswd = shutil.which("htpasswd")
    if htpasswd is None:
        raise RuntimeError("no htpasswd: .ci/run installs apache2-utils")
    subprocess.run([htpasswd, "-Bbc", str(path), user, password], check=True, capture_output=True, timeout=60)
    return path


@dataclass(frozen=True)
class Pulled:
    top_media_type: str
    top: dict[str, Any]
    """What the tag names: the image index of a plugin, the manifest of a rules file."""
    manifest: dict[str, Any]
    config_media_type: str
    config: dict[str, Any]
    layer: bytes
    layer_media_type: str
    filename: str


def _get(url: str, accept: str | None = None) -> requests.Response:
    got = requests.get(url, headers={"Accept": accept} if accept else {}, timeout=60)
    got.raise_for_status()
    return got


def _checked(data: bytes, descriptor: dict[str, Any]) -> bytes:
    assert "sha256:" + hashlib.sha256(data).hexdigest() == descriptor["digest"]
    assert len(data) == descriptor["size"]
    return data


def _blob(registry: Registry, repository: str, descriptor: dict[str, Any]) -> bytes:
    return _checked(_get(registry.url(f"{repository}/blobs/{descriptor['digest']}")).content, descriptor)


def pull(registry: Registry, repository: str, tag: str, os: str = "linux", arch: str = "amd64") -> Pulled:
    """Resolve ``tag`` as falcoctl's puller does and fetch every blob, checking digests and sizes."""
    top_response = _get(registry.url(f"{repository}/manifests/{tag}"), f"{INDEX}, {MANIFEST}")
    top_media_type = top_response.headers["Content-Type"]
    top = json.loads(top_response.content)
    manifest = top
    if top_media_type == INDEX:
        chosen = [m for m in top["manifests"] if m["platform"] == {"os": os, "architecture": arch}]
        assert len(chosen) == 1, top
        body = _get(registry.url(f"{repository}/manifests/{chosen[0]['digest']}"), MANIFEST).content
        manifest = json.loads(_checked(body, chosen[0]))
    assert len(manifest["layers"]) == 1, manifest
    config = _blob(registry, repository, manifest["config"])
    layer_descriptor = manifest["layers"][0]
    layer = _blob(registry, repository, layer_descriptor)
    return Pulled(
        top_media_type=top_media_type,
        top=top,
        manifest=manifest,
        config_media_type=manifest["config"]["mediaType"],
        config=json.loads(config),
        layer=layer,
        layer_media_type=layer_descriptor["mediaType"],
        filename=layer_descriptor["annotations"]["org.opencontainers.image.title"],
    )


def install(layer: bytes, into: Path, scratch: Path) -> list[str]:
    """Unpack a layer as falcoctl's installer does: regular files and directories only; the names."""
    archive = scratch / "layer.tar.gz"
    archive.write_bytes(layer)
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        assert all(m.isfile() or m.isdir() for m in members), "falcoctl refuses links and special files"
        assert not [m.name for m in members if ".." in m.name], "falcoctl refuses names with '..'"
        tar.extractall(into, filter="data")
    return [m.name for m in members]
