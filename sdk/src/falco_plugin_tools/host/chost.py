"""The C host program (``chost.c``): compile it with the system C compiler.

It loads plugins from a plain, non-Python process, as Falco does: one library,
or several in one process (``--lib``), read in turn or on one thread each
(``--threads``). Tests use it for the cold-start path and multi-plugin
processes, the benchmark for timing hot paths from C; its usage is at the top
of ``chost.c``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("chost.c")
ABI_DIR = Path(__file__).parent.parent / "abi"


def compile_chost(dest_dir: Path, cc: str | None = None) -> Path:
    """Compile ``falco-plugin-chost`` into ``dest_dir`` and return its path."""
    compiler = cc or os.environ.get("CC") or shutil.which("cc") or "gcc"
    out = Path(dest_dir) / "falco-plugin-chost"
    subprocess.run(
        [compiler, "-O2", "-Wall", "-I", str(ABI_DIR), str(SOURCE), "-o", str(out), "-ldl", "-pthread"],
        check=True,
    )
    return out
