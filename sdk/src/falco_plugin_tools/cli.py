"""``falco-plugin``: build, inspect, run and manage plugins from the shell.

Each sub-command lives in the module that owns its concept; this file only
wires them together and imports them lazily, so ``falco-plugin build`` does
not pay for the host's dependencies and vice versa.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# sub-command -> module exposing add_arguments(parser) and main(args) -> int
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("falco_plugin_tools.build", "compile plugin projects into lib<name>.so"),
    "info": ("falco_plugin_tools.host.cli", "show a plugin library's metadata, capabilities, fields and schema"),
    "run": ("falco_plugin_tools.host.cli", "open a source plugin and print events with field values"),
    "registry": ("falco_plugin_tools.registry", "check or refresh registry/plugins.yaml"),
    "new": ("falco_plugin_tools.scaffold", "create a plugin project from a reference plugin"),
    "package": ("falco_plugin_tools.package", "make distributable archives of built plugins"),
    "verify": (
        "falco_plugin_tools.package",
        "unpack a plugin archive and load it in the C host with an empty environment",
    ),
    "push": (
        "falco_plugin_tools.oci.cli",
        "push a packaged plugin or rules archive to an OCI registry, as falcoctl installs it",
    ),
    "release-check": (
        "falco_plugin_tools.release",
        "compare a built plugin with its previous release: fail when the version bump is smaller than the change",
    ),
    "replay-check": (
        "falco_plugin_tools.replay_check",
        "record a plugin's events with every field, write them to a .scap, replay it in a fresh instance, compare",
    ),
    "docs": (
        "falco_plugin_tools.docs",
        "regenerate the fields/config tables of plugin READMEs (--check: fail on drift)",
    ),
}


def version_text() -> str:
    """What ``falco-plugin --version`` prints: the SDK's release, and the Python it builds plugins with."""
    from falco_plugin._internal.version import SDK_VERSION

    py = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    return f"falco-plugin {SDK_VERSION} (Python {py} at {sys.base_prefix})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="falco-plugin", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = (list(argv) if argv is not None else sys.argv[1:])[:1]
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if wanted == [name]:  # only the chosen command's module is imported
            importlib.import_module(module).add_arguments(p, name)  # type: ignore[attr-defined]
    args = parser.parse_args(argv)
    mod = importlib.import_module(COMMANDS[args.command][0])
    return int(mod.main(args) or 0)  # type: ignore[attr-defined]


if __name__ == "__main__":
    raise SystemExit(main())
