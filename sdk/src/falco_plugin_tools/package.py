"""Distributable archives of built plugins, and the index falcoctl reads.

Per plugin, in the output directory:

* ``<name>-<version>-linux-<arch>.tar.gz`` (upstream's naming):
  ``lib<name>.so`` and ``lib<name>.site/`` (the plugin's Python packages and
  their dependencies) side by side, laid out as Falco's plugin directory
  holds them (falcoctl unpacks plugin archives there). A standalone build
  (``--standalone``, the default of ``--build``) also holds ``python3.X/``,
  the interpreter every standalone plugin in that directory shares, and then
  needs nothing of the machine but glibc (its minimum version is in
  ``lib<name>.site/_standalone.json``); otherwise the library needs the
  Python installation it was built against (see :mod:`falco_plugin_tools.build`).
* ``<name>-rules-<version>.tar.gz`` when the project has ``rules/*.yaml``: the
  rules files at the archive's top level, as falcoctl installs them.
* ``index.yaml``: one falcoctl index entry per artifact (``type: plugin`` or
  ``rulesfile``), with the metadata of the plugin's registry entry.

Name and version come from the built library; archives are reproducible
(sorted members, fixed timestamps and owners).
"""

from __future__ import annotations

import argparse
import gzip
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from falco_plugin_tools.registry.built import BuiltFacts, LibraryError, find_library, read_library
from falco_plugin_tools.registry.model import RegistryError, find_registry, load_file, plugin_entries

__all__ = ["Artifact", "index_entries", "package_plugin", "write_index"]

RULES_SUFFIX = "-rules"
_SKIP = {"__pycache__", "bundle.json.tmp"}


@dataclass(frozen=True)
class Artifact:
    name: str
    """The artifact's name in the index: the plugin's, or ``<plugin>-rules``."""
    kind: str
    """``plugin`` or ``rulesfile`` (falcoctl's artifact types)."""
    plugin: str
    version: str
    path: Path


def _members(base: Path, arcname: str, *, bytecode: bool = False) -> Iterable[tuple[Path, str]]:
    """``base`` and what is under it, sorted; bytecode only with ``bytecode`` (a standalone
    bundle's standard library is nothing but bytecode, and its site dir's saves start-up time)."""
    yield base, arcname
    if base.is_dir():
        for child in sorted(base.iterdir()):
            if not bytecode and (child.name in _SKIP or child.suffix == ".pyc"):
                continue
            yield from _members(child, f"{arcname}/{child.name}", bytecode=bytecode)


def _is_standalone(library: Path) -> bool:
    from falco_plugin_tools.build.standalone import PLUGIN_METADATA

    return (library.with_suffix(".site") / PLUGIN_METADATA).is_file()


def standalone_home(library: Path) -> Path | None:
    """The interpreter home a standalone build put beside ``library`` (``None``: not standalone)."""
    from falco_plugin_tools.build.standalone import HOME_DIR, PLUGIN_METADATA

    if not (library.with_suffix(".site") / PLUGIN_METADATA).is_file():
        return None
    home = library.parent / HOME_DIR
    if not home.is_dir():
        raise LibraryError(f"{home} is missing: a standalone library cannot load without it (rebuild the plugin)")
    return home


#: ELF ``e_machine`` values of the architectures Falco ships for, as archive names spell them.
_ELF_MACHINES = {62: "x86_64", 183: "aarch64", 3: "i386", 40: "arm", 243: "riscv64", 21: "ppc64le", 22: "s390x"}


def elf_arch(library: Path) -> str:
    """The architecture ``library`` was built for, from its ELF header (``e_machine``)."""
    with library.open("rb") as fh:
        header = fh.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise LibraryError(f"{library} is not an ELF file")
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return _ELF_MACHINES.get(machine, f"elf-machine-{machine}")


def build_python(library: Path) -> list[str]:
    """The directories of the build machine's Python a non-standalone library loads from: its
    absolute RUNPATH entries (``$ORIGIN``-relative ones travel with the archive)."""
    from falco_plugin_tools.build.standalone import StandaloneError, rpaths

    try:
        return [p for p in rpaths(library) if p.startswith("/")]
    except StandaloneError as exc:
        raise LibraryError(f"{library}: cannot read its RUNPATH: {exc}") from None


def _write_tar_gz(path: Path, members: Iterable[tuple[Path, str]]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for src, arcname in members:
            info = tar.gettarinfo(str(src), arcname)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isfile():
                with src.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buffer.getvalue())
    tmp.replace(path)


def rules_files(project: Path) -> list[Path]:
    folder = project / "rules"
    return (
        sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()) if folder.is_dir() else []
    )


def package_plugin(
    project: Path, library: Path, facts: BuiltFacts, out_dir: Path, *, arch: str | None = None
) -> list[Artifact]:
    """Write the plugin archive (and the rules archive, if any) of one built plugin."""
    site = library.with_suffix(".site")
    if not site.is_dir():
        raise LibraryError(f"{site} is missing: the library cannot load without it (rebuild the plugin)")
    out_dir.mkdir(parents=True, exist_ok=True)
    built_for = elf_arch(library)
    if arch is not None and arch != built_for:
        raise LibraryError(f"--arch {arch} does not match {library.name}, built for {built_for} (its ELF header)")
    arch = built_for
    plugin_archive = out_dir / f"{facts.name}-{facts.version}-linux-{arch}.tar.gz"
    # The library keeps its lib<name>.so file name: Falco's config and the site dir's name both use it.
    home = standalone_home(library)
    members = [(library, library.name), *_members(site, site.name, bytecode=home is not None)]
    if home is not None:
        members += _members(home, home.name, bytecode=True)
    _write_tar_gz(plugin_archive, members)
    artifacts = [Artifact(facts.name, "plugin", facts.name, facts.version, plugin_archive)]
    rules = rules_files(project)
    if rules:
        rules_archive = out_dir / f"{facts.name}{RULES_SUFFIX}-{facts.version}.tar.gz"
        _write_tar_gz(rules_archive, [(r, r.name) for r in rules])
        artifacts.append(Artifact(facts.name + RULES_SUFFIX, "rulesfile", facts.name, facts.version, rules_archive))
    return artifacts


# -- the index ------------------------------------------------------------------------


def _absolute(url: str, home_url: str | None) -> str:
    if "://" in url or not home_url:
        return url
    return f"{home_url.rstrip('/')}/{url.strip('/')}"


def index_entries(
    artifacts: Iterable[Artifact],
    registry_entries: dict[str, dict[str, Any]],
    *,
    oci_registry: str,
    oci_repository: str,
    home_url: str | None = None,
) -> list[dict[str, Any]]:
    """falcoctl index entries for ``artifacts``, described by their plugins' registry entries."""
    out = []
    for a in artifacts:
        entry = registry_entries.get(a.plugin, {})
        home = _absolute(str(entry.get("url", "")), home_url)
        keywords = [str(k) for k in entry.get("keywords") or []]
        if a.name not in keywords:
            keywords.append(a.name)
        if a.kind == "plugin":
            repository, sources = f"{oci_repository}/plugin/{a.plugin}", [home]
        else:
            rules_url = entry.get("rules_url") or (f"{entry['url'].rstrip('/')}/rules" if entry.get("url") else "")
            repository, sources = f"{oci_repository}/ruleset/{a.plugin}", [_absolute(str(rules_url), home_url)]
        out.append(
            {
                "name": a.name,
                "type": a.kind,
                "registry": oci_registry,
                "repository": repository,
                "description": str(entry.get("description", "")).strip(),
                "home": home,
                "keywords": keywords,
                "license": str(entry.get("license", "")),
                "maintainers": [{k: m[k] for k in ("email", "name") if k in m} for m in entry.get("maintainers") or []],
                "sources": sources,
            }
        )
    return sorted(out, key=lambda e: str(e["name"]))


def index_warnings(entries: Iterable[dict[str, Any]]) -> list[str]:
    """What an index entry lacks that falcoctl users see: a description, a licence, its sources."""
    out = []
    for e in entries:
        missing = [key for key in ("description", "license") if not str(e.get(key) or "").strip()]
        if not [src for src in e.get("sources") or [] if str(src).strip()]:
            missing.append("sources")
        if missing:
            out.append(
                f"index entry {e.get('name')} has no {', no '.join(missing)}: set them in the plugin's registry "
                "entry (description, license, url) and pass --registry FILE if it is not found"
            )
    return out


def write_index(path: Path, entries: list[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, width=100_000), encoding="utf-8")


# -- verifying an archive (falco-plugin verify) ------------------------------------------------


@dataclass(frozen=True)
class Verified:
    library: str
    ok: bool
    output: str


def _default_fields(facts: BuiltFacts, most: int = 4) -> list[str]:
    """A few fields the C host can extract without an argument."""
    out = []
    for f in facts.fields:
        arg = f.get("arg") or {}
        if not arg.get("isRequired"):
            out.append(str(f["name"]))
    return out[:most]


def verify_archive(
    archive: Path,
    *,
    init_config: str = "",
    open_params: str = "",
    events: int = 5,
    timeout: float = 120,
) -> list[Verified]:
    """Unpack ``archive`` into a temporary directory and load each plugin in it in the C host
    (init, open, ``events`` events, a few fields) with an empty environment, as Falco would."""
    from falco_plugin_tools.host.chost import compile_chost

    results = []
    with tempfile.TemporaryDirectory(prefix="falco-plugin-verify-") as tmp:
        root = Path(tmp) / "plugins"
        root.mkdir()
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(root, filter="data")
        except (OSError, tarfile.TarError) as exc:
            raise LibraryError(f"{archive}: cannot unpack: {exc}") from None
        libraries = sorted(root.glob("lib*.so"))
        if not libraries:
            raise LibraryError(f"{archive}: no lib<name>.so at the top of the archive")
        chost = compile_chost(Path(tmp))
        for library in libraries:
            facts = read_library(library)
            # A standalone build needs nothing of this machine (and a missing home is for the run to show).
            hidden = [] if _is_standalone(library) else build_python(library)
            wrapper, note = _hiding(hidden)
            args = [*wrapper, str(chost), str(library), "-n", str(events)]
            if init_config:
                args += ["--config", init_config]
            if open_params:
                args += ["--open", open_params]
            fields = _default_fields(facts)
            if fields:
                args += ["--fields", ",".join(fields)]
            try:
                proc = subprocess.run(args, capture_output=True, text=True, env={}, cwd=tmp, timeout=timeout)
            except subprocess.TimeoutExpired:
                results.append(Verified(library.name, False, f"the C host did not finish in {timeout:g} s"))
                continue
            lines = proc.stdout.splitlines()
            sourced = "sourcing" in facts.capabilities
            got_events = any(line.startswith("evt ") for line in lines)
            ok = proc.returncode == 0 and (got_events or not sourced or events == 0) and note is None
            output = (proc.stdout + proc.stderr).strip()
            if hidden:
                shown = ", ".join(hidden)
                output += f"\nnot standalone: needs the build machine's Python ({shown}); " + (
                    note or "hidden for this run, as on a machine without it"
                )
            results.append(Verified(library.name, ok, output))
    return results


_SYSTEM_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr")
# Mounts an empty directory over each argument before `--`, then runs the rest: in a user and
# mount namespace of its own (unshare -rm), so nothing outside this one run sees a change.
_HIDE_SCRIPT = 'while [ "$1" != -- ]; do mount -t tmpfs -o ro none "$1" || exit 97; shift; done; shift; exec "$@"'


def _hiding(dirs: list[str]) -> tuple[list[str], str | None]:
    """The command prefix that runs the C host with ``dirs`` hidden, and why they cannot be (else ``None``)."""
    if not dirs:
        return [], None
    system = [d for d in dirs if d.rstrip("/") in _SYSTEM_DIRS or d.startswith("/usr/lib/")]
    if system:
        return (
            [],
            f"cannot hide {', '.join(system)} (the system's own libraries): this result holds for this machine only",
        )
    unshare = shutil.which("unshare")
    probe = [unshare, "-rm", "sh", "-c", _HIDE_SCRIPT, "sh", *dirs, "--", "true"] if unshare else []
    if not probe or subprocess.run(probe, capture_output=True, timeout=60).returncode != 0:
        return [], "cannot hide it here (unshare -rm is not permitted): this result holds for this machine only"
    return probe[:-1], None


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("archives", nargs="+", type=Path, help="plugin archives (<name>-<version>-linux-<arch>.tar.gz)")
    parser.add_argument("--init-config", default="", help="init config (default: the plugin's defaults)")
    parser.add_argument("--open-params", default="", help="open params of the source")
    parser.add_argument("-n", type=int, default=5, dest="events", help="events to read (default: 5)")


def verify_main(args: argparse.Namespace) -> int:
    failed = 0
    for archive in args.archives:
        try:
            results = verify_archive(
                archive, init_config=args.init_config, open_params=args.open_params, events=args.events
            )
        except LibraryError as exc:
            print(f"falco-plugin verify: {exc}", file=sys.stderr)
            failed += 1
            continue
        for r in results:
            print(f"{'ok' if r.ok else 'FAILED':6} {archive.name}: {r.library}")
            print("  " + r.output.replace("\n", "\n  "))
            failed += not r.ok
    return 1 if failed else 0


# -- command line (falco-plugin package) -----------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    if command == "verify":
        add_verify_arguments(parser)
        return
    parser.add_argument(
        "projects", nargs="*", type=Path, help="plugin projects (default: every plugins/* of this checkout)"
    )
    parser.add_argument("--out", type=Path, default=Path("dist"), help="output directory (default: dist)")
    parser.add_argument("--build", action="store_true", help="build each plugin into a temporary directory first")
    parser.add_argument(
        "--standalone",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --build: bundle the interpreter, so the archive loads with no Python installed (default: yes); "
        "--no-standalone also accepts an already built library that needs the build machine's Python "
        "(without it, such a library is refused)",
    )
    parser.add_argument(
        "--registry", type=Path, help="registry file with the plugins' metadata (default: registry/plugins.yaml)"
    )
    parser.add_argument("--oci-registry", default="ghcr.io", help="OCI registry the index points at (default: ghcr.io)")
    parser.add_argument(
        "--oci-repository",
        default="falco-plugins",
        help="prefix of the repositories: <prefix>/plugin/<name>, <prefix>/ruleset/<name> (default: %(default)s)",
    )
    parser.add_argument("--home-url", help="URL that repository-relative registry urls are resolved against")
    parser.add_argument(
        "--arch", help="architecture in archive names, checked against the library (default: its ELF header's)"
    )


def main(args: argparse.Namespace) -> int:
    if args.command == "verify":
        return verify_main(args)
    registry_path = args.registry or find_registry(Path.cwd())
    try:
        data = load_file(registry_path) if registry_path else {}
    except RegistryError as exc:
        print(f"falco-plugin package: {exc}", file=sys.stderr)
        return 1
    # Resolved: `package .` names the project by its folder, and its library by an absolute path.
    projects = [p.resolve() for p in args.projects] or (
        sorted(p.parent for p in registry_path.parent.parent.glob("plugins/*/pyproject.toml")) if registry_path else []
    )
    if not projects:
        print("falco-plugin package: no plugin projects given or found", file=sys.stderr)
        return 1
    entries = {str(e.get("name")): e for e in plugin_entries(data)}
    artifacts: list[Artifact] = []
    failed = 0
    with tempfile.TemporaryDirectory(prefix="falco-plugin-package-") as tmp:
        for project in projects:
            try:
                if args.build:
                    from falco_plugin_tools.build import BuildError, build_plugin

                    standalone = args.standalone is not False
                    try:
                        library = build_plugin(project, Path(tmp) / project.name, standalone=standalone).library
                    except (BuildError, TypeError) as exc:
                        raise LibraryError(f"cannot build {project}: {exc}") from None
                else:
                    library = find_library(project)
                needs = [] if standalone_home(library) is not None else build_python(library)
                if needs and args.standalone is not False:
                    raise LibraryError(
                        f"{library} is not standalone: it loads only where Python lives at {', '.join(needs)}, as on "
                        "this machine. Package it with --build (standalone by default), or pass --no-standalone "
                        "for an archive that needs that Python on the target"
                    )
                facts = read_library(library)
                made = package_plugin(project, library, facts, args.out, arch=args.arch)
            except LibraryError as exc:
                print(f"falco-plugin package: {exc}", file=sys.stderr)
                failed += 1
                continue
            for a in made:
                label = (
                    f" (not standalone: needs the Python at {', '.join(needs)})" if needs and a.kind == "plugin" else ""
                )
                print(f"{a.kind:9} {a.name} {a.version}: {a.path}{label}")
            artifacts += made
    index = args.out / "index.yaml"
    if not artifacts:
        # An empty index would replace the one a previous run wrote, for nothing.
        print(f"falco-plugin package: no artifact made, so no index written ({index} left as it was)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    written = index_entries(
        artifacts,
        entries,
        oci_registry=args.oci_registry,
        oci_repository=args.oci_repository,
        home_url=args.home_url,
    )
    write_index(index, written)
    print(f"index     {index} ({len(artifacts)} artifacts)")
    for warning in index_warnings(written):
        print(f"falco-plugin package: warning: {warning}", file=sys.stderr)
    return 1 if failed else 0
