"""The annotations of a plugin's methods, resolved one at a time: an error names the one that fails.

``typing.get_type_hints`` resolves every annotation of a function or none: a typo in one
would make all of them unknown, and the SDK would take the method as unannotated.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

__all__ = ["EMPTY", "UnresolvedAnnotationError", "resolved_annotation"]

EMPTY: Any = inspect.Parameter.empty
"""What :func:`resolved_annotation` returns for a name without an annotation."""


class UnresolvedAnnotationError(Exception):
    """An annotation that does not evaluate; ``str()`` says which and why."""

    def __init__(self, name: str, raw: str, exc: Exception) -> None:
        what = "the return annotation" if name == "return" else f"the annotation of {name!r},"
        super().__init__(f"cannot resolve {what} {raw!r} ({exc})")


def resolved_annotation(func: Callable[..., Any], name: str) -> Any:
    """The annotation of parameter ``name`` (or ``"return"``) of ``func``, evaluated; :data:`EMPTY`
    without one. Raises :class:`UnresolvedAnnotationError` when that one does not evaluate, and
    only then (another parameter's broken annotation is not this one's problem)."""
    try:
        return typing.get_type_hints(func).get(name, EMPTY)
    except Exception:  # noqa: BLE001 - some annotation failed: find out whether it is this one
        pass
    raw = getattr(func, "__annotations__", {}).get(name, EMPTY)
    if not isinstance(raw, str):
        return raw
    try:
        return eval(raw, getattr(func, "__globals__", {}))
    except Exception as exc:  # noqa: BLE001 - a typo (NameError) or anything else it evaluates to
        raise UnresolvedAnnotationError(name, raw, exc) from None
