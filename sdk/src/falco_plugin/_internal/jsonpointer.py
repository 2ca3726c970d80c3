"""RFC 6901 JSON pointers on decoded JSON, as json_field and json_records read them in Python.

``""`` is the whole document; ``/a/0`` walks object members and array indexes; ``~1`` stands for
``/`` and ``~0`` for ``~`` inside a token. The glue's C follows the same rules.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["pointer_error", "pointer_tokens", "resolve"]

_INDEX = re.compile(r"0|[1-9][0-9]*")
_BAD_TILDE = re.compile(r"~(?![01])")


def pointer_error(pointer: str) -> str | None:
    """Why ``pointer`` is not a JSON pointer, or None when it is one."""
    if pointer and not pointer.startswith("/"):
        return "it must be empty or start with '/'"
    if _BAD_TILDE.search(pointer):
        return "'~' must be followed by 0 or 1"
    return None


def pointer_tokens(pointer: str) -> tuple[str, ...]:
    """The reference tokens of a valid ``pointer``, unescaped (``~1`` before ``~0``: ``~01`` is ``~1``)."""
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:])


def resolve(doc: Any, tokens: tuple[str, ...]) -> tuple[bool, Any]:
    """``(True, value)`` at ``tokens`` in ``doc``, or ``(False, None)`` when they lead nowhere."""
    for token in tokens:
        if isinstance(doc, dict):
            if token not in doc:
                return False, None
            doc = doc[token]
        elif isinstance(doc, list):
            # decimal without leading zeros; "-" (past the end) never exists
            if not _INDEX.fullmatch(token) or int(token) >= len(doc):
                return False, None
            doc = doc[int(token)]
        else:
            return False, None
    return True, doc
