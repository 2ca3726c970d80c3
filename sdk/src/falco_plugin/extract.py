"""Field extraction: fields are methods, declared where they are computed.

Decorate a method of an :class:`ExtractPlugin` with :func:`field`. The
method receives the :class:`~falco_plugin.Event` and returns the value; its
return annotation gives the field type::

    @field("dummy.value", "The sample value in the event")
    def value(self, event: Event) -> int: ...

============================  =========
annotation                    type
============================  =========
``int``                       uint64
``str`` (or UTF-8 ``bytes``)  string
``bool``                      bool
``RelTime`` / ``AbsTime``     reltime / abstime (ns)
``IPAddr``                    ipaddr
``IPNet``                     ipnet
``list[...]`` of the above    a list field
``... | None``                may have no value (return None)
============================  =========

A field takes an argument when the method has a second parameter named
``index`` (``field[3]``, an ``int``) or ``key`` (``field[name]``, a
``str``); with a default (``index: int | None = None``) the argument is
optional. Return :class:`Located` to also tell where in the payload the
value comes from (plugin API value offsets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple, NewType, TypeVar

from ._internal.fieldattr import FIELD_ATTR, PROPERTIES
from .plugin import Plugin

__all__ = [
    "ExtractPlugin",
    "field",
    "Located",
    "RelTime",
    "AbsTime",
    "IPAddr",
    "IPNet",
    "FieldType",
]

RelTime = NewType("RelTime", int)
"""A duration in nanoseconds."""
AbsTime = NewType("AbsTime", int)
"""A point in time, in nanoseconds since the epoch."""
if TYPE_CHECKING:
    import ipaddress

    IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
    IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
else:
    # IPAddr and IPNet are made on first use: importing ipaddress is about
    # 1.5 ms of every plugin library's start-up, for the few plugins with
    # address fields. (Until then no annotation can name its classes, which
    # is what _internal/fields.py relies on.)
    def __getattr__(name: str) -> Any:
        if name not in ("IPAddr", "IPNet"):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        import ipaddress

        value = (
            ipaddress.IPv4Address | ipaddress.IPv6Address
            if name == "IPAddr"
            else ipaddress.IPv4Network | ipaddress.IPv6Network
        )
        globals()[name] = value
        return value


FieldType = Literal["string", "uint64", "bool", "reltime", "abstime", "ipaddr", "ipnet"]


class Located(NamedTuple):
    """A field value with the byte range of the payload it was read from."""

    value: Any
    start: int
    length: int


F = TypeVar("F", bound=Callable[..., Any])


def field(
    name: str,
    description: str,
    *,
    type: FieldType | None = None,  # noqa: A002 - mirrors the JSON key
    display: str | None = None,
    add_output: bool = False,
    properties: Sequence[str] = (),
) -> Callable[[F], F]:
    """Declare the decorated method as the extractor of field ``name``.

    ``type`` overrides the type inferred from the return annotation (needed
    only for unannotated methods). ``add_output`` asks Falco to add the field
    to rule outputs; ``properties`` may hold ``"hidden"``, ``"info"``,
    ``"conversation"``.
    """
    bad = [p for p in properties if p not in PROPERTIES]
    if bad:
        raise ValueError(f"field {name}: unknown properties {bad} (allowed: {', '.join(PROPERTIES)})")

    def decorate(fn: F) -> F:
        setattr(fn, FIELD_ATTR, (name, description, type, display, add_output, tuple(properties)))
        return fn

    return decorate


class ExtractPlugin(Plugin):
    """A plugin that extracts fields from events."""

    extract_event_sources: ClassVar[Sequence[str] | None] = None
    """Event sources the fields apply to. Default: the plugin's own source
    for a source plugin, every source otherwise."""
    extract_event_types: ClassVar[Sequence[int] | None] = None
    """Event type codes the fields apply to. Default: all of them."""
