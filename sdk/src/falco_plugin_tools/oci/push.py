"""``falco-plugin push REFERENCE ARCHIVE``: an archive of ``falco-plugin package``, as falcoctl installs it.

Order of the writes, so that no tag ever names a half-pushed artifact: the
layer and config blobs, then the manifest (and for a plugin the image index)
by digest, and only then the tags, first the version. A failure before the
tags leaves only untagged content, which the registry's garbage collection
removes.

A plugin's image index is read back from the registry first: the manifest
of this archive's platform is put in (replacing an older one of that
platform) and the others are kept, so an arm64 build machine completes what
an x86-64 one pushed. The index lists its manifests sorted by platform, and
nothing in a manifest depends on when it was pushed: the same archives give
the same digests, whatever the order of the pushes, and a second push of the
same archive changes nothing.

Tags: without one in the reference, the version and, for a release (no
``-pre`` part), ``<major>.<minor>``, ``<major>`` and ``latest``, each moved
only when no higher version of the repository has it (pushing a fix of an
older series does not take ``latest`` back). With ``REFERENCE:TAG``,
exactly that tag.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from falco_plugin_tools.oci import IMAGE_INDEX, IMAGE_MANIFEST, TITLE, digest_of, json_bytes
from falco_plugin_tools.oci.artifact import ArchiveError, Contents
from falco_plugin_tools.oci.reference import Reference
from falco_plugin_tools.oci.registry import Registry, RegistryError
from falco_plugin_tools.package import Artifact, index_entries, write_index
from falco_plugin_tools.registry.model import RegistryError as RegistryFileError
from falco_plugin_tools.registry.model import find_registry, load_file, plugin_entries

__all__ = ["Pushed", "floating_tags", "push_archive", "update_index"]

_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?")


@dataclass(frozen=True)
class Pushed:
    reference: Reference
    """Registry and repository (and the first tag)."""
    digest: str
    """What the tags name: the image index of a plugin, the manifest of a rules file."""
    manifest_digest: str
    platforms: tuple[str, ...]
    """``os/arch`` of every manifest in a plugin's index (empty for rules)."""
    tags: tuple[str, ...]
    kept: tuple[str, ...]
    """Floating tags left where they were (a higher version has them)."""
    changed: bool
    """False when the registry already held exactly this (the push was a no-op)."""


def _release(version: str) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` of a release version; ``None`` for a pre-release or a non-semver tag."""
    found = _SEMVER.fullmatch(version)
    if not found or found.group(4):
        return None
    return int(found.group(1)), int(found.group(2)), int(found.group(3))


def floating_tags(version: str, existing: list[str]) -> tuple[list[str], list[str]]:
    """``(tags to set, floating tags kept elsewhere)`` for pushing ``version`` among ``existing`` tags."""
    mine = _release(version)
    kept: list[str] = []
    if mine is None:
        return [version], kept
    releases = [r for r in map(_release, existing) if r is not None]
    wanted = [(f"{mine[0]}.{mine[1]}", 2), (str(mine[0]), 1), ("latest", 0)]
    tags = [version]
    for tag, prefix in wanted:
        higher = any(r > mine and r[:prefix] == mine[:prefix] for r in releases)
        (kept if higher else tags).append(tag)
    return tags, kept


def _manifest(registry: Registry, contents: Contents) -> tuple[bytes, str]:
    """Upload layer and config, then the image manifest by digest; ``(manifest body, its digest)``."""
    config = json_bytes(contents.config)
    layer_digest = registry.push_blob(contents.data, f"the layer {contents.path.name}")
    config_digest = registry.push_blob(config, f"the config of {contents.name}")
    manifest = {
        "schemaVersion": 2,
        "mediaType": IMAGE_MANIFEST,
        "config": {"mediaType": contents.config_media_type, "digest": config_digest, "size": len(config)},
        "layers": [
            {
                "mediaType": contents.layer_media_type,
                "digest": layer_digest,
                "size": len(contents.data),
                "annotations": {TITLE: contents.path.name},
            }
        ],
    }
    body = json_bytes(manifest)
    digest = registry.put_manifest(digest_of(body), IMAGE_MANIFEST, body)
    return body, digest


def _platform_key(descriptor: dict[str, Any]) -> str:
    platform = descriptor.get("platform") or {}
    return f"{platform.get('os', '')}/{platform.get('architecture', '')}"


def _merged_index(
    registry: Registry, contents: Contents, at: str, manifest: bytes, manifest_digest: str
) -> tuple[dict[str, Any], bytes | None]:
    """``(index with this platform's manifest, the body of the index the tag held before or None)``."""
    assert contents.platform is not None
    mine = {
        "mediaType": IMAGE_MANIFEST,
        "digest": manifest_digest,
        "size": len(manifest),
        "platform": {"os": contents.platform[0], "architecture": contents.platform[1]},
    }
    found = registry.get_manifest(at, (IMAGE_INDEX, IMAGE_MANIFEST))
    before: bytes | None = None
    others: list[dict[str, Any]] = []
    if found is not None:
        media_type, body = found
        where = f"{registry.host}/{registry.repository}:{at}"
        if media_type != IMAGE_INDEX:
            raise RegistryError(f"{where} holds a {media_type}, not a plugin's image index: not replacing it")
        before = body
        others = [m for m in json.loads(body).get("manifests") or [] if _platform_key(m) != _platform_key(mine)]
        for other in others:
            _check_same_plugin(registry, contents, other, where)
    manifests = sorted([*others, mine], key=_platform_key)
    return {"schemaVersion": 2, "mediaType": IMAGE_INDEX, "manifests": manifests}, before


def _check_same_plugin(registry: Registry, contents: Contents, descriptor: dict[str, Any], where: str) -> None:
    """Another platform's manifest in the index must be of this very plugin and version."""
    found = registry.get_manifest(str(descriptor.get("digest")), (IMAGE_MANIFEST,))
    config_digest = json.loads(found[1]).get("config", {}).get("digest") if found else None
    config = json.loads(registry.get_blob(str(config_digest))) if config_digest else {}
    theirs = (config.get("name"), config.get("version"))
    if theirs != (contents.name, contents.version):
        raise RegistryError(
            f"{where}: its {_platform_key(descriptor)} manifest is {theirs[0]} {theirs[1]}, "
            f"not {contents.name} {contents.version}: not mixing them in one index"
        )


def push_archive(registry: Registry, reference: Reference, contents: Contents) -> Pushed:
    """Push ``contents`` to ``reference`` (see the module docs for the order and the tags)."""
    registry.ping()
    kept: list[str] = []
    if reference.tag:
        tags = [reference.tag]
    else:
        tags, kept = floating_tags(contents.version, registry.tags())
    manifest, manifest_digest = _manifest(registry, contents)
    platforms: tuple[str, ...] = ()
    if contents.kind == "plugin":
        index, before = _merged_index(registry, contents, tags[0], manifest, manifest_digest)
        root, media_type = json_bytes(index), IMAGE_INDEX
        digest = registry.put_manifest(digest_of(root), IMAGE_INDEX, root)
        platforms = tuple(_platform_key(m) for m in index["manifests"])
        changed = before != root
    else:
        root, media_type, digest = manifest, IMAGE_MANIFEST, manifest_digest
        found = registry.get_manifest(tags[0], (IMAGE_MANIFEST, IMAGE_INDEX))
        if found is not None and found[0] == IMAGE_INDEX:
            where = f"{registry.host}/{registry.repository}:{tags[0]}"
            raise RegistryError(f"{where} holds a plugin's image index, not a rules file: not replacing it")
        changed = found is None or found[1] != root
    for tag in tags:
        registry.put_manifest(tag, media_type, root)
    return Pushed(reference.with_tag(tags[0]), digest, manifest_digest, platforms, tuple(tags), tuple(kept), changed)


# -- index.yaml -------------------------------------------------------------------------------------


def update_index(index: Path, contents: Contents, reference: Reference, registry_file: Path | None) -> None:
    """Point ``index``'s entry for the artifact at what was pushed (adding the entry when missing)."""
    try:
        entries = yaml.safe_load(index.read_text(encoding="utf-8")) if index.exists() else []
    except (OSError, yaml.YAMLError) as exc:
        raise ArchiveError(f"{index} cannot be read as falcoctl's index: {' '.join(str(exc).split())}") from None
    if not isinstance(entries, list):
        raise ArchiveError(f"{index} is not falcoctl's index (a YAML list of entries)")
    entry = next((e for e in entries if isinstance(e, dict) and e.get("name") == contents.name), None)
    if entry is None:
        path = registry_file or find_registry(Path.cwd())
        try:
            described = {str(e.get("name")): e for e in plugin_entries(load_file(path))} if path else {}
        except RegistryFileError as exc:
            raise ArchiveError(str(exc)) from None
        artifact = Artifact(contents.name, contents.kind, contents.plugin, contents.version, contents.path)
        entry = index_entries(
            [artifact], described, oci_registry=reference.registry, oci_repository=reference.repository
        )[0]
        entries.append(entry)
    entry["registry"] = reference.registry
    entry["repository"] = reference.repository
    write_index(index, sorted(entries, key=lambda e: str(e.get("name"))))
