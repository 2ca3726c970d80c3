"""Turn a plugin project into ``lib<name>.so`` plus its Python site directory.

A plugin project is a Python project whose ``pyproject.toml`` names the
plugin class::

    [tool.falco-plugin]
    plugin = "dummy_py.plugin:DummyPlugin"

``build_plugin(project_dir)`` imports that class from the current
environment (the project must be installed in it), resolves its
declarations, and compiles the SDK's C glue with cffi's embedding mode into
``<project_dir>/lib<name>.so``.

How a built plugin finds Python
-------------------------------
Next to the library the builder writes ``lib<name>.site/``: a copy of the
plugin's package and of every distribution it depends on (of the SDK and
cffi only what runs, see ``falco_plugin_tools.build.sitedir``). At first use the library locates itself (``dladdr``),
puts that directory first on ``sys.path`` and imports the plugin from it, so
the pair can be copied anywhere together. The standard library comes from
the Python installation the library was built with: it links to that
``libpython3.X.so`` (with an rpath to its directory) and starts it with that
installation as its home. On a machine where the same Python version lives
elsewhere, set ``FALCO_PLUGIN_PYTHONHOME`` for Falco and make
``libpython3.X.so`` findable (``LD_LIBRARY_PATH`` or ``ldconfig``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import importlib.util
import os
import re
import shutil
import sys
import sysconfig
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from falco_plugin._internal.capabilities import c_string, implemented, implemented_features
from falco_plugin._internal.spec import PluginSpec, resolve
from falco_plugin._internal.version import GLUE_CONTRACT, SDK_VERSION
from falco_plugin.errors import SDKError
from falco_plugin_tools import abi
from falco_plugin_tools.build import standalone as standalone_mod
from falco_plugin_tools.build import yyjson
from falco_plugin_tools.build.sitedir import SiteDirError, installed_from, write_site_dir
from falco_plugin_tools.release import write_build_facts

__all__ = ["build_plugin", "BuildResult", "BuildError", "plugin_target"]

#: The C glue compiled into every plugin library (``common.c`` and one file per capability).
GLUE_DIR = Path(__file__).parent / "glue"


class BuildError(SDKError):
    """The project cannot be built (bad configuration, missing install, compiler error)."""


@dataclass(frozen=True)
class BuildResult:
    library: Path
    site_dir: Path
    spec: PluginSpec


def plugin_target(project_dir: Path) -> str:
    """The ``module:Class`` a project's ``pyproject.toml`` names."""
    pyproject = project_dir / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text())
    except FileNotFoundError:
        raise BuildError(f"{pyproject} not found") from None
    target = data.get("tool", {}).get("falco-plugin", {}).get("plugin")
    if not isinstance(target, str) or ":" not in target:
        raise BuildError(f'{pyproject}: set [tool.falco-plugin] plugin = "package.module:PluginClass"')
    return target


def _project_table(project_dir: Path) -> dict[str, object]:
    data = tomllib.loads((project_dir / "pyproject.toml").read_text())
    table = data.get("project", {})
    if not isinstance(table.get("name"), str):
        raise BuildError(f"{project_dir / 'pyproject.toml'}: [project] name is missing")
    return table  # type: ignore[no-any-return]


def _forget_other(top: str, source_root: Path) -> None:
    """Drop an already imported ``top`` package that lives elsewhere (another project of the same
    package name built earlier in this process), so the import below reads this project's code."""
    cached = sys.modules.get(top)
    if cached is None:
        return
    places = [Path(p) for p in getattr(cached, "__path__", [])] or [Path(str(getattr(cached, "__file__", "")))]
    if any(place.resolve().is_relative_to(source_root.resolve()) for place in places):
        return
    for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
        del sys.modules[name]


def _import_top_from(top: str, source_root: Path) -> None:
    """Import package (or module) ``top`` from ``source_root`` itself. A plain import would let a
    regular package of that name anywhere on sys.path win over a namespace package here (the
    import system's rule), and build another project's code."""
    if top in sys.modules:
        return
    spec = importlib.machinery.PathFinder.find_spec(top, [str(source_root)])
    if spec is None:
        return  # not there: the import below says what it finds, or fails naming the places
    module = importlib.util.module_from_spec(spec)
    sys.modules[top] = module
    try:
        if spec.loader is not None:
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[top]
        raise


def generated_header(spec: PluginSpec, module: str, target: str, *, standalone: bool = False) -> str:
    """The FP_* definitions the glue is compiled with: the common part, then
    each capability's own (:meth:`CapabilitySpec.c_defines`).

    A standalone library names its home relative to its own directory
    (``FP_PYTHON_HOME_RELATIVE``), and carries no path of the build machine."""
    minor = int(spec.required_api_version.split(".")[1])
    # Every glue unit: the capabilities, then the optional features (metrics).
    caps = " ".join(f"X({name})" for name in spec.units)
    d: list[str] = [
        "#define PLUGIN_ERRLEN 1024",
        f"#define FP_CAPABILITIES(X) {caps}",
        f"#define FP_MODULE {c_string(module)}",
        f"#define FP_TARGET {c_string(target)}",
        f"#define FP_BAKED {c_string(spec.baked())}",
        f"#define FP_SDK_VERSION {c_string(SDK_VERSION)}",
        f"#define FP_GLUE_CONTRACT {GLUE_CONTRACT}",
        (
            f"#define FP_PYTHON_HOME_RELATIVE {c_string(standalone_mod.HOME_DIR)}"
            if standalone
            else f"#define FP_PYTHON_HOME {c_string(sys.base_prefix)}"
        ),
        f"#define FP_NAME {c_string(spec.name)}",
        f"#define FP_VERSION {c_string(spec.version)}",
        f"#define FP_DESCRIPTION {c_string(spec.description)}",
        f"#define FP_CONTACT {c_string(spec.contact)}",
        f"#define FP_REQUIRED_API_VERSION {c_string(spec.required_api_version)}",
        f"#define FP_API_MINOR {minor}",
        f"#define FP_HAS_SET_CONFIG {int(spec.has_set_config)}",
    ]
    if spec.init_schema is not None:
        d.append(f"#define FP_INIT_SCHEMA {c_string(spec.init_schema)}")
    if spec.event_schema_version is not None:
        d.append(f"#define FP_EVENT_SCHEMA_VERSION {c_string(spec.event_schema_version)}")
    for cap in spec.units.values():
        d += cap.c_defines()
    return "\n".join(d) + "\n"


def cdef_glue() -> str:
    """The glue's own types the runtime reads through cffi (``fp_event_ref``)."""
    text = re.sub(r"/\*.*?\*/", "", (GLUE_DIR / "event_ref.h").read_text(), flags=re.S)
    return abi.strip_preprocessor(text)


def glue_source(spec: PluginSpec, module: str, target: str, *, standalone: bool = False) -> str:
    """The one translation unit of a plugin library: its definitions, the
    common glue, and the glue of each capability it has (and no other)."""
    impls = {impl.capability.name: impl for impl in (*implemented(), *implemented_features())}
    header = generated_header(spec, module, target, standalone=standalone)
    parts = [f'#include "{abi.HEADER.name}"', header, '#include "common.c"']
    parts += [f'#include "{impls[name].c_source}"' for name in spec.units]
    return "\n".join(parts) + "\n"


def _version_script(spec: PluginSpec) -> str:
    exported = "".join(f"    {s};\n" for s in spec.symbols())
    return "{\n  global:\n" + exported + "  local: *;\n};\n"


@dataclass(frozen=True)
class PluginProject:
    """A plugin project as the builders see it: its plugin class imported and resolved."""

    path: Path
    target: str
    dist_name: str
    dependencies: list[str]
    spec: PluginSpec
    imported: dict[str, list[Path]]
    """The plugin's top-level package -> where it was imported from: what ships (see write_site_dir)."""

    @property
    def module(self) -> str:
        """The name of the library's embedded cffi module."""
        return f"_falco_plugin_{self.spec.name.replace('-', '_')}"


def load_project(project_dir: str | Path) -> PluginProject:
    """Import the plugin class ``project_dir`` names (installed, or from its src or flat layout) and resolve it."""
    project = Path(project_dir).resolve()
    target = plugin_target(project)
    mod_name, _, cls_name = target.partition(":")
    table = _project_table(project)
    dist_name = str(table["name"])
    top_name = mod_name.split(".")[0]
    source_root = project / "src" if (project / "src").is_dir() else project
    installed = installed_from(dist_name, project)
    if installed is None:
        # Not installed (a fresh copy, a test fixture), or installed from another folder (this one is
        # a copy of that project): import it from this folder, src or flat layout.
        if str(source_root) not in sys.path:
            sys.path.insert(0, str(source_root))
        _forget_other(top_name, source_root)
    try:
        if installed is None:
            _import_top_from(top_name, source_root)
        cls = getattr(importlib.import_module(mod_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise BuildError(
            f"cannot import {target}: {exc} (looked in {project / 'src'} and {project}, and in this environment)"
        ) from exc
    top = sys.modules[top_name]
    places = [Path(p) for p in getattr(top, "__path__", [])] or [Path(str(top.__file__))]
    imported = {top.__name__: places}
    deps = [str(d) for d in table.get("dependencies", [])]  # type: ignore[attr-defined]
    return PluginProject(project, target, dist_name, deps, resolve(cls), imported)


def new_ffi() -> Any:
    """A cffi ``FFI`` with our plugin API declarations and the glue's types, in embedding mode."""
    import cffi  # a build-time dependency only

    ffi = cffi.FFI()
    ffi.cdef(abi.cdef_packed(), packed=True)
    ffi.cdef(abi.cdef_main())
    ffi.cdef(cdef_glue())
    # Embedding mode wants at least the (empty) API declaration and init code:
    # we drive start-up ourselves from the glue (see glue/common.c).
    ffi.embedding_api("")
    ffi.embedding_init_code("")
    return ffi


def include_dirs(spec: PluginSpec) -> list[Path]:
    """Where the glue's includes are: the ABI, the glue, and yyjson for a plugin with JSON fields
    (only such a plugin carries the parser)."""
    dirs = [abi.HERE, GLUE_DIR]
    if "json_fields" in spec.units:
        try:
            dirs.append(yyjson.source_dir())
        except yyjson.YyjsonError as exc:
            raise BuildError(f"{spec.name} declares JSON fields, which need yyjson: {exc}") from exc
    return dirs


def write_plugin_site_dir(project: PluginProject, site_dir: Path) -> None:
    """``lib<name>.site``: the plugin, its dependencies and the SDK runtime, with the notices of
    what the library carries compiled in (yyjson's, for JSON fields)."""
    try:
        write_site_dir(site_dir, project.dist_name, project.path, project.dependencies, imported=project.imported)
    except SiteDirError as exc:
        raise BuildError(str(exc)) from exc
    if "json_fields" in project.spec.units:
        yyjson.write_notice(site_dir, yyjson.source_dir())


def build_plugin(
    project_dir: str | Path, out_dir: str | Path | None = None, *, verbose: bool = False, standalone: bool = False
) -> BuildResult:
    """Compile the plugin project at ``project_dir``; see the module docs.

    ``standalone``: also write the shared interpreter home beside the library
    (:mod:`falco_plugin_tools.build.standalone`), so the output loads with no Python installed."""
    project = load_project(project_dir)
    out = Path(out_dir).resolve() if out_dir else project.path
    spec, module, target = project.spec, project.module, project.target
    ffi = new_ffi()
    source = glue_source(spec, module, target, standalone=standalone)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    # A standalone library finds the bundled libpython beside it, and carries no
    # debug information: DWARF records the build directories and include paths.
    rpath = f"$ORIGIN/{standalone_mod.HOME_DIR}/{standalone_mod.LIB}" if standalone else libdir
    debug = ["-g0"] if standalone else []
    out.mkdir(parents=True, exist_ok=True)
    library = out / f"lib{spec.name}.so"
    with tempfile.TemporaryDirectory(prefix="falco-plugin-build-") as tmp:
        script = Path(tmp) / "exports.map"
        script.write_text(_version_script(spec))
        ffi.set_source(
            module,
            source,
            include_dirs=[str(d) for d in include_dirs(spec)],
            extra_compile_args=["-O2", "-fvisibility=hidden", "-Wall", "-Wno-unused-function", *debug],
            extra_link_args=[
                f"-Wl,--version-script={script}",
                # Never unmapped by dlclose: Python and its threads outlive any handle.
                "-Wl,-z,nodelete",
                f"-Wl,-rpath,{rpath}",
            ],
            libraries=["dl", "pthread"],
        )
        try:
            built = ffi.compile(tmpdir=tmp, target=f"lib{spec.name}.so", verbose=verbose)
        except Exception as exc:
            raise BuildError(f"compiling {library.name} failed: {exc}") from exc
        tmp_lib = Path(built)
        staged = library.with_suffix(".so.tmp")
        shutil.copy2(tmp_lib, staged)
        os.replace(staged, library)  # atomic: a running host keeps its old mapping
    site_dir = out / f"lib{spec.name}.site"
    try:
        write_plugin_site_dir(project, site_dir)
    except BuildError:
        # no library without its site directory: a host would load it and fail at init
        library.unlink(missing_ok=True)
        raise
    if standalone:
        try:
            home = standalone_mod.bundle_interpreter(out)
            standalone_mod.fix_library(library)
            grafted = standalone_mod.fix_site_dir(site_dir, home)
            standalone_mod.write_plugin_metadata(site_dir, library, home, grafted)
        except standalone_mod.StandaloneError as exc:
            raise BuildError(f"--standalone: {exc}") from exc
    # The release's facts travel with the build (and so in its package): `falco-plugin release-check` reads them.
    write_build_facts(spec, site_dir, project.path)
    return BuildResult(library=library, site_dir=site_dir, spec=spec)


# -- command line (falco-plugin build) --------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("projects", nargs="+", type=Path, help="plugin project directories")
    parser.add_argument("--out", type=Path, help="output directory (default: each project directory)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the compiler commands")
    parser.add_argument(
        "--standalone",
        action="store_true",
        help=f"bundle the interpreter ({standalone_mod.HOME_DIR}/ beside the library): loads with no Python installed",
    )
    parser.add_argument(
        "--static-api",
        metavar="SYMBOL",
        help="build lib<name>.a for static linking instead: its one exported symbol is the plugin_api struct SYMBOL "
        "(one project at a time)",
    )


def main(args: argparse.Namespace) -> int:
    if args.static_api is not None:
        return _main_static(args)
    failed = 0
    for project in args.projects:
        try:
            result = build_plugin(project, args.out, verbose=args.verbose, standalone=args.standalone)
        except SDKError as exc:
            print(f"falco-plugin build: {project}: {exc}", file=sys.stderr)
            failed += 1
            continue
        caps = ", ".join(result.spec.capabilities)
        print(f"built {result.library} ({result.spec.name} {result.spec.version}: {caps})")
    return 1 if failed else 0


def _main_static(args: argparse.Namespace) -> int:
    from falco_plugin_tools.build.static import build_static_plugin

    if len(args.projects) != 1 or args.standalone:
        print("falco-plugin build: --static-api builds one project, without --standalone", file=sys.stderr)
        return 2
    try:
        result = build_static_plugin(args.projects[0], args.out, symbol=args.static_api, verbose=args.verbose)
    except SDKError as exc:
        print(f"falco-plugin build: {args.projects[0]}: {exc}", file=sys.stderr)
        return 1
    caps = ", ".join(result.spec.capabilities)
    print(
        f"built {result.archive} ({result.spec.name} {result.spec.version}: {caps}; plugin_api {result.symbol}); "
        f"link it with: {result.ldflags.read_text().strip()}"
    )
    return 0
