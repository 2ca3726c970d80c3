"""JSON pointers (RFC 6901): how open params and fields address parts of a document.

``""`` is the whole document, ``"/data/0/id"`` walks object members and array
indexes; ``~1`` stands for ``/`` and ``~0`` for ``~`` inside a token.
"""

from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["Pointer", "PointerError", "MISSING"]

MISSING: Any = object()
"""What :meth:`Pointer.get` returns when the pointer leads nowhere."""

_INDEX = re.compile(r"^(0|[1-9][0-9]*)$")


class PointerError(ValueError):
    """The text is not a JSON pointer."""


class Pointer:
    """A parsed JSON pointer, reusable on any number of documents."""

    __slots__ = ("text", "tokens")

    def __init__(self, text: str) -> None:
        if text and not text.startswith("/"):
            raise PointerError(f"invalid JSON pointer {text!r}: it must be empty or start with '/'")
        if re.search(r"~[^01]|~$", text):
            raise PointerError(f"invalid JSON pointer {text!r}: '~' must be followed by 0 or 1")
        self.text = text
        # ~1 before ~0, so that "~01" means the token "~1" and not "/".
        self.tokens = tuple(t.replace("~1", "/").replace("~0", "~") for t in text.split("/")[1:])

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def cached(text: str) -> Pointer:
        """The parsed pointer for ``text``; fields parse each distinct argument once."""
        return Pointer(text)

    def get(self, doc: Any) -> Any:
        """The value the pointer designates in ``doc``, or :data:`MISSING`."""
        node = doc
        for token in self.tokens:
            if isinstance(node, dict):
                if token not in node:
                    return MISSING
                node = node[token]
            elif isinstance(node, list):
                # RFC 6901: decimal without leading zeros; "-" (past the end) never exists.
                if not _INDEX.match(token) or int(token) >= len(node):
                    return MISSING
                node = node[int(token)]
            else:
                return MISSING
        return node

    def __repr__(self) -> str:
        return f"Pointer({self.text!r})"
