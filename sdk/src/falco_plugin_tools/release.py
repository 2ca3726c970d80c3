"""``falco-plugin release-check``: is the version bump at least as large as the change?

Falco's plugin developers' guide asks every release to bump the version: the
patch always, the minor when fields are added, the major when a field is
modified or removed or its meaning changes. This command holds a built plugin
to that, against the facts of its previous release.

**Release facts** are what a release promises its users, as plain JSON: name,
version, id, event source, contact, required plugin API version,
capabilities, every field (type, list-ness, argument) and the init schema.
The build writes them into ``lib<name>.site/`` (:data:`FACTS_FILE`), so the
package archive carries them; ``--write-facts`` writes them anywhere, e.g. as
``plugins/<name>/release-facts.json`` to record a release in the repository.
Either side of a check can be a built library (read through the SDK's host,
so a stale build cannot pass on the strength of its source), a project
folder, a facts file or a package archive.

The rules (:func:`compare`), each change with the smallest bump it needs:

* major: a field removed (a rename is a removal plus an addition), its type,
  list-ness or argument changed, a semantic change declared with
  ``--semantic-change FIELD``, the event source or plugin id changed, the init
  schema narrowed (a key removed, its type changed, allowed values removed, a
  bound tightened, a key newly required);
* minor: a field added;
* patch: anything else (descriptions, new optional init keys, ...); the
  required API version raised is noted (older Falco versions stop loading it).

Errors whatever the version: the same version with different facts, or built
from different sources (facts carry a digest of the project's ``src/``; a
record in the repository may leave it out, ``--without-build``), a version that goes down, an empty or
placeholder contact, and, with ``--registry``, a registry entry whose id or
source does not match the plugin's.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import sys
import tarfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from falco_plugin._internal.spec import PluginSpec
    from falco_plugin_tools.host import PluginInfo

__all__ = [
    "FACTS_FILE",
    "Change",
    "CheckResult",
    "ReleaseError",
    "ReleaseFacts",
    "check_release",
    "compare",
    "facts_from_info",
    "facts_from_spec",
    "load_facts",
]

FACTS_FILE = "_release_facts.json"
"""The facts' file name in ``lib<name>.site/`` (beside the plugin's packages, so archives carry it)."""
FORMAT = 1

MAJOR, MINOR, PATCH = 3, 2, 1
LEVELS = {MAJOR: "major", MINOR: "minor", PATCH: "patch"}
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")
# Contacts scaffolds and templates leave behind; a release must say who to reach.
_PLACEHOLDER = re.compile(r"^(todo|tbd|fixme|changeme|none|n/?a|-+|\?+|<.*>)$|example\.(com|org|net)", re.I)


class ReleaseError(Exception):
    """Facts that cannot be read: the message names the file and the problem."""


@dataclass(frozen=True)
class ReleaseFacts:
    """What one build of a plugin promises its users."""

    name: str
    version: str
    id: int = 0
    event_source: str = ""
    contact: str = ""
    description: str = ""
    required_api_version: str = ""
    capabilities: tuple[str, ...] = ()
    fields: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """By name: ``type``, ``is_list``, ``arg`` (``required``/``index``/``key``), ``desc``."""
    init_schema: Mapping[str, Any] | None = None
    build: str | None = None
    """A digest of the plugin's own sources (``src/``) at build time; None when unknown."""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "id": self.id,
            "event_source": self.event_source,
            "contact": self.contact,
            "description": self.description,
            "required_api_version": self.required_api_version,
            "capabilities": list(self.capabilities),
            "fields": {k: dict(v) for k, v in self.fields.items()},
            "init_schema": self.init_schema,
            "build": self.build,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n"

    def promises(self) -> dict[str, Any]:
        """Everything a user sees but the version (not the build digest)."""
        data = self.to_json()
        del data["version"], data["build"]
        return data

    @classmethod
    def from_json(cls, data: Any, where: str) -> ReleaseFacts:
        if not isinstance(data, dict):
            raise ReleaseError(f"{where}: release facts must be a JSON object")
        if data.get("format") != FORMAT:
            raise ReleaseError(f"{where}: unknown release facts format {data.get('format')!r} (expected {FORMAT})")
        try:
            fields = data.get("fields", {})
            if not isinstance(fields, dict) or not all(isinstance(v, dict) for v in fields.values()):
                raise TypeError("fields must map names to objects")
            schema = data.get("init_schema")
            if schema is not None and not isinstance(schema, dict):
                raise TypeError("init_schema must be an object or null")
            return cls(
                name=_text(data["name"]),
                version=_text(data["version"]),
                id=int(data.get("id", 0)),
                event_source=_text(data.get("event_source", "")),
                contact=_text(data.get("contact", "")),
                description=_text(data.get("description", "")),
                required_api_version=_text(data.get("required_api_version", "")),
                capabilities=tuple(_text(c) for c in data.get("capabilities", [])),
                fields=fields,
                init_schema=schema,
                build=None if data.get("build") is None else _text(data["build"]),
            )
        except KeyError as e:
            raise ReleaseError(f"{where}: release facts lack {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise ReleaseError(f"{where}: invalid release facts: {e}") from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _field_facts(entries: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Field facts from the host's :class:`~falco_plugin_tools.host.fields.FieldInfo` entries."""
    return {
        f.name: {
            "type": f.type,
            "is_list": f.is_list,
            "arg": {"required": f.arg_required, "index": f.is_index, "key": f.is_key},
            "desc": f.desc,
        }
        for f in entries
    }


def facts_from_info(info: PluginInfo) -> ReleaseFacts:
    """The facts of a library loaded in the SDK's host (what the library itself reports)."""
    return ReleaseFacts(
        name=info.name,
        version=info.version,
        id=info.id,
        event_source=info.event_source,
        contact=info.contact,
        description=info.description,
        required_api_version=info.required_api_version,
        capabilities=tuple(sorted(info.capabilities)),
        fields=_field_facts(info.fields),
        init_schema=info.init_schema,
    )


def facts_from_spec(spec: PluginSpec) -> ReleaseFacts:
    """The facts of a plugin class the builder resolved: what its library reports once built.

    Fields come from the ``get_fields`` JSON the library will return, read
    without the host (a build needs none of its dependencies); the build tests
    check that these facts equal the ones read from the built library.
    """
    sourcing = spec.sourcing
    entries = json.loads(spec.fields_json)
    return ReleaseFacts(
        name=spec.name,
        version=spec.version,
        id=sourcing.id if sourcing is not None else 0,
        event_source=sourcing.event_source if sourcing is not None else "",
        contact=spec.contact,
        description=spec.description,
        required_api_version=spec.required_api_version,
        capabilities=tuple(sorted(spec.capabilities)),
        fields={
            e["name"]: {
                "type": e["type"],
                "is_list": bool(e.get("isList", False)),
                "arg": {
                    k: bool((e.get("arg") or {}).get(f"is{k.title()}", False)) for k in ("required", "index", "key")
                },
                "desc": e.get("desc", ""),
            }
            for e in entries
        },
        init_schema=json.loads(spec.init_schema) if spec.init_schema is not None else None,
    )


def source_digest(project: Path) -> str | None:
    """sha256 over the plugin project's ``src/`` files (paths and contents); None without ``src/``.

    The library itself is no good for this: compilers leave build paths in it.
    """
    root = project / "src"
    if not root.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if (
            not path.is_file()
            or path.suffix == ".pyc"
            or any(p.startswith(".") or p == "__pycache__" for p in rel.parts)
        ):
            continue
        digest.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()


def write_build_facts(spec: PluginSpec, site_dir: Path, project: Path) -> Path:
    """Write the facts of a fresh build into its site dir (the builder calls this)."""
    path = site_dir / FACTS_FILE
    facts = dataclasses.replace(facts_from_spec(spec), build=source_digest(project))
    path.write_text(facts.dumps())
    return path


def load_facts(source: str | Path) -> ReleaseFacts:
    """Facts from a facts file, a package archive, a built library or a project folder."""
    path = Path(source)
    if not path.exists():
        raise ReleaseError(f"{path}: no such file or folder")
    if path.is_dir():
        from falco_plugin_tools.registry.built import LibraryError, find_library

        try:
            path = find_library(path)
        except LibraryError as e:
            raise ReleaseError(str(e)) from None
    if path.suffix == ".so":
        facts = _library_facts(path)
        # The build digest is not in the library: the facts the same build wrote beside it have it.
        beside = path.with_suffix(".site") / FACTS_FILE
        if beside.is_file():
            recorded = load_facts(beside)
            if recorded.promises() == facts.promises() and recorded.version == facts.version:
                facts = dataclasses.replace(facts, build=recorded.build)
        return facts
    if path.name.endswith((".tar.gz", ".tgz")):
        return _archive_facts(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ReleaseError(f"{path}: not a release facts JSON file: {e}") from None
    return ReleaseFacts.from_json(data, str(path))


def _library_facts(path: Path) -> ReleaseFacts:
    from falco_plugin_tools.registry.built import LibraryError, library_info

    try:
        return facts_from_info(library_info(path))
    except LibraryError as e:
        raise ReleaseError(str(e)) from None


def _archive_facts(path: Path) -> ReleaseFacts:
    try:
        with tarfile.open(path, "r:gz") as tar:
            names = [m for m in tar.getmembers() if m.isfile() and Path(m.name).name == FACTS_FILE]
            if len(names) != 1:
                raise ReleaseError(f"{path}: {len(names)} {FACTS_FILE} files in the archive (expected one)")
            member = tar.extractfile(names[0])
            text = member.read().decode() if member is not None else ""
    except (OSError, tarfile.TarError, UnicodeDecodeError) as e:
        raise ReleaseError(f"{path}: not a readable plugin archive: {e}") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ReleaseError(f"{path}: {names[0].name}: not JSON: {e}") from None
    return ReleaseFacts.from_json(data, f"{path}:{names[0].name}")


# -- comparison -------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    what: str
    level: int
    """:data:`MAJOR`, :data:`MINOR` or :data:`PATCH`."""


def _arg(f: Mapping[str, Any]) -> str:
    arg = f.get("arg") or {}
    kinds = [k for k in ("index", "key") if arg.get(k)]
    return (" or ".join(kinds) + (", required" if arg.get("required") else "")) if kinds else "none"


def _field_changes(before: ReleaseFacts, after: ReleaseFacts, semantic: Sequence[str]) -> list[Change]:
    out: list[Change] = []
    removed = [n for n in before.fields if n not in after.fields]
    added = [n for n in after.fields if n not in before.fields]
    for name in removed:
        old = before.fields[name]
        # Same description and type under a new name: say it is a rename, which breaks rules all the same.
        twin = next(
            (
                n
                for n in added
                if after.fields[n].get("desc") == old.get("desc") and after.fields[n].get("type") == old.get("type")
            ),
            None,
        )
        if twin is not None:
            added.remove(twin)  # reported as the rename, not as an addition too
        out.append(Change(f"field {name} renamed to {twin}" if twin else f"field {name} removed", MAJOR))
    for name, old in before.fields.items():
        new = after.fields.get(name)
        if new is None:
            continue
        if old.get("type") != new.get("type"):
            out.append(Change(f"field {name}: type {old.get('type')} -> {new.get('type')}", MAJOR))
        if bool(old.get("is_list")) != bool(new.get("is_list")):
            kind = "a list" if new.get("is_list") else "not a list"
            out.append(Change(f"field {name}: now {kind}", MAJOR))
        if _arg(old) != _arg(new):
            out.append(Change(f"field {name}: argument {_arg(old)} -> {_arg(new)}", MAJOR))
        if old.get("desc") != new.get("desc"):
            out.append(Change(f"field {name}: description changed", PATCH))
    for name in semantic:
        if name not in after.fields:
            out.append(Change(f"field {name}: declared semantic change, but the plugin has no such field", MAJOR))
        else:
            out.append(Change(f"field {name}: semantic change (declared)", MAJOR))
    out += [Change(f"field {name} added", MINOR) for name in added]
    return out


def _schema_type(s: Mapping[str, Any]) -> Any:
    t = s.get("type")
    return sorted(t) if isinstance(t, list) else t


# Bounds that narrow what a config may hold when they appear or tighten.
_BOUNDS: dict[str, Callable[[Any, Any], bool]] = {
    "minimum": lambda now, was: now > was,
    "exclusiveMinimum": lambda now, was: now > was,
    "minLength": lambda now, was: now > was,
    "minItems": lambda now, was: now > was,
    "maximum": lambda now, was: now < was,
    "exclusiveMaximum": lambda now, was: now < was,
    "maxLength": lambda now, was: now < was,
    "maxItems": lambda now, was: now < was,
}


def _schema_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, where: str = "") -> list[Change]:
    """How a config valid for ``before`` may fail ``after`` (narrowing: major); other differences: patch."""
    old, new = before or {}, after or {}
    label = f"init key {where}" if where else "init schema"
    out: list[Change] = []
    if _schema_type(old) != _schema_type(new) and where:
        return [Change(f"init key {where}: type {_schema_type(old)} -> {_schema_type(new)}", MAJOR)]
    for bound, tighter in _BOUNDS.items():
        was, now = old.get(bound), new.get(bound)
        if now is not None and (was is None or tighter(now, was)):
            out.append(Change(f"{label}: {bound} {was} -> {now}", MAJOR))
    if "enum" in old or "enum" in new:
        gone = [v for v in old.get("enum", []) if v not in new.get("enum", old.get("enum", []))]
        if "enum" in new and "enum" not in old:
            out.append(Change(f"{label}: now limited to {new['enum']}", MAJOR))
        elif gone:
            out.append(Change(f"{label}: values {gone} no longer allowed", MAJOR))
    old_props: Mapping[str, Any] = old.get("properties") or {}
    new_props: Mapping[str, Any] = new.get("properties") or {}
    for key, sub in old_props.items():
        path = f"{where}.{key}" if where else key
        if key not in new_props:
            out.append(Change(f"init key {path} removed", MAJOR))
        else:
            out += _schema_changes(sub, new_props[key], path)
    newly_required = sorted(set(new.get("required", [])) - set(old.get("required", [])))
    for key in newly_required:
        path = f"{where}.{key}" if where else key
        out.append(Change(f"init key {path} now required", MAJOR))
    for key in new_props:
        if key not in old_props and key not in newly_required:
            out.append(Change(f"init key {where + '.' if where else ''}{key} added (optional)", PATCH))
    if not out and old != new:
        out.append(Change(f"{label} changed (no key removed or retyped)", PATCH))
    return out


def _version(text: str) -> tuple[int, int, int] | None:
    m = _VERSION.match(text)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def compare(before: ReleaseFacts, after: ReleaseFacts, semantic: Sequence[str] = ()) -> list[Change]:
    """Every change from ``before`` to ``after``, each with the smallest bump it needs."""
    out: list[Change] = []
    if before.name != after.name:
        out.append(Change(f"name {before.name} -> {after.name}", MAJOR))
    if before.event_source != after.event_source:
        out.append(Change(f"event source {before.event_source!r} -> {after.event_source!r}", MAJOR))
    if before.id != after.id:
        out.append(Change(f"plugin id {before.id} -> {after.id}", MAJOR))
    for cap in sorted(set(before.capabilities) - set(after.capabilities)):
        out.append(Change(f"capability {cap} removed", MAJOR))
    for cap in sorted(set(after.capabilities) - set(before.capabilities)):
        out.append(Change(f"capability {cap} added", MINOR))
    out += _field_changes(before, after, semantic)
    out += _schema_changes(before.init_schema, after.init_schema)
    old_api, new_api = _version(before.required_api_version), _version(after.required_api_version)
    if old_api and new_api and new_api > old_api:
        out.append(
            Change(
                f"required API version raised {before.required_api_version} -> {after.required_api_version}"
                " (older Falco versions no longer load it)",
                PATCH,
            )
        )
    elif before.required_api_version != after.required_api_version:
        out.append(Change(f"required API version {before.required_api_version} -> {after.required_api_version}", PATCH))
    if before.contact != after.contact:
        out.append(Change(f"contact {before.contact!r} -> {after.contact!r}", PATCH))
    if before.description != after.description:
        out.append(Change("description changed", PATCH))
    if before.build is not None and after.build is not None and before.build != after.build:
        out.append(Change("sources changed", PATCH))
    return out


def minimum_next(version: str, level: int) -> str:
    """The smallest version after ``version`` that a change of ``level`` allows.

    Before 1.0.0 every number moves one place to the right, as semver's "initial development"
    and Cargo's rules have it: a breaking change bumps the minor number (0.1.0 -> 0.2.0), an
    addition or a fix the patch number."""
    v = _version(version)
    if v is None:
        raise ReleaseError(f"version {version!r} is not x.y.z")
    major, minor, patch = v
    if major == 0:
        return f"0.{minor + 1}.0" if level == MAJOR else f"0.{minor}.{patch + 1}"
    if level == MAJOR:
        return f"{major + 1}.0.0"
    if level == MINOR:
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


@dataclass
class CheckResult:
    before: ReleaseFacts
    after: ReleaseFacts
    changes: list[Change]
    errors: list[str]
    minimum: str | None
    """The smallest version ``after`` may have (None: the same release, nothing changed)."""

    @property
    def ok(self) -> bool:
        return not self.errors

    def table(self) -> str:
        b, a = self.before, self.after
        lines = [f"release check: {b.name} {b.version} -> {a.name} {a.version}"]
        if self.changes:
            lines.append("  needs  change")
            lines += [f"  {LEVELS[c.level].ljust(5)}  {c.what}" for c in self.changes]
        else:
            lines.append("  no change")
        if self.minimum is not None:
            lines.append(f"minimum next version: {self.minimum} (given {a.version})")
        lines += [f"error: {e}" for e in self.errors]
        lines.append("FAIL" if self.errors else "OK")
        return "\n".join(lines)


def _placeholder_contact(contact: str) -> bool:
    return not contact.strip() or bool(_PLACEHOLDER.search(contact.strip()))


def registry_problems(facts: ReleaseFacts, registry: Mapping[str, Any]) -> list[str]:
    """Where the registry entry of ``facts.name`` disagrees with the plugin's id or source."""
    from falco_plugin_tools.registry.model import entry_id, entry_source, plugin_entries

    entry = next((e for e in plugin_entries(dict(registry)) if e.get("name") == facts.name), None)
    if entry is None:
        return [f"the registry has no entry named {facts.name}"]
    problems = []
    if "sourcing" in facts.capabilities:
        if entry_id(entry) != facts.id:
            problems.append(f"the registry entry's id is {entry_id(entry)}, the plugin's {facts.id}: update the entry")
        if entry_source(entry) != facts.event_source:
            problems.append(
                f"the registry entry's source is {entry_source(entry)!r}, the plugin's {facts.event_source!r}:"
                " update the entry"
            )
    return problems


def check_release(
    before: ReleaseFacts,
    after: ReleaseFacts,
    semantic: Sequence[str] = (),
    registry: Mapping[str, Any] | None = None,
) -> CheckResult:
    """The release check of ``after`` against the previous release ``before``."""
    changes = compare(before, after, semantic)
    errors: list[str] = []
    if _placeholder_contact(after.contact):
        errors.append(f"contact {after.contact!r} is empty or a placeholder: say where users reach the maintainers")
    if registry is not None:
        errors += registry_problems(after, registry)
    old, new = _version(before.version), _version(after.version)
    if old is None or new is None:
        bad = before.version if old is None else after.version
        errors.append(f"version {bad!r} is not x.y.z")
        return CheckResult(before, after, changes, errors, None)
    if new == old:
        if before.promises() != after.promises() or semantic:
            errors.append(f"version {after.version} was already released with different facts: bump the version")
        elif before.build is not None and after.build is not None and before.build != after.build:
            errors.append(f"version {after.version} was already released from other sources: bump the version")
        minimum = minimum_next(before.version, max(c.level for c in changes)) if changes else None
        return CheckResult(before, after, changes, errors, minimum)
    if new < old:
        errors.append(f"version {after.version} is lower than the previous release {before.version}")
    level = max((c.level for c in changes), default=PATCH)
    minimum = minimum_next(before.version, level)
    need = _version(minimum)
    if need is not None and new < need and not errors:
        errors.append(f"version {after.version} is too small for these changes: at least {minimum} ({LEVELS[level]})")
    return CheckResult(before, after, changes, errors, minimum)


# -- command line ----------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("current", type=Path, help="the plugin to release: a library, project folder, facts or archive")
    parser.add_argument(
        "--previous",
        type=Path,
        help="the previous release: its facts file (e.g. plugins/<name>/release-facts.json), library or archive",
    )
    parser.add_argument(
        "--semantic-change",
        action="append",
        default=[],
        metavar="FIELD",
        help="declare that FIELD's meaning changed (needs a major version); repeatable",
    )
    parser.add_argument("--registry", type=Path, help="also check the plugin's entry in this registry file")
    parser.add_argument("--write-facts", type=Path, metavar="FILE", help="write the current plugin's facts to FILE")
    parser.add_argument(
        "--without-build",
        action="store_true",
        help="leave the build digest out of --write-facts (a record in the repository, which work in progress "
        "between releases changes without a new version)",
    )


def main(args: argparse.Namespace) -> int:
    try:
        after = load_facts(args.current)
        registry = None
        if args.registry is not None:
            from falco_plugin_tools.registry.model import RegistryError, load_file

            try:
                registry = load_file(args.registry)
            except RegistryError as e:
                raise ReleaseError(str(e)) from None
        if args.write_facts is not None:
            written = dataclasses.replace(after, build=None) if args.without_build else after
            args.write_facts.write_text(written.dumps())
            print(f"wrote {args.write_facts} ({after.name} {after.version})")
        if args.previous is None:
            if args.write_facts is None:
                raise ReleaseError("nothing to compare with: give --previous (or only --write-facts)")
            return 0
        before = load_facts(args.previous)
    except ReleaseError as e:
        print(f"falco-plugin release-check: {e}", file=sys.stderr)
        return 2
    result = check_release(before, after, args.semantic_change, registry)
    print(result.table())
    return 0 if result.ok else 1
