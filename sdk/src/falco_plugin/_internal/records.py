"""Frozen records of the author API, without the start-up cost of dataclasses.

``@dataclass`` compiles the source of the methods it generates when the class
is created: about a millisecond per class, paid by every plugin library at
start-up for each one in the modules it imports. :func:`frozen_record` gives
a class with a hand-written ``__init__`` what ``@dataclass(frozen=True)``
would add, built without compiling anything: equality and hashing on the
fields, a ``Name(field=value, ...)`` repr (unless the class has its own),
``__match_args__``, and assignment or deletion of a field raising
:class:`dataclasses.FrozenInstanceError`. Type checkers see it as a frozen
dataclass (PEP 681). What it does not give is the ``dataclasses`` module's
view (``dataclasses.fields``, ``replace``, ``asdict``).

The fields are the class's ``__match_args__``, in order; ``__init__`` sets
them with ``object.__setattr__``.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any, TypeVar, dataclass_transform

__all__ = ["frozen_record"]

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def frozen_record(cls: type[T]) -> type[T]:
    """Make ``cls`` (which declares ``__match_args__``) a frozen record."""
    names: tuple[str, ...] = cls.__match_args__  # type: ignore[attr-defined]

    def values(obj: Any) -> tuple[Any, ...]:
        return tuple(getattr(obj, n) for n in names)

    def eq(self: Any, other: object) -> Any:  # bool, or NotImplemented
        if other.__class__ is self.__class__:
            return values(self) == values(other)
        return NotImplemented

    def hash_(self: Any) -> int:
        return hash(values(self))

    def repr_(self: Any) -> str:
        return f"{self.__class__.__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"

    def setattr_(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)  # type: ignore[arg-type]

    def delattr_(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)  # type: ignore[arg-type]

    methods: dict[str, Any] = {"__eq__": eq, "__hash__": hash_, "__setattr__": setattr_, "__delattr__": delattr_}
    if "__repr__" not in cls.__dict__:
        methods["__repr__"] = repr_
    for name, fn in methods.items():
        fn.__name__ = name
        fn.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, fn)
    return cls
