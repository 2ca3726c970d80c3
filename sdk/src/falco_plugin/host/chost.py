"""The C host program (``chost.c``): compile it with the system C compiler.

It loads a plugin from a plain, non-Python process, as Falco does; tests use
it for the cold-start path and the benchmark for timing hot paths from C.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("chost.c")
ABI_DIR = Path(__file__).parent.parent / "_glue"


def compile_chost(dest_dir: Path, cc: str | None = None) -> Path:
    """Compile ``falco-plugin-chost`` into ``dest_dir`` and return its path."""
    compiler = cc or os.environ.get("CC") or shutil.which("cc") or "gcc"
    out = Path(dest_dir) / "falco-plugin-chost"
    subprocess.run(
        [compiler, "-O2", "-Wall", "-I", str(ABI_DIR), str(SOURCE), "-o", str(out), "-ldl"],
        check=True,
    )
    return out
