"""Falco artifacts in OCI registries, the way falcoctl installs them (``falco-plugin push``).

falcoctl (the tool the falcosecurity Helm chart runs in its init container and
sidecar) pulls plugins and rules files from OCI registries. What it expects,
from its ``pkg/oci`` and the falcosecurity/plugins release tooling:

* a **plugin** is an OCI image index with one image manifest per platform
  (``linux/amd64``, ``linux/arm64``); falcoctl picks the manifest of the
  machine it runs on;
* a **rules file** is a single image manifest;
* every manifest has exactly one layer, the ``.tar.gz`` archive falcoctl
  unpacks into Falco's plugin (or rules) directory, named by its
  ``org.opencontainers.image.title`` annotation, and a config blob, the JSON
  of :func:`~falco_plugin_tools.oci.artifact.plugin_config` /
  :func:`~falco_plugin_tools.oci.artifact.rules_config` (name, version,
  dependencies, requirements) that falcoctl reads to resolve dependencies;
* the media types of config and layer tell plugins from rules files (below);
* tags: the version, and for a release also ``latest``, ``<major>`` and
  ``<major>.<minor>``.

The modules: :mod:`.reference` (``REGISTRY/REPOSITORY[:TAG]``),
:mod:`.registry` (a client of the OCI distribution API, with credentials),
:mod:`.artifact` (what an archive made by ``falco-plugin package`` becomes),
:mod:`.push` (the command).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "IMAGE_INDEX",
    "IMAGE_MANIFEST",
    "PLUGIN_CONFIG",
    "PLUGIN_LAYER",
    "RULES_CONFIG",
    "RULES_LAYER",
    "TITLE",
    "digest_of",
    "json_bytes",
]

PLUGIN_CONFIG = "application/vnd.cncf.falco.plugin.config.v1+json"
PLUGIN_LAYER = "application/vnd.cncf.falco.plugin.layer.v1+tar.gz"
RULES_CONFIG = "application/vnd.cncf.falco.rulesfile.config.v1+json"
RULES_LAYER = "application/vnd.cncf.falco.rulesfile.layer.v1+tar.gz"
IMAGE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
IMAGE_INDEX = "application/vnd.oci.image.index.v1+json"
TITLE = "org.opencontainers.image.title"
"""The layer annotation falcoctl takes the downloaded file's name from."""


def digest_of(data: bytes) -> str:
    """The OCI digest of ``data`` (sha256, the one every registry accepts)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def json_bytes(document: Mapping[str, Any]) -> bytes:
    """The one serialisation of a manifest, index or config here: the same content, the same digest."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
