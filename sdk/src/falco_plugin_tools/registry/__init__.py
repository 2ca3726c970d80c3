"""``registry/plugins.yaml``: the upstream plugin registry mirrored, plus our plugins.

``falco-plugin registry check`` applies every rule of :mod:`.check` (the
upstream ones and ours) and matches each hosted entry against its built
library; ``falco-plugin registry sync FILE`` refreshes the mirror from a
newer upstream ``registry.yaml`` and reports what changed;
``falco-plugin registry rules`` lists the rules; ``falco-plugin registry
next-id`` prints the lowest free sourcing ID.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from falco_plugin_tools.registry.built import BuiltFacts, LibraryError, find_library, read_library
from falco_plugin_tools.registry.check import RULES, Finding, check, check_upstream_rules, plugin_folders
from falco_plugin_tools.registry.model import (
    RegistryError,
    dump,
    find_registry,
    hosted_folder,
    is_hosted,
    load,
    load_file,
    next_free_id,
    plugin_entries,
    save_file,
)
from falco_plugin_tools.registry.sync import SyncReport, sync

__all__ = [
    "RULES",
    "BuiltFacts",
    "Finding",
    "LibraryError",
    "RegistryError",
    "SyncReport",
    "built_facts",
    "check",
    "check_upstream_rules",
    "dump",
    "find_library",
    "find_registry",
    "is_hosted",
    "load",
    "load_file",
    "next_free_id",
    "read_library",
    "save_file",
    "sync",
]


def built_facts(root: Path, data: dict[str, Any], *, build: bool = False) -> dict[str, BuiltFacts | str]:
    """What each plugin folder's library reports (or why there is none), by folder."""
    names = {hosted_folder(e): e.get("name") for e in plugin_entries(data) if is_hosted(e)}
    out: dict[str, BuiltFacts | str] = {}
    with tempfile.TemporaryDirectory(prefix="falco-plugin-registry-") as tmp:
        for folder in plugin_folders(root):
            name = names.get(folder)
            try:
                if build:
                    from falco_plugin_tools.build import BuildError, build_plugin

                    try:
                        library = build_plugin(root / folder, Path(tmp) / folder).library
                    except (BuildError, TypeError) as exc:
                        raise LibraryError(f"cannot build {folder}: {exc}") from None
                else:
                    library = find_library(root / folder, name if isinstance(name, str) else None)
                out[folder] = read_library(library)
            except LibraryError as exc:
                out[folder] = str(exc)
    return out


# -- command line ---------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = sub.add_parser("check", help="apply every registry rule and match entries to the built libraries")
    c.add_argument("--registry", type=Path, help="the registry file (default: registry/plugins.yaml of this checkout)")
    c.add_argument(
        "--root", type=Path, help="repository root holding plugins/ (default: the registry's parent's parent)"
    )
    c.add_argument("--upstream", type=Path, help="also check for collisions with this upstream registry.yaml")
    how = c.add_mutually_exclusive_group()
    how.add_argument("--build", action="store_true", help="build every plugin into a temporary directory first")
    how.add_argument("--no-libraries", action="store_true", help="skip matching entries to built libraries")
    s = sub.add_parser("sync", help="refresh the mirrored entries from an upstream registry.yaml")
    s.add_argument("upstream", type=Path, help="the upstream registry.yaml")
    s.add_argument("--registry", type=Path, help="the registry file (default: registry/plugins.yaml of this checkout)")
    s.add_argument("--dry-run", action="store_true", help="report what would change without writing")
    sub.add_parser("rules", help="list the rules the checker applies")
    n = sub.add_parser("next-id", help="print the lowest free sourcing ID")
    n.add_argument("--registry", type=Path, help="the registry file (default: registry/plugins.yaml of this checkout)")


def _registry_path(given: Path | None) -> Path:
    path = given or find_registry(Path.cwd())
    if path is None:
        raise RegistryError("no registry/plugins.yaml here or in a parent directory (pass --registry)")
    return path


def main(args: argparse.Namespace) -> int:
    try:
        if args.action == "rules":
            for rule, text in RULES.items():
                print(f"{rule:20} {text}")
            return 0
        path = _registry_path(args.registry)
        data = load_file(path)
        if args.action == "next-id":
            print(next_free_id(data))
            return 0
        if args.action == "sync":
            return _sync(path, data, args)
        return _check(path, data, args)
    except RegistryError as exc:
        print(f"falco-plugin registry: {exc}", file=sys.stderr)
        return 1


def _check(path: Path, data: dict[str, Any], args: argparse.Namespace) -> int:
    root = (args.root or path.parent.parent).resolve()
    upstream = load_file(args.upstream) if args.upstream else None
    built = None if args.no_libraries else built_facts(root, data, build=args.build)
    findings = check(data, root=root, built=built, upstream=upstream)
    for f in findings:
        print(f"{path}: {f}")
    entries = list(plugin_entries(data))
    hosted = sum(1 for e in entries if is_hosted(e))
    matched = "" if built is None else f", {sum(1 for v in built.values() if not isinstance(v, str))} libraries matched"
    print(f"{path}: {len(entries)} entries ({hosted} hosted here{matched}): {len(findings)} finding(s)")
    return 1 if findings else 0


def _sync(path: Path, data: dict[str, Any], args: argparse.Namespace) -> int:
    refreshed, report = sync(data, load_file(args.upstream))
    for line in report.lines():
        print(line)
    if not report.ok:
        print(f"{path} left unchanged", file=sys.stderr)
        return 1
    if args.dry_run or not report.has_changes:
        return 0
    save_file(path, refreshed)
    print(f"wrote {path}")
    return 0
