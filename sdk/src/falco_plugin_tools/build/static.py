"""Statically linked plugins: ``lib<name>.a`` exporting one ``plugin_api`` struct.

An application that embeds libsinsp can link a plugin instead of loading it by path, and
register it with ``sinsp::register_plugin(const plugin_api*)``. For that the builder compiles
the same glue as for ``lib<name>.so`` into one object, adds a ``plugin_api`` struct (the layout
of plugin API 3.12, or of 3.9 for a plugin requiring an API older than 3.10: see
:func:`api_layout`) holding the entry points of the capabilities the class has (the others
``NULL``), and makes every symbol of the object local except that struct, whose name the author
picks. Nothing else is visible, so any number of plugins, each in its own archive under its own
struct name, link into one program without a clash.

The application links, besides the archive, the libpython the plugin was built with: shared, with
an rpath (:func:`link_flags`, written to ``lib<name>.ldflags`` beside the archive), or static
(:func:`static_link_flags`: the program then exports its symbols for extension modules).

There is no library path from which to find the plugin's Python packages, so at start-up the
plugin looks, in order, at the environment variable named in :func:`site_env` (set it before the
first ``init``), then at ``lib<name>.site`` in the directory of the program (or shared object)
that the archive was linked into. The builder writes ``lib<name>.site`` beside the archive: ship
it beside the program.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from falco_plugin._internal.capabilities import c_string
from falco_plugin._internal.spec import PluginSpec
from falco_plugin_tools.build import (
    BuildError,
    glue_source,
    include_dirs,
    load_project,
    new_ffi,
    write_plugin_site_dir,
)

__all__ = [
    "API_SLOTS",
    "StaticBuildResult",
    "api_layout",
    "build_static_plugin",
    "link_flags",
    "site_env",
    "static_link_flags",
]

API_SLOTS: tuple[str, ...] = (
    # common
    "get_required_api_version",
    "get_init_schema",
    "init",
    "destroy",
    "get_last_error",
    "get_name",
    "get_description",
    "get_contact",
    "get_version",
    # event sourcing
    "get_id",
    "get_event_source",
    "open",
    "close",
    "list_open_params",
    "get_progress",
    "event_to_string",
    "next_batch",
    # field extraction
    "get_extract_event_types",
    "get_extract_event_sources",
    "get_fields",
    "extract_fields",
    # event parsing
    "get_parse_event_types",
    "get_parse_event_sources",
    "parse_event",
    # async events
    "get_async_event_sources",
    "get_async_events",
    "set_async_event_handler",
    "dump_state",
    # since 3.x: configuration and metrics
    "set_config",
    "get_metrics",
    # capture listening
    "capture_open",
    "capture_close",
    # since 3.10
    "get_required_event_schema_version",
)
"""The members of plugin API 3.12's ``plugin_api`` struct, in order: every one a function
pointer (the capabilities' groups are anonymous structs of pointers, so the layout is flat)."""

DUMP_STATE_MINOR = 10
"""API 3.10 put ``dump_state`` in the middle of the struct; libsinsp reads the struct of a plugin
that requires an older 3.x in that older layout (it shifts the members after ``dump_state`` back
into place), so such a plugin's struct must not have the slot."""


def api_layout(minor: int) -> tuple[str, ...]:
    """The struct's slots for a plugin requiring API 3.``minor``, as libsinsp reads them: 3.12's,
    less ``dump_state`` before 3.10 (then one ``NULL`` pad keeps the size libsinsp copies)."""
    if minor >= DUMP_STATE_MINOR:
        return API_SLOTS
    return (*(slot for slot in API_SLOTS if slot != "dump_state"), "")


C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class StaticBuildResult:
    archive: Path
    """``lib<name>.a``: one object, one global symbol (``symbol``)."""
    site_dir: Path
    """``lib<name>.site``: the plugin's Python packages, to ship beside the program."""
    ldflags: Path
    """``lib<name>.ldflags``: what the program links besides the archive (one line)."""
    symbol: str
    spec: PluginSpec


def site_env(plugin_name: str) -> str:
    """The environment variable that names a statically linked plugin's site directory."""
    return "FALCO_PLUGIN_SITE_" + re.sub(r"[^A-Za-z0-9]", "_", plugin_name).upper()


def link_flags() -> list[str]:
    """What a program linking a plugin archive also links: this Python's shared libpython (with
    an rpath to its directory), and the system libraries the glue uses."""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    version = sysconfig.get_config_var("LDVERSION") or f"{sys.version_info.major}.{sys.version_info.minor}"
    return [f"-L{libdir}", f"-Wl,-rpath,{libdir}", f"-lpython{version}", "-ldl", "-lpthread", "-lm"]


def static_link_flags() -> list[str]:
    """The same with this Python's static libpython instead: the program exports its symbols, which
    the extension modules Python loads at run time resolve from it. Raises :class:`BuildError`
    when this installation has no ``libpython3.X.a``."""
    libpl = sysconfig.get_config_var("LIBPL") or ""
    archive = Path(libpl) / (sysconfig.get_config_var("LIBRARY") or "")
    if not archive.is_file():
        raise BuildError(f"this Python has no static libpython ({archive} not found)")
    libs = (sysconfig.get_config_var("LIBS") or "").split() + (sysconfig.get_config_var("SYSLIBS") or "").split()
    return ["-Wl,--export-dynamic", str(archive), *libs]


def api_struct(spec: PluginSpec, symbol: str) -> str:
    """C text of the exported struct: each slot the plugin's entry point, or NULL."""
    present = set(spec.symbols())
    layout = api_layout(int(spec.required_api_version.split(".")[1]))
    slots = [f"plugin_{slot}" if f"plugin_{slot}" in present else "0" for slot in layout]
    unknown = present - {f"plugin_{slot}" for slot in layout if slot}
    if unknown:
        raise BuildError(
            f"no plugin_api slot for {', '.join(sorted(unknown))} in the layout of API {spec.required_api_version}"
        )
    body = "".join(f"    (fp_api_fn){s},\n" for s in slots)
    return (
        "\n/* The plugin_api struct of a statically linked plugin (see falco_plugin_tools.build.static). */\n"
        "typedef void (*fp_api_fn)(void);\n"
        f"typedef struct {{ fp_api_fn slot[{len(layout)}]; }} fp_plugin_api;\n"
        f'__attribute__((visibility("default"))) const fp_plugin_api {symbol} = {{{{\n{body}}}}};\n'
    )


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BuildError(f"{name} not found (binutils): it builds static plugin archives")
    return found


def build_static_plugin(
    project_dir: str | Path, out_dir: str | Path | None = None, *, symbol: str, verbose: bool = False
) -> StaticBuildResult:
    """Compile the plugin project at ``project_dir`` into ``lib<name>.a`` exporting only the
    ``plugin_api`` struct ``symbol``, plus ``lib<name>.site`` and ``lib<name>.ldflags``."""
    if not C_IDENTIFIER.match(symbol):
        raise BuildError(f"the plugin_api symbol must be a C identifier, got {symbol!r}")
    project = load_project(project_dir)
    out = Path(out_dir).resolve() if out_dir else project.path
    spec, module, target = project.spec, project.module, project.target
    ffi = new_ffi()
    defines = (
        f"#define FP_STATIC_API {symbol}\n"
        f"#define FP_SITE_ENV {c_string(site_env(spec.name))}\n"
        f"#define FP_SITE_NAME {c_string(f'lib{spec.name}.site')}\n"
    )
    ffi.set_source(module, defines + glue_source(spec, module, target) + api_struct(spec, symbol))
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"lib{spec.name}.a"
    cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
    with tempfile.TemporaryDirectory(prefix="falco-plugin-static-") as tmp:
        c_file = Path(tmp) / f"{module}.c"
        with contextlib.redirect_stdout(sys.stdout if verbose else io.StringIO()):  # cffi says "generating"
            ffi.emit_c_code(str(c_file))
        obj = Path(tmp) / f"{module}.o"
        compile_cmd = [
            cc,
            "-c",
            "-O2",
            "-fPIC",
            "-fvisibility=hidden",
            "-Wall",
            "-Wno-unused-function",
            f"-I{sysconfig.get_paths()['include']}",
            *(f"-I{d}" for d in include_dirs(spec)),
            c_file.name,  # relative, run in tmp: no temporary path in the object, so a rebuild is identical
            "-o",
            obj.name,
        ]
        # Every other symbol becomes local: the plugin_* functions, cffi's module init, the glue's.
        localize = [_tool("objcopy"), f"--keep-global-symbol={symbol}", str(obj)]
        staged = archive.with_suffix(".a.tmp")
        staged.unlink(missing_ok=True)
        pack = [_tool("ar"), "rcs", str(staged), str(obj)]
        for command in (compile_cmd, localize, pack):
            if verbose:
                print(shlex.join(command))
            proc = subprocess.run(command, capture_output=True, text=True, check=False, cwd=tmp)
            if proc.returncode != 0:
                raise BuildError(f"building {archive.name} failed: {shlex.join(command)}\n{proc.stderr}")
        os.replace(staged, archive)
    site_dir = out / f"lib{spec.name}.site"
    write_plugin_site_dir(project, site_dir)
    ldflags = out / f"lib{spec.name}.ldflags"
    ldflags.write_text(shlex.join(link_flags()) + "\n")
    return StaticBuildResult(archive=archive, site_dir=site_dir, ldflags=ldflags, symbol=symbol, spec=spec)
