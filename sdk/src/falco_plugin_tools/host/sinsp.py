"""The libsinsp host program (``sinsphost.cpp``): the SDK's host built on real libsinsp.

It links the static libsinsp and libscap of a Falco build (a folder holding ``include/``,
``lib/`` and ``flags.sh``, as ``shared/realhost/libsinsp`` beside the repository does) and
drives a plugin through libsinsp's own API: loader, init-config validation, source engine,
filterchecks, metrics and state tables. Its usage and JSON-lines output are at the top of
``sinsphost.cpp``; :class:`~falco_plugin_tools.host.runners.SinspHost` runs it for tests.

Compiling it takes a while on a small machine, so a build is kept in a cache directory under a
name made of the hash of everything that goes into it (the source, the flags, the sizes and times
of libsinsp's archives, the plugin archives linked in) and reused until one of those changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["SOURCE", "SinspUnavailableError", "compile_sinsphost", "find_sinsp_dir", "sinsp_build_flags"]

SOURCE = Path(__file__).with_name("sinsphost.cpp")
ENV_DIR = "FALCO_PLUGIN_SINSP_DIR"
"""Environment variable naming the libsinsp folder (``include/``, ``lib/``, ``flags.sh``)."""
ENV_CACHE = "FALCO_PLUGIN_SINSP_CACHE"
"""Environment variable naming the cache directory of compiled hosts (default: under the temp dir)."""


class SinspUnavailableError(Exception):
    """The libsinsp host cannot be built here; the message says why (for a test's skip reason)."""


def find_sinsp_dir(start: Path | None = None) -> Path:
    """The libsinsp folder: ``$FALCO_PLUGIN_SINSP_DIR``, else ``shared/realhost/libsinsp`` beside
    ``start`` or one of its parents (a checkout sits beside ``shared/``)."""
    if os.environ.get(ENV_DIR):
        found = Path(os.environ[ENV_DIR])
        if not (found / "flags.sh").is_file():
            raise SinspUnavailableError(f"{ENV_DIR}={found} has no flags.sh")
        return found
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "shared" / "realhost" / "libsinsp"
        if (candidate / "flags.sh").is_file():
            return candidate
    raise SinspUnavailableError(
        f"no libsinsp to link against (set {ENV_DIR} or put shared/realhost/libsinsp beside {here})"
    )


def sinsp_build_flags(sinsp_dir: Path) -> tuple[list[str], list[str]]:
    """The compiler flags and the link libraries that ``flags.sh`` in ``sinsp_dir`` sets, split into
    arguments the way ``eval g++ $SINSP_CXXFLAGS ... $SINSP_LDLIBS`` would split them."""
    script = (
        '. "$1/flags.sh" && eval "set -- $SINSP_CXXFLAGS" && printf "%s\\n" "$@" && echo "--" && '
        'eval "set -- $SINSP_LDLIBS" && printf "%s\\n" "$@"'
    )
    proc = subprocess.run(["bash", "-c", script, "_", str(sinsp_dir)], capture_output=True, text=True, check=False)
    words = proc.stdout.splitlines()
    if proc.returncode != 0 or "--" not in words:
        raise SinspUnavailableError(
            f"{sinsp_dir}/flags.sh did not set SINSP_CXXFLAGS and SINSP_LDLIBS: {proc.stderr.strip()}"
        )
    split = words.index("--")
    return words[:split], words[split + 1 :]


def _fingerprint(
    sinsp_dir: Path, compiler: str, cxxflags: Sequence[str], ldlibs: Sequence[str], inputs: Sequence[Path]
) -> str:
    digest = hashlib.sha256()
    for part in (compiler, *cxxflags, *ldlibs):
        digest.update(part.encode() + b"\0")
    for path in inputs:
        digest.update(Path(path).read_bytes())
    for archive in sorted((sinsp_dir / "lib").glob("*.a")):
        stat = archive.stat()
        digest.update(f"{archive.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def default_cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path(tempfile.gettempdir()) / "falco-plugin-tools-cache")


def compile_sinsphost(
    sinsp_dir: Path | None = None,
    *,
    cache_dir: Path | None = None,
    source: Path = SOURCE,
    archives: Sequence[Path] = (),
    export_archives: bool = True,
    extra_ldflags: Sequence[str] = (),
    name: str = "falco-plugin-sinsphost",
) -> Path:
    """Compile the libsinsp host (or another program ``source`` linking libsinsp) and return its
    path, reusing a cached build of the same inputs. ``archives`` are statically linked plugins
    (:mod:`falco_plugin_tools.build.static`); with ``export_archives`` they are linked whole and the
    program exports its symbols, so that the host's ``--struct`` finds their ``plugin_api`` structs
    by name (a program that names the structs in its code needs neither). ``extra_ldflags`` follow
    them (e.g. the archives' libpython)."""
    folder = sinsp_dir or find_sinsp_dir()
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise SinspUnavailableError("no C++ compiler (install g++: shared/realhost/libsinsp/install-dev)")
    cxxflags, ldlibs = sinsp_build_flags(folder)
    linked = [*map(str, archives)]
    if archives and export_archives:
        linked = ["-rdynamic", "-Wl,--whole-archive", *linked, "-Wl,--no-whole-archive"]
    linked += extra_ldflags
    key = _fingerprint(folder, compiler, cxxflags, [*ldlibs, *linked], [source, *archives])
    out = (cache_dir or default_cache_dir()) / f"{name}-{key}" / name
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # Build under a private name, then rename: parallel test workers never see half a binary.
    partial = out.with_name(f".{name}.{os.getpid()}")
    command = [compiler, *cxxflags, "-Wall", str(source), "-o", str(partial), *linked, *ldlibs]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        missing = [line for line in proc.stderr.splitlines() if "No such file or directory" in line]
        if missing:  # a missing header: the -dev packages are not installed
            raise SinspUnavailableError(
                f"cannot compile against libsinsp ({missing[0].strip()}): run {folder}/install-dev and install "
                "uthash-dev"
            )
        raise RuntimeError(f"compiling {source.name} against libsinsp failed:\n{proc.stderr}")
    os.replace(partial, out)
    return out
