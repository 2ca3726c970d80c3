"""The source of yyjson, the C JSON parser compiled into plugins with JSON fields.

A plugin that declares :func:`falco_plugin.json_field` gets yyjson compiled
statically into its library (``build/glue/json_fields.c`` includes
``yyjson.c``): nothing to install on the machine that runs the plugin. Only the
build needs the source, two files. yyjson has no Debian package in this
release and no package of its own that ships the C files, but the ``yyjson``
package on PyPI (Python bindings, MIT) carries upstream's ``yyjson.c`` and
``yyjson.h`` in its source distribution; we take them from there, pinned by
version and checksum, through pip, the ordinary client.

Where the build looks, in order: ``$FALCO_PLUGIN_YYJSON_DIR`` (a directory
holding ``yyjson.c`` and ``yyjson.h``), then the cache
(``$XDG_CACHE_HOME/falco-plugin/yyjson-<version>``, ``~/.cache`` by default),
which is filled on first use by ``pip download``. ``python -m
falco_plugin_tools.build.yyjson`` fills it ahead (CI does, before the tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from falco_plugin.errors import SDKError

PYPI_PACKAGE = "yyjson"
PYPI_VERSION = "4.0.6"
"""The PyPI release whose source distribution we take the C files from (it holds yyjson 0.10.0)."""
SDIST_SHA256 = "fcd4dc15c1e39a30bf9fa85d56903029111506860fc3080ab0d81c6c6dacaa8c"
YYJSON_VERSION = "0.10.0"
FILES = ("yyjson.c", "yyjson.h")
ENV = "FALCO_PLUGIN_YYJSON_DIR"


class YyjsonError(SDKError):
    """The yyjson source cannot be found or fetched."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "falco-plugin" / f"yyjson-{YYJSON_VERSION}"


def _complete(d: Path) -> bool:
    return all((d / f).is_file() for f in FILES)


def source_dir(*, fetch: bool = True) -> Path:
    """The directory with ``yyjson.c`` and ``yyjson.h``; fetched into the cache if needed."""
    env = os.environ.get(ENV)
    if env:
        d = Path(env)
        if not _complete(d):
            raise YyjsonError(f"${ENV}={env} does not hold {' and '.join(FILES)}")
        return d
    d = cache_dir()
    if _complete(d):
        return d
    if not fetch:
        raise YyjsonError(f"the yyjson source is not in {d}")
    _fetch_into(d)
    return d


def _fetch_into(dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="falco-plugin-yyjson-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            tmp,
            f"{PYPI_PACKAGE}=={PYPI_VERSION}",
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise YyjsonError(f"cannot run pip to fetch the yyjson source: {exc} (or set ${ENV})") from exc
        sdist = Path(tmp) / f"{PYPI_PACKAGE}-{PYPI_VERSION}.tar.gz"
        if done.returncode != 0 or not sdist.is_file():
            raise YyjsonError(
                f"fetching the yyjson source ({PYPI_PACKAGE}=={PYPI_VERSION} from PyPI) failed: "
                f"{(done.stderr or done.stdout).strip()[-500:]} (or set ${ENV} to a directory with {FILES})"
            )
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        if digest != SDIST_SHA256:
            raise YyjsonError(f"{sdist.name} has sha256 {digest}, expected {SDIST_SHA256}")
        staging = Path(tmp) / "out"
        staging.mkdir()
        with tarfile.open(sdist) as tar:
            for name in (*FILES, "LICENSE"):
                inner = f"{PYPI_PACKAGE}-{PYPI_VERSION}/yyjson/{name}" if name != "LICENSE" else None
                member = tar.getmember(inner or f"{PYPI_PACKAGE}-{PYPI_VERSION}/LICENSE")
                src = tar.extractfile(member)
                if src is None:
                    raise YyjsonError(f"{sdist.name}: {member.name} is not a file")
                (staging / name).write_bytes(src.read())
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Atomic: a concurrent build sees the whole directory or none.
        final_tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
        for f in staging.iterdir():
            shutil.copy2(f, final_tmp / f.name)
        try:
            os.rename(final_tmp, dest)
        except OSError:
            shutil.rmtree(final_tmp, ignore_errors=True)
            if not _complete(dest):
                raise


#: Where a plugin's site directory keeps the notices of C code compiled into its library.
COMPILED_IN = "_licenses/compiled_in"


def write_notice(site_dir: Path, source: Path) -> Path:
    """Ship yyjson's licence with a plugin whose library carries it: MIT asks for its copyright and
    permission notice in every copy. The notice is the comment that opens ``yyjson.h`` (the PyPI
    package's own LICENSE names the bindings' author, not yyjson's). Beside it, ``component.json``
    says what the site's SBOM lists for it."""
    header = (source / "yyjson.h").read_text(encoding="utf-8")
    start, end = header.find("/*"), header.find("*/")
    notice = header[start + 2 : end].strip("=*\n ") if start == 0 and end > 0 else ""
    if "Copyright" not in notice or "Permission is hereby granted" not in notice:
        raise YyjsonError(f"{source / 'yyjson.h'} does not open with yyjson's copyright and MIT notice")
    folder = site_dir / COMPILED_IN / f"yyjson-{YYJSON_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [line.strip() for line in notice.splitlines()]
    (folder / "LICENSE").write_text("\n".join(lines).strip() + "\n", encoding="utf-8")
    component = {"name": "yyjson", "version": YYJSON_VERSION, "purl": f"pkg:github/ibireme/yyjson@{YYJSON_VERSION}"}
    (folder / "component.json").write_text(json.dumps({**component, "license": {"id": "MIT"}}) + "\n")
    return folder / "LICENSE"


if __name__ == "__main__":
    try:
        print(source_dir())
    except YyjsonError as exc:
        print(f"yyjson: {exc}", file=sys.stderr)
        sys.exit(1)
