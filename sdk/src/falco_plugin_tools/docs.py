"""Generated README tables: a plugin's fields and init configuration, from its built library.

A plugin README marks where each table goes::

    <!-- BEGIN GENERATED FIELDS -->
    <!-- END GENERATED FIELDS -->
    <!-- BEGIN GENERATED CONFIG -->
    <!-- END GENERATED CONFIG -->

``falco-plugin docs`` rewrites only what is between the markers, from what
the library reports (``get_fields``, ``get_init_schema``), so the README
describes the artifact users load. ``falco-plugin docs --check`` changes
nothing and fails, showing the difference, when a table has drifted: CI runs
it after building. A plugin with fields needs the FIELDS markers, one with an
init schema the CONFIG markers; the rest of the README is the author's.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from falco_plugin_tools.registry.built import BuiltFacts, LibraryError, find_library, read_library

__all__ = ["DocsError", "ReadmeUpdate", "render_config", "render_fields", "replace_sections", "update_readme"]

SECTIONS = ("FIELDS", "CONFIG")


class DocsError(Exception):
    """The README cannot be updated (missing or unbalanced markers)."""


def _begin(section: str) -> str:
    return f"<!-- BEGIN GENERATED {section} -->"


def _end(section: str) -> str:
    return f"<!-- END GENERATED {section} -->"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _row(cells: Iterable[str]) -> str:
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [_row(header), "|" + "|".join("---" for _ in header) + "|"]
    lines += [_row(r) for r in rows]
    return "\n".join(lines)


# -- fields ------------------------------------------------------------------------------


def _argument(f: dict[str, Any]) -> str:
    arg = f.get("arg")
    if not isinstance(arg, dict):
        return ""
    kinds = [k for k, on in (("index", arg.get("isIndex")), ("key", arg.get("isKey"))) if on]
    if not kinds:
        return ""
    kind = " or ".join(kinds)
    return f"{kind}, {'required' if arg.get('isRequired') else 'optional'}"


def render_fields(facts: BuiltFacts) -> str:
    """The fields table (Markdown), in the order the library lists them."""
    if not facts.fields:
        return "This plugin extracts no fields."
    rows = []
    for f in facts.fields:
        kind = str(f.get("type", ""))
        if f.get("isList"):
            kind = f"list of {kind}"
        rows.append([f"`{f.get('name')}`", kind, _argument(f), _cell(f.get("desc", ""))])
    return _table(["name", "type", "argument", "description"], rows)


# -- configuration ------------------------------------------------------------------------------


def _schema_type(prop: dict[str, Any]) -> str:
    if "anyOf" in prop:
        return " or ".join(_schema_type(p) for p in prop["anyOf"])
    kind = prop.get("type", "any")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    if kind == "array" and isinstance(prop.get("items"), dict):
        text = f"array of {_schema_type(prop['items'])}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict) and "properties" not in prop:
        text = f"object of {_schema_type(prop['additionalProperties'])}"
    if "enum" in prop:
        text += ": " + ", ".join(f"`{json.dumps(v)}`" for v in prop["enum"] if v is not None)
    limits = [
        f"{label} {prop[key]}"
        for key, label in (
            ("minimum", ">="),
            ("maximum", "<="),
            ("minLength", "length >="),
            ("maxLength", "length <="),
            ("minItems", "items >="),
            ("maxItems", "items <="),
        )
        if key in prop
    ]
    if "pattern" in prop:
        limits.append(f"matching `{prop['pattern']}`")
    return f"{text} ({', '.join(limits)})" if limits else text


def _config_rows(schema: dict[str, Any], prefix: str = "") -> list[list[str]]:
    rows = []
    required = set(schema.get("required") or [])
    for key, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        name = f"{prefix}{key}"
        if key in required:
            default = "required"
        elif "default" in prop:
            default = f"`{json.dumps(prop['default'])}`"
        else:
            default = ""
        rows.append([f"`{name}`", _schema_type(prop), default, _cell(prop.get("description", ""))])
        if prop.get("type") == "object" and isinstance(prop.get("properties"), dict):
            rows += _config_rows(prop, f"{name}.")
    return rows


def render_config(facts: BuiltFacts) -> str:
    """The init configuration table (Markdown): one row per key, nested keys dotted."""
    rows = _config_rows(facts.init_schema or {})
    if not rows:
        return "This plugin takes no configuration."
    return _table(["key", "type", "default", "description"], rows)


# -- README surgery ------------------------------------------------------------------------------


def _needed(facts: BuiltFacts) -> dict[str, bool]:
    return {
        "FIELDS": bool(facts.fields),
        "CONFIG": bool((facts.init_schema or {}).get("properties")),
    }


def replace_sections(text: str, sections: dict[str, str], required: Iterable[str] = ()) -> str:
    """``text`` with the body of each marked section replaced; nothing else changes."""
    for name, body in sections.items():
        begin, end = _begin(name), _end(name)
        pattern = re.compile(re.escape(begin) + r"\n?(.*?)" + re.escape(end), re.S)
        found = pattern.findall(text)
        if text.count(begin) != text.count(end) or len(found) != text.count(begin):
            raise DocsError(f"unbalanced {begin} / {end} markers")
        if not found:
            if name in required:
                raise DocsError(f"no {begin} ... {end} markers: add them where the table goes")
            continue
        # everything up to the first end marker, spliced by hand: the body is not a regex template
        start = text.index(begin)
        stop = text.index(end, start)
        text = f"{text[:start]}{begin}\n{body.rstrip()}\n{text[stop:]}"
    return text


@dataclass(frozen=True)
class ReadmeUpdate:
    path: Path
    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.old.splitlines(keepends=True),
                self.new.splitlines(keepends=True),
                f"{self.path} (committed)",
                f"{self.path} (generated from the library)",
            )
        )


def update_readme(project: Path, facts: BuiltFacts) -> ReadmeUpdate:
    """The README of ``project`` as it should read for ``facts`` (not written)."""
    path = project / "README.md"
    try:
        old = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DocsError(f"{path} not found") from None
    sections = {"FIELDS": render_fields(facts), "CONFIG": render_config(facts)}
    required = [name for name, needed in _needed(facts).items() if needed]
    try:
        new = replace_sections(old, sections, required)
    except DocsError as exc:
        raise DocsError(f"{path}: {exc}") from None
    return ReadmeUpdate(path, old, new)


# -- command line (falco-plugin docs) ------------------------------------------------------------


def _default_projects() -> list[Path]:
    for folder in [Path.cwd(), *Path.cwd().parents]:
        found = sorted(p.parent for p in folder.glob("plugins/*/pyproject.toml"))
        if found:
            return found
    return []


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("projects", nargs="*", type=Path, help="plugin projects (default: every plugins/*)")
    parser.add_argument("--check", action="store_true", help="change nothing; fail if a README table has drifted")
    parser.add_argument("--build", action="store_true", help="build each plugin into a temporary directory first")


def _facts(project: Path, build: bool, tmp: Path) -> BuiltFacts:
    if build:
        from falco_plugin_tools.build import BuildError, build_plugin

        try:
            return read_library(build_plugin(project, tmp / project.name).library)
        except (BuildError, TypeError) as exc:
            raise LibraryError(f"cannot build {project}: {exc}") from None
    return read_library(find_library(project))


def main(args: argparse.Namespace) -> int:
    projects = args.projects or _default_projects()
    failed = 0
    with tempfile.TemporaryDirectory(prefix="falco-plugin-docs-") as tmp:
        for project in projects:
            try:
                update = update_readme(project, _facts(project, args.build, Path(tmp)))
            except (DocsError, LibraryError) as exc:
                print(f"falco-plugin docs: {exc}", file=sys.stderr)
                failed += 1
                continue
            if not update.changed:
                print(f"{update.path}: up to date")
            elif args.check:
                sys.stdout.write(update.diff())
                print(f"{update.path}: generated tables are out of date (run `falco-plugin docs {project}`)")
                failed += 1
            else:
                update.path.write_text(update.new, encoding="utf-8")
                print(f"{update.path}: tables regenerated")
    return 1 if failed else 0
