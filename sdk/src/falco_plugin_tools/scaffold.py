"""``falco-plugin new NAME [--from REFERENCE]``: a plugin project copied from a template or a reference plugin.

Without ``--from`` the project starts from the template that ships with this
tooling (``templates/counter``: a source + extraction plugin with its tests
and rules), so ``falco-plugin new`` works from a plain ``pip install`` of the
SDK, outside any checkout. ``--from`` takes a template name or the path of any
plugin project (``plugins/dummy`` in this repository).

The copy is a working project under new identities: the distribution and
package names, the plugin name, its event source and ID, the field prefix
(``dummy.value`` -> ``<name>.value``) and the class names (``DummyPlugin`` ->
``<Name>Plugin``) are replaced everywhere, file and folder names included,
and, inside a repository with a ``registry/plugins.yaml``, the plugin gets an
entry there (the lowest free ID unless ``--id`` says otherwise). Outside one,
the project is created in the current directory with the development ID 999
(the registry's ID for plugins that have none yet), and says so. It builds and passes the reference's
tests as it is; then it is yours to change.

What is replaced is learned from the reference itself (its ``pyproject.toml``
and its resolved plugin class), so any plugin in ``plugins/`` can serve as a
reference. Where the reference uses one word for several identities
(``dummy_py`` is its name, package and source), the context decides:
``import``/``from``/``src/``/dotted module paths are the package,
``source: x``/``event_source = "x"`` the source, ``id = 29`` the ID, and
everything else the plugin name.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.util
import keyword
import re
import shlex
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from falco_plugin_tools.registry.model import (
    CAPABILITIES,
    NAME_RE,
    SOURCE_RE,
    RegistryError,
    entry_id,
    find_registry,
    load_file,
    next_free_id,
    plugin_entries,
    save_file,
)

__all__ = ["DEVELOPMENT_ID", "TEMPLATES", "Identity", "ScaffoldError", "ScaffoldResult", "scaffold", "template"]

#: Projects a new plugin can start from, shipped with the tooling (never inside a plugin).
TEMPLATES_DIR = Path(__file__).parent / "templates"
TEMPLATES = ("counter",)
DEFAULT_TEMPLATE = "counter"
#: The plugin registry's sourcing ID for development: what a plugin outside any registry gets.
DEVELOPMENT_ID = 999

# Build outputs and caches are not part of a project, nor the reference's record of its
# last release (release-facts.json): a new plugin has never been released.
_IGNORE = shutil.ignore_patterns(
    "lib*.so", "lib*.so.tmp", "lib*.site", "__pycache__", "*.pyc", "*.egg-info",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", "build", "dist", ".nox", ".venv",
    "release-facts.json",
)  # fmt: skip


class ScaffoldError(Exception):
    """The project cannot be created (bad name, taken ID, existing destination...)."""


@dataclass(frozen=True)
class Identity:
    """Every name a plugin project is known by."""

    name: str
    package: str
    distribution: str
    source: str
    id: int
    field_prefix: str | None
    class_prefix: str | None
    fields: tuple[str, ...] = ()
    """Field names (the reference's only: those are the names to replace)."""
    folder: str = ""
    """The project folder's name (``dummy`` for ``plugins/dummy``)."""


@dataclass(frozen=True)
class ScaffoldResult:
    project: Path
    identity: Identity
    reference: Identity
    registry: Path | None
    template: bool = False
    """Started from a shipped template (not a project path)."""


def template(name: str) -> Path:
    """The project directory of the shipped template ``name``."""
    if name not in TEMPLATES:
        raise ScaffoldError(f"no template named {name!r} (templates: {', '.join(TEMPLATES)}; or pass a project path)")
    return TEMPLATES_DIR / name


def _reference_path(reference: str | Path | None) -> tuple[Path, bool]:
    """The reference project ``--from`` names (a template name or a path), and whether it is a template."""
    if reference is None:
        return template(DEFAULT_TEMPLATE), True
    if isinstance(reference, str) and reference in TEMPLATES and not Path(reference).exists():
        return template(reference), True
    path = Path(reference)
    if not (path / "pyproject.toml").is_file():
        raise ScaffoldError(f"{path} is not a plugin project (no pyproject.toml); templates: {', '.join(TEMPLATES)}")
    return path, path.resolve().parent == TEMPLATES_DIR.resolve()


def _camel(ident: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_-]+", ident) if part)


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def reference_identity(project: Path) -> tuple[Identity, str]:
    """The identities of the reference project, and the module that defines its plugin class."""
    from falco_plugin._internal.spec import SpecError, resolve
    from falco_plugin_tools.build import BuildError, plugin_target

    try:
        target = plugin_target(project)
        table = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    except (BuildError, KeyError) as exc:
        raise ScaffoldError(f"{project} is not a plugin project: {exc}") from None
    module, _, cls_name = target.partition(":")
    src = project / "src"
    added = src.is_dir() and str(src) not in sys.path
    if added:
        sys.path.insert(0, str(src))
    before = set(sys.modules)
    try:
        spec = resolve(getattr(importlib.import_module(module), cls_name))
    except (ImportError, AttributeError, SpecError) as exc:
        raise ScaffoldError(f"cannot load the reference plugin {target}: {exc}") from None
    finally:
        if added:
            sys.path.remove(str(src))
            # Forget the reference's modules: a new project of the same package name
            # (a `counter` from the counter template) must import its own, not these.
            for name in set(sys.modules) - before:
                if name.split(".")[0] == module.split(".")[0]:
                    del sys.modules[name]
    prefixes = {f.name.split(".", 1)[0] for f in spec.fields if "." in f.name}
    class_prefix = cls_name.removesuffix("Plugin") if cls_name.endswith("Plugin") and cls_name != "Plugin" else None
    ident = Identity(
        name=spec.name,
        package=module.split(".")[0],
        distribution=str(table["name"]),
        source=spec.sourcing.event_source if spec.sourcing else "",
        id=spec.sourcing.id if spec.sourcing else 0,
        field_prefix=prefixes.pop() if len(prefixes) == 1 else None,
        class_prefix=class_prefix,
        fields=tuple(f.name for f in spec.fields),
        folder=project.name,
    )
    return ident, module


def new_identity(name: str, ref: Identity, *, plugin_id: int, source: str | None, folder: str = "") -> Identity:
    if not NAME_RE.match(name):
        raise ScaffoldError(f"plugin name {name!r} must match {NAME_RE.pattern}")
    package = name.replace("-", "_")
    if not package.isidentifier() or keyword.iskeyword(package):
        raise ScaffoldError(f"{package!r} is not usable as a Python package name")
    source = source or package
    if not SOURCE_RE.match(source):
        raise ScaffoldError(f"event source {source!r} must match {SOURCE_RE.pattern}")
    ref_kebab = _kebab(ref.name)
    distribution = (
        ref.distribution.replace(ref_kebab, _kebab(name))
        if ref_kebab in ref.distribution
        else f"falco-plugin-{_kebab(name)}"
    )
    return Identity(
        name=name,
        package=package,
        distribution=distribution,
        source=source,
        id=plugin_id,
        field_prefix=package if ref.field_prefix else None,
        class_prefix=_camel(package) if ref.class_prefix else None,
        folder=folder or name,
    )


# -- rewriting ---------------------------------------------------------------------------


def _word(text: str) -> str:
    """``text`` as a whole word: not inside a longer identifier (``lib`` and ``_`` prefixes allowed)."""
    return rf"(?:(?<=lib)|(?<![A-Za-z0-9])){re.escape(text)}(?![A-Za-z0-9])"


def rewrite(
    text: str, ref: Identity, new: Identity, *, plugin_module: bool = False, modules: dict[str, str] | None = None
) -> str:
    """``text`` with every identity of ``ref`` replaced by the matching one of ``new``.

    ``modules`` maps the old to the new names of the Python modules whose files
    were renamed (``dummy_chost`` -> ``<package>_chost``), so imports follow.
    """
    for old, renamed in (modules or {}).items():
        text = re.sub(rf"(?<![\w.]){re.escape(old)}(?!\w)", renamed, text)
    # The ID only where it is labelled as one: a bare number may mean anything.
    text = re.sub(rf"(?<![A-Za-z0-9_])(id[\"'`]?\s*[:=|]\s*){ref.id}(?![0-9])", rf"\g<1>{new.id}", text)
    if plugin_module:
        text = re.sub(
            rf"^(\s+name\s*=\s*[\"']){re.escape(ref.name)}([\"'])", rf"\g<1>{new.name}\g<2>", text, flags=re.M
        )
    text = re.sub(rf"(?<![\w-]){re.escape(ref.distribution)}(?![\w-])", new.distribution, text)
    if ref.source:
        text = re.sub(
            rf"((?<![A-Za-z0-9])source[\"'`]?\s*[:=|]\s*[\"'`]?){re.escape(ref.source)}(?![A-Za-z0-9_])",
            rf"\g<1>{new.source}",
            text,
        )

    words = {ref.package: new.package, ref.name: new.name}
    if ref.source and ref.source not in words:
        words[ref.source] = new.source

    def pick(m: re.Match[str]) -> str:
        word = m.group(0)
        if word == ref.package:
            before, after = text[: m.start()], text[m.end() :]
            if before.endswith("lib") and word == ref.name:
                return new.name  # lib<name>.so, lib<name>.site
            # a module path, or part of a longer identifier: only the package name is an identifier
            as_module = re.search(r"(?:\bimport|\bfrom|src/)\s*$", before) or re.match(r"(?:\.[A-Za-z_]|:|_)", after)
            if as_module or before.endswith("_") or word != ref.name:
                return new.package
        return words[word]

    pattern = "|".join(_word(w) for w in sorted(words, key=len, reverse=True))
    text = re.sub(pattern, pick, text)
    if ref.field_prefix and new.field_prefix and ref.fields:
        # only the declared field names: `dummy.library` may be a Python attribute
        suffixes = sorted((f.split(".", 1)[1] for f in ref.fields if "." in f), key=len, reverse=True)
        alternatives = "|".join(re.escape(x) for x in suffixes)
        text = re.sub(
            rf"(?<![\w.]){re.escape(ref.field_prefix)}\.({alternatives})(?![\w])", rf"{new.field_prefix}.\g<1>", text
        )
    if ref.folder and new.folder and ref.folder != new.folder:
        text = re.sub(rf"(?<![\w-])plugins/{re.escape(ref.folder)}(?![\w-])", f"plugins/{new.folder}", text)
    if ref.class_prefix and new.class_prefix:
        text = re.sub(rf"\b{re.escape(ref.class_prefix)}(?=[A-Z][A-Za-z0-9]*\b)", new.class_prefix, text)
    return text


def _rename(path: Path, ref: Identity, new: Identity) -> str:
    """File and folder names: identifiers, so the package form (``test_dummy.py`` -> ``test_<package>.py``)."""
    name = path.name
    for old in sorted({ref.package, ref.name, ref.folder} - {""}, key=len, reverse=True):
        name = re.sub(_word(old), new.package, name)
    return name


def _copy_project(reference: Path, dest: Path, ref: Identity, new: Identity, module: str) -> None:
    shutil.copytree(reference, dest, ignore=_IGNORE, dirs_exist_ok=True)
    modules: dict[str, str] = {}
    # deepest first, so renaming a folder never moves a path still to visit
    for path in sorted(dest.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        renamed = _rename(path, ref, new)
        if renamed != path.name:
            path.rename(path.with_name(renamed))
            if path.suffix == ".py" and path.stem not in (ref.package, ref.name):
                modules[path.stem] = Path(renamed).stem
    plugin_file = Path(*module.split(".")).with_suffix(".py")
    new_plugin_file = Path(new.package, *plugin_file.parts[1:])
    for path in dest.rglob("*"):
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary files are copied as they are
        is_module = path.relative_to(dest).parts[-len(new_plugin_file.parts) :] == new_plugin_file.parts
        out = rewrite(text, ref, new, plugin_module=is_module, modules=modules)
        if out != text:
            path.write_text(out, encoding="utf-8")


# -- the registry entry -------------------------------------------------------------------------


def _entry(data: dict[str, Any], ref: Identity, new: Identity, url: str, has_rules: bool) -> dict[str, Any]:
    template = next((e for e in plugin_entries(data) if e.get("name") == ref.name), None)
    entry: dict[str, Any] = copy.deepcopy(template) if template else {}
    old_url = str(entry.get("url", ""))
    entry["name"] = new.name
    entry.setdefault("description", f"{new.name} (created from {ref.name})")
    for key in ("authors", "contact", "license"):
        entry.setdefault(key, "TODO" if key != "license" else "Apache-2.0")
    if old_url and isinstance(entry.get("contact"), str):
        entry["contact"] = entry["contact"].replace(old_url, url)
    renamed = {ref.name: new.name, ref.folder: new.name}
    keywords = [renamed.get(k, k) for k in entry.get("keywords") or []] or [new.name]
    entry["keywords"] = list(dict.fromkeys(keywords))
    entry["url"] = url
    if has_rules:
        entry["rules_url"] = f"{url}/rules"
    else:
        entry.pop("rules_url", None)
    # ordered like the entries upstream writes
    order = ["name", "description", "authors", "contact", "maintainers", "keywords", "url", "rules_url", "license"]
    entry = {k: entry[k] for k in order if k in entry} | {k: v for k, v in entry.items() if k not in order}
    caps = entry.get("capabilities") if isinstance(entry.get("capabilities"), dict) else {}
    assert isinstance(caps, dict)
    caps = {c: dict(caps.get(c) or {"supported": False}) for c in CAPABILITIES}
    if caps["sourcing"].get("supported"):
        caps["sourcing"].update(id=new.id, source=new.source)
    entry.pop("capabilities", None)
    entry["capabilities"] = caps  # last, as upstream writes it
    return entry


def scaffold(
    reference: str | Path | None,
    name: str,
    *,
    dest: Path | None = None,
    plugin_id: int | None = None,
    source: str | None = None,
    registry: Path | None = None,
    register: bool | None = None,
) -> ScaffoldResult:
    """Create the project; see the module docs. Nothing is written if a check fails.

    ``reference``: a template name, a project path, or ``None`` for the default
    template. ``register``: ``None`` registers when a registry is found (or
    given), and creates the project in the current directory with the
    development ID otherwise."""
    ref_path, is_template = _reference_path(reference)
    reference = ref_path.resolve()
    ref, module = reference_identity(reference)
    registry = registry or find_registry(dest.parent if dest else Path.cwd())
    if register is None:
        register = registry is not None
    data: dict[str, Any] = {}
    if registry is not None:
        try:
            data = load_file(registry)
        except RegistryError as exc:
            raise ScaffoldError(str(exc)) from None
    elif register:
        raise ScaffoldError("no registry/plugins.yaml found: pass --registry FILE, or --no-register")
    if plugin_id is None:
        plugin_id = next_free_id(data) if register else DEVELOPMENT_ID
    if registry is not None and register:
        root = registry.parent.parent.resolve()
        dest = (dest or root / "plugins" / name).resolve()
    else:
        root = Path.cwd()
        dest = (dest or root / name).resolve()
    new = new_identity(name, ref, plugin_id=plugin_id, source=source, folder=dest.name)
    for e in plugin_entries(data):
        if e.get("name") == new.name:
            raise ScaffoldError(f"the registry already has a plugin named {new.name!r}")
        if ref.source and entry_id(e) == new.id:
            raise ScaffoldError(f"ID {new.id} is already registered to {e.get('name')}")
    if dest.exists() and any(dest.iterdir()):
        raise ScaffoldError(f"{dest} already exists and is not empty")
    url = None
    if register:
        try:
            url = dest.relative_to(root).as_posix()
        except ValueError:
            raise ScaffoldError(f"{dest} is outside the repository at {root}: pass --no-register") from None
    _copy_project(reference, dest, ref, new, module)
    if register and registry is not None and url is not None:
        has_rules = any((dest / "rules").glob("*.y*ml"))
        data.setdefault("plugins", []).append(_entry(data, ref, new, url, has_rules))
        save_file(registry, data)
    return ScaffoldResult(
        project=dest, identity=new, reference=ref, registry=registry if register else None, template=is_template
    )


# -- command line (falco-plugin new) ----------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("name", help="the new plugin's name (also its package, event source and field prefix)")
    parser.add_argument(
        "--from",
        dest="reference",
        metavar="TEMPLATE|PROJECT",
        help=f"a template ({', '.join(TEMPLATES)}; default {DEFAULT_TEMPLATE}) or a plugin project, e.g. plugins/dummy",
    )
    parser.add_argument(
        "--id",
        type=int,
        help=f"sourcing ID (default: the registry's lowest free one; outside one {DEVELOPMENT_ID}, for development)",
    )
    parser.add_argument("--source", help="event source (default: the name, with '-' as '_')")
    parser.add_argument(
        "--dest", type=Path, help="project directory (default: plugins/NAME in a repository with a registry, else NAME)"
    )
    parser.add_argument(
        "--registry", type=Path, help="registry file to add the entry to (default: the nearest registry/plugins.yaml)"
    )
    parser.add_argument("--no-register", action="store_true", help="do not add a registry entry")


def main(args: argparse.Namespace) -> int:
    try:
        result = scaffold(
            args.reference,
            args.name,
            dest=args.dest,
            plugin_id=args.id,
            source=args.source,
            registry=args.registry,
            register=False if args.no_register else None,
        )
    except ScaffoldError as exc:
        print(f"falco-plugin new: {exc}", file=sys.stderr)
        return 1
    new, ref = result.identity, result.reference
    origin = f"the {ref.folder} template" if result.template else f"{args.reference} ({ref.name})"
    print(f"created {result.project} from {origin}")
    print(
        f"  plugin {new.name}, id {new.id}, source {new.source}, package {new.package}, distribution {new.distribution}"
    )
    if result.registry:
        print(f"  registered in {result.registry}")
    elif new.id == DEVELOPMENT_ID and ref.source:
        print(
            f"  id {DEVELOPMENT_ID} is the development id (no registry here): ask the falcosecurity/plugins"
            " registry for one before publishing"
        )
    print("next:")
    for step in next_steps(result):
        print(f"  {step}")
    return 0


def next_steps(result: ScaffoldResult) -> list[str]:
    """The commands that build, try and test the new project, runnable as printed from here.

    The copied tests' conftest puts the project's ``src/`` on ``sys.path``, so
    the new package needs no ``pip install -e`` first; pytest is the SDK's
    ``test`` extra, installed by a step of its own when this environment lacks it."""
    steps = [f"cd {shlex.quote(_shown(result.project))}", "falco-plugin build ."]
    if result.template:  # a template runs with its defaults; a reference may need open parameters
        steps.append(f"falco-plugin run ./lib{result.identity.name}.so -n 5")
    if importlib.util.find_spec("pytest") is None:
        steps.append("pip install 'falco-plugin-sdk[test]'")
    steps.append("pytest tests")
    return steps


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when inside it (``plugins/counter``), else absolute."""
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()
