"""The patterns plugin identities must match (libsinsp's and the registry's rules), defined once."""

from __future__ import annotations

import re

NAME_RE = re.compile(r"^[a-z]+[a-z0-9-_]*$")
"""A plugin name."""
SOURCE_RE = re.compile(r"^[a-z]+[a-z0-9_]*$")
"""An event source name."""
VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
"""A semantic version."""

__all__ = ["NAME_RE", "SOURCE_RE", "VERSION_RE"]
