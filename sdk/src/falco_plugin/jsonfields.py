"""Fields declared by a JSON pointer, extracted in C without Python.

Most source plugins carry JSON records. A field that only reads one value of
the payload need not be a Python method: declare it as a class attribute of
the :class:`~falco_plugin.ExtractPlugin`, next to ordinary ``@field`` methods::

    class AuditPlugin(SourcePlugin, ExtractPlugin):
        verb = json_field("audit.verb", "/verb", str, "The request verb")
        code = json_field("audit.code", "/responseStatus/code", int, "The HTTP status")
        groups = json_field("audit.groups", "/user/groups", list[str], "The user's groups")
        value = json_field("audit.value", None, str, "Any value: audit.value[/user/name]")

The plugin library answers these fields in C, without taking the GIL: the
event payload is parsed once per event (with yyjson, compiled into the
library of a plugin that declares such a field), and every JSON field of
that event reads the same parsed document. ``pointer`` is an RFC 6901 JSON
pointer (``/a/b``, ``/items/0``, ``~1`` for ``/`` and ``~0`` for ``~`` in a
key); ``base`` is a pointer prefixed to it (``"/record"`` when the record
sits inside an envelope). With ``pointer=None`` the field takes its pointer
as its argument (``audit.value[/user/name]``), relative to ``base``.

Values, the same in every host:

=================  =========================================================
declared type      JSON value -> field value
=================  =========================================================
``str``            a string as is; a number, ``true``/``false``, an object or
                   an array as its compact JSON text (``42``, ``{"a":1}``; no
                   spaces, UTF-8 as is, control characters as ``\\u001F``)
``int`` (uint64)   an integer from 0 to 2**64-1; any other value: no value
``bool``           ``true``/``false``; any other value: no value
``list[str]``      an array: each element by the ``str`` rule, ``null``
                   elements left out; any other value: a one-element list
=================  =========================================================

A missing key, an index past the end, and JSON ``null`` give no value. A
payload that is not JSON (malformed, invalid UTF-8, a number beyond the range
of a double such as ``1e400``, ``NaN``) and a string holding a
NUL character (which a Falco string cannot carry) make the extraction fail
with a message naming the field and the reason; an invalid pointer argument
too. Deep nesting is no danger: the parser does not recurse. A payload of an
event other than a plugin event has no JSON fields' values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from ._internal.fieldattr import PROPERTIES

__all__ = ["JsonField", "json_field"]

JsonType = Literal["string", "uint64", "bool", "string_list"]

_TYPES: dict[Any, JsonType] = {str: "string", int: "uint64", bool: "bool", list[str]: "string_list"}


def _check_pointer(pointer: str, what: str) -> None:
    if pointer and not pointer.startswith("/"):
        raise ValueError(f"{what} {pointer!r} is not a JSON pointer: it must be empty or start with '/'")
    # RFC 6901: '~' is only ever followed by '0' or '1'.
    i = pointer.find("~")
    while i != -1:
        if pointer[i + 1 : i + 2] not in ("0", "1"):
            raise ValueError(f"{what} {pointer!r}: '~' must be followed by 0 or 1 (RFC 6901)")
        i = pointer.find("~", i + 1)
    if "\0" in pointer:
        raise ValueError(f"{what} {pointer!r} contains a NUL character")


class JsonField:
    """A field declared by :func:`json_field` (read by the SDK's builder)."""

    __slots__ = ("name", "pointer", "type", "description", "base", "display", "add_output", "properties")

    def __init__(
        self,
        name: str,
        pointer: str | None,
        type: JsonType,  # noqa: A002 - the field's type
        description: str,
        base: str,
        display: str | None,
        add_output: bool,
        properties: tuple[str, ...],
    ) -> None:
        self.name = name
        self.pointer = pointer
        """The pointer relative to :attr:`base`; None: the field's argument is the pointer."""
        self.type = type
        self.description = description
        self.base = base
        self.display = display
        self.add_output = add_output
        self.properties = properties

    def __repr__(self) -> str:
        return f"json_field({self.name!r}, {self.pointer!r}, {self.type!r}, base={self.base!r})"


def json_field(
    name: str,
    pointer: str | None,
    type: type[str] | type[int] | type[bool] | Any,  # noqa: A002 - mirrors field(type=...)
    description: str,
    *,
    base: str = "",
    display: str | None = None,
    add_output: bool = False,
    properties: Sequence[str] = (),
) -> JsonField:
    """Declare field ``name`` as the JSON value at ``base + pointer`` of the event payload.

    ``type`` is ``str``, ``int``, ``bool`` or ``list[str]`` (see the module's
    table for values of another JSON type). ``pointer=None`` makes the field
    take its pointer as argument (``name[/a/b]``, required)."""
    jtype = _TYPES.get(type)
    if jtype is None:
        raise ValueError(f"json field {name}: type must be str, int, bool or list[str], not {type!r}")
    _check_pointer(base, f"json field {name}: base")
    if pointer is not None:
        _check_pointer(pointer, f"json field {name}: pointer")
    bad = [p for p in properties if p not in PROPERTIES]
    if bad:
        raise ValueError(f"json field {name}: unknown properties {bad} (allowed: {', '.join(PROPERTIES)})")
    return JsonField(name, pointer, jtype, description, base, display, add_output, tuple(properties))
