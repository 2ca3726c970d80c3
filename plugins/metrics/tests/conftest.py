"""The project's own package importable without ``pip install -e``.

A copy made by ``falco-plugin new --from plugins/metrics`` is tested right
away, before it is installed; an installed copy is the same source. (The fake
/proc trees are in ``fakeproc``.)
"""

from __future__ import annotations

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
HERE = Path(__file__).resolve().parent
for path in (SRC, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
