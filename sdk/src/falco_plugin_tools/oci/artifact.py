"""What an archive of ``falco-plugin package`` becomes in a registry: its kind, platform and config.

A plugin archive (``<name>-<version>-linux-<arch>.tar.gz``) must be a
standalone one (it carries its interpreter: a cluster's Falco image has no
Python), and its library tells name, version, required plugin API version
and, from its ELF header, the platform. A rules archive
(``<plugin>-rules-<version>.tar.gz``) holds rules files only; their
``required_plugin_versions`` become the config's dependencies and their
``required_engine_version`` its requirement, as upstream's release tooling
does. Archives falcoctl would refuse to unpack (links, ``..`` in a name) are
refused here first.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from falco_plugin_tools.oci import PLUGIN_CONFIG, PLUGIN_LAYER, RULES_CONFIG, RULES_LAYER

__all__ = ["ArchiveError", "Contents", "inspect_archive", "plugin_config", "rules_config"]

PLUGIN_API_REQUIREMENT = "plugin_api_version"
ENGINE_REQUIREMENT = "engine_version_semver"
"""The requirement names falcoctl's consumers know (upstream's registry tooling writes these)."""

# ELF e_machine -> OCI architecture (the Go names falcoctl's --platform uses)
_ARCHITECTURES = {62: "amd64", 183: "arm64"}
_MACHINE_NAMES = {"amd64": ("x86_64", "amd64"), "arm64": ("aarch64", "arm64")}
_PLUGIN_NAME = re.compile(r"(?P<name>.+?)-(?P<version>[0-9][^-]*(?:-[^-]+)*?)-linux-(?P<arch>[A-Za-z0-9_]+)\.tar\.gz")
_RULES_NAME = re.compile(r"(?P<plugin>.+?)-rules-(?P<version>[0-9].*)\.tar\.gz")
_IDENTITY = """
import ctypes, json, sys
lib = ctypes.CDLL(sys.argv[1])
out = {}
for key in ("name", "version", "required_api_version"):
    fn = getattr(lib, "plugin_get_" + key)
    fn.restype = ctypes.c_char_p
    out[key] = fn().decode()
print(json.dumps(out))
"""


class ArchiveError(Exception):
    """The archive cannot be pushed as a Falco artifact (one line: which archive and why)."""


@dataclass(frozen=True)
class Contents:
    """An archive, read: what its manifest and config will say."""

    path: Path
    kind: str
    """``plugin`` or ``rulesfile``."""
    name: str
    """The artifact's name: the plugin's, or ``<plugin>-rules``."""
    plugin: str
    version: str
    config: dict[str, Any]
    platform: tuple[str, str] | None = None
    """``(os, architecture)`` of a plugin's library."""
    data: bytes = field(default=b"", repr=False)

    @property
    def config_media_type(self) -> str:
        return PLUGIN_CONFIG if self.kind == "plugin" else RULES_CONFIG

    @property
    def layer_media_type(self) -> str:
        return PLUGIN_LAYER if self.kind == "plugin" else RULES_LAYER


def plugin_config(name: str, version: str, required_api_version: str) -> dict[str, Any]:
    """A plugin's config blob: falcoctl's ArtifactConfig with the library's required API version."""
    return {
        "name": name,
        "version": version,
        "requirements": [{"name": PLUGIN_API_REQUIREMENT, "version": required_api_version}],
    }


def _engine_semver(value: object, source: str) -> str:
    """``required_engine_version`` as semver: a bare number N is the old form of 0.N.0."""
    text = str(value).strip()
    if re.fullmatch(r"[0-9]+", text):
        return f"0.{int(text)}.0"
    if re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+(?:[-+][0-9A-Za-z.+-]+)?", text):
        return text
    raise ArchiveError(f"{source}: required_engine_version {text!r} is neither a number nor a semver version")


def rules_config(name: str, version: str, rules: dict[str, str]) -> dict[str, Any]:
    """A rules file's config blob from the rules files' text (file name -> YAML text).

    ``dependencies``: every ``required_plugin_versions`` entry (with its
    alternatives), sorted by name; ``requirements``: the highest
    ``required_engine_version`` of the files. Empty lists are left out, as
    falcoctl's own marshalling leaves them out."""
    dependencies: dict[str, dict[str, Any]] = {}
    engine: tuple[tuple[int, ...], str] | None = None
    for file_name, text in sorted(rules.items()):
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ArchiveError(f"{file_name} is not YAML: {' '.join(str(exc).split())}") from None
        for item in document if isinstance(document, list) else []:
            if not isinstance(item, dict):
                continue
            if "required_engine_version" in item:
                semver = _engine_semver(item["required_engine_version"], file_name)
                key = tuple(int(p) for p in re.split(r"[.+-]", semver)[:3])
                engine = max(engine, (key, semver)) if engine else (key, semver)
            for dep in item.get("required_plugin_versions") or []:
                if not isinstance(dep, dict) or "name" not in dep or "version" not in dep:
                    raise ArchiveError(f"{file_name}: a required_plugin_versions entry lacks its name or version")
                entry: dict[str, Any] = {"name": str(dep["name"]), "version": str(dep["version"])}
                alternatives = sorted(
                    ({"name": str(a["name"]), "version": str(a["version"])} for a in dep.get("alternatives") or []),
                    key=lambda a: a["name"],
                )
                if alternatives:
                    entry["alternatives"] = alternatives
                dependencies[entry["name"]] = entry
    config: dict[str, Any] = {"name": name, "version": version}
    if dependencies:
        config["dependencies"] = [dependencies[k] for k in sorted(dependencies)]
    if engine:
        config["requirements"] = [{"name": ENGINE_REQUIREMENT, "version": engine[1]}]
    return config


def _members(path: Path) -> list[tarfile.TarInfo]:
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = tar.getmembers()
    except FileNotFoundError:
        raise ArchiveError(f"{path}: no such file") from None
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ArchiveError(f"{path} is not a .tar.gz archive: {exc}") from None
    for m in members:
        # falcoctl's extraction refuses these: better refused at push than on every node
        if ".." in m.name or PurePosixPath(m.name).is_absolute():
            raise ArchiveError(f"{path}: member {m.name!r} has an absolute path or '..', which falcoctl refuses")
        if not (m.isfile() or m.isdir()):
            raise ArchiveError(f"{path}: member {m.name!r} is a link or special file, which falcoctl refuses")
    return members


def _elf_architecture(head: bytes, where: str) -> str:
    if head[:4] != b"\x7fELF" or len(head) < 20:
        raise ArchiveError(f"{where} is not an ELF library")
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    if machine not in _ARCHITECTURES:
        raise ArchiveError(f"{where}: ELF machine {machine} is neither x86-64 nor aarch64")
    return _ARCHITECTURES[machine]


def _library_identity(library: Path, timeout: float) -> dict[str, str]:
    """Name, version and required API version, from the library's own getters, in a process of its own
    (they return constants: nothing of the plugin's Python runs)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-c", _IDENTITY, str(library)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={},
        )
    except subprocess.TimeoutExpired:
        raise ArchiveError(f"{library.name} did not answer its plugin_get_* calls in {timeout:g} s") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise ArchiveError(f"{library.name} does not load: {last}")
    found = json.loads(proc.stdout)
    return {str(k): str(v) for k, v in found.items()}


def _inspect_plugin(path: Path, members: list[tarfile.TarInfo], timeout: float) -> Contents:
    from falco_plugin_tools.build.standalone import PLUGIN_METADATA

    names = {m.name.rstrip("/") for m in members}
    libraries = sorted(n for n in names if "/" not in n and n.startswith("lib") and n.endswith(".so"))
    if len(libraries) != 1:
        raise ArchiveError(f"{path}: expected one lib<name>.so at the top, found {len(libraries)}")
    library = libraries[0]
    metadata = f"{library[:-3]}.site/{PLUGIN_METADATA}"
    if metadata not in names:
        raise ArchiveError(
            f"{path} is not a standalone archive (no {metadata}): a cluster's Falco has no Python to load it; "
            "package it with `falco-plugin package --build` (standalone by default)"
        )
    with tempfile.TemporaryDirectory(prefix="falco-plugin-push-") as tmp:
        with tarfile.open(path, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        home = json.loads((Path(tmp) / metadata).read_text()).get("home")
        if not home or not (Path(tmp) / str(home)).is_dir():
            raise ArchiveError(f"{path}: the interpreter home {home!r} its library needs is not in the archive")
        arch = _elf_architecture((Path(tmp) / library).read_bytes()[:64], f"{path}: {library}")
        identity = _library_identity(Path(tmp) / library, timeout)
    named = _PLUGIN_NAME.fullmatch(path.name)
    if named and (named["name"], named["version"]) != (identity["name"], identity["version"]):
        raise ArchiveError(
            f"{path}: the file name says {named['name']} {named['version']}, "
            f"the library is {identity['name']} {identity['version']}"
        )
    if named and named["arch"] not in _MACHINE_NAMES[arch]:
        raise ArchiveError(f"{path}: the file name says {named['arch']}, the library is built for {arch}")
    return Contents(
        path=path,
        kind="plugin",
        name=identity["name"],
        plugin=identity["name"],
        version=identity["version"],
        config=plugin_config(identity["name"], identity["version"], identity["required_api_version"]),
        platform=("linux", arch),
        data=path.read_bytes(),
    )


def _inspect_rules(path: Path, members: list[tarfile.TarInfo]) -> Contents:
    named = _RULES_NAME.fullmatch(path.name)
    if not named:
        raise ArchiveError(f"{path}: a rules archive is named <plugin>-rules-<version>.tar.gz")
    rules: dict[str, str] = {}
    with tarfile.open(path, "r:gz") as tar:
        for m in members:
            handle = tar.extractfile(m) if m.isfile() else None
            if handle is not None:
                rules[m.name] = handle.read().decode("utf-8", errors="replace")
    name = f"{named['plugin']}-rules"
    return Contents(
        path=path,
        kind="rulesfile",
        name=name,
        plugin=named["plugin"],
        version=named["version"],
        config=rules_config(name, named["version"], rules),
        data=path.read_bytes(),
    )


def inspect_archive(path: Path, *, timeout: float = 120) -> Contents:
    """Read an archive of ``falco-plugin package``: a standalone plugin archive or a rules archive."""
    members = _members(path)
    files = [m.name for m in members if m.isfile()]
    if not files:
        raise ArchiveError(f"{path} is empty")
    if any(n.endswith(".so") and "/" not in n for n in files):
        return _inspect_plugin(path, members, timeout)
    if all("/" not in n and n.endswith((".yaml", ".yml")) for n in files):
        return _inspect_rules(path, members)
    raise ArchiveError(f"{path} is neither a plugin archive (lib<name>.so at its top) nor a rules archive (*.yaml)")
