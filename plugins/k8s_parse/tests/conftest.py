"""The project's own package importable without ``pip install -e``.

A copy made by ``falco-plugin new --from plugins/k8s_parse`` is tested right
away, before it is installed; an installed copy is the same source. (The
fixtures are in ``k8sparse_fixtures``, loaded by each test module.)
"""

from __future__ import annotations

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))
