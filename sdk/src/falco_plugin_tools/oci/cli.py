"""``falco-plugin push``'s command line, apart from :mod:`.push` so that a missing extra is a hint, not a traceback."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "main"]

EXTRA_HINT = "needs the SDK's oci extra (requests, PyYAML): pip install 'falco-plugin-sdk[oci]'"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument(
        "reference",
        help="REGISTRY/REPOSITORY[:TAG], e.g. ghcr.io/acme/plugins/plugin/dummy_py "
        "(no tag: the version's tags, with latest for a release)",
    )
    parser.add_argument("archive", type=Path, help="a standalone plugin archive or a rules archive of `package`")
    parser.add_argument(
        "--plain-http", action="store_true", help="talk HTTP, not HTTPS, to the registry (a local test registry)"
    )
    parser.add_argument(
        "--index", type=Path, help="falcoctl index to point at the pushed artifact (default: index.yaml beside it)"
    )
    parser.add_argument("--no-index", action="store_true", help="leave every index.yaml alone")
    parser.add_argument(
        "--registry", type=Path, help="registry file describing a new index entry (default: registry/plugins.yaml)"
    )


def main(args: argparse.Namespace) -> int:
    def fail(message: str) -> int:
        print(f"falco-plugin push: {message}", file=sys.stderr)
        return 1

    try:
        from falco_plugin_tools.oci.artifact import ArchiveError, inspect_archive
        from falco_plugin_tools.oci.push import push_archive, update_index
        from falco_plugin_tools.oci.reference import ReferenceSyntaxError, parse_reference
        from falco_plugin_tools.oci.registry import Registry, RegistryError, find_credentials
    except ImportError as exc:
        return fail(f"{EXTRA_HINT} ({exc})")
    try:
        reference = parse_reference(args.reference)
        contents = inspect_archive(args.archive)
        credentials = find_credentials(reference.registry)
        with Registry(
            reference.registry, reference.repository, plain_http=args.plain_http, credentials=credentials
        ) as registry:
            pushed = push_archive(registry, reference, contents)
    except (ReferenceSyntaxError, ArchiveError, RegistryError) as exc:
        return fail(str(exc))
    where = f"{reference.registry}/{reference.repository}"
    platform = "/".join(contents.platform) if contents.platform else ""
    print(f"pushed    {contents.kind} {contents.name} {contents.version} {platform}".rstrip() + f" to {where}")
    if contents.kind == "plugin":
        print(f"digest    {pushed.digest} (image index: {', '.join(pushed.platforms)})")
        print(f"manifest  {pushed.manifest_digest} ({platform})")
    else:
        print(f"digest    {pushed.digest} (image manifest)")
    print(
        f"tags      {' '.join(pushed.tags)}" + ("" if pushed.changed else " (unchanged: the registry had it already)")
    )
    if pushed.kept:
        print(f"kept      {' '.join(pushed.kept)} where they are (a higher version has them)")
    if not args.no_index:
        index = args.index or args.archive.parent / "index.yaml"
        try:
            update_index(index, contents, reference, args.registry)
        except ArchiveError as exc:
            return fail(f"pushed, but {exc}")
        print(f"index     {index}: {contents.name} -> {where}")
    return 0
