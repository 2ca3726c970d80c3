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

Numbers are written as they are spelled in the payload (``4.50``, ``1e400``,
integers of any size). A string escaping a lone UTF-16 surrogate
(``"\\ud800"``: valid JSON, but no UTF-8 text can hold it) gives the escape's
six characters as text. A missing key, an index past the end, and JSON
``null`` give no value. A payload that is not JSON (malformed, invalid UTF-8,
``NaN``) and a string holding a
NUL character (which a Falco string cannot carry) make the extraction fail
with a message naming the field and the reason; an invalid pointer argument
too. Deep nesting is no danger: the parser does not recurse. A payload of an
event other than a plugin event has no JSON fields' values.

Outside a plugin library (a unit test calling ``plugin.verb(event)``), a JSON
field is a method evaluated in Python by the same rules: it returns the value
(``str``, ``int``, ``bool``, ``list[str]``) or ``None``, and raises
:class:`~falco_plugin.PluginError` where the library fails the extraction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Literal

from ._internal.fieldattr import PROPERTIES
from ._internal.jsonpointer import pointer_error, pointer_tokens, resolve
from .errors import PluginError

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

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return self.bound

    def bound(self, event: Any, key: str | None = None) -> str | int | bool | list[str] | None:
        """The field's value for ``event`` (anything with a ``payload``), by the rules of the glue."""
        return self.extract(bytes(event.payload), key)

    def extract(self, payload: bytes, key: str | None = None) -> str | int | bool | list[str] | None:
        """The Python statement of what the library's glue answers (see the module's documentation)."""
        label = self.name if key is None else f"{self.name}[{key}]"
        pointer = self.pointer
        if pointer is None:
            if key is None:
                raise PluginError(f"this field requires a JSON pointer argument: {self.name}[/a/b]")
            bad = pointer_error(key)
            if bad:
                raise PluginError(f"invalid JSON pointer {key!r}: {bad}")
            pointer = key
        elif key is not None:
            raise PluginError(f"{label}: this field takes no argument")
        try:
            doc = json.loads(payload.decode("utf-8"), parse_int=_Raw, parse_float=_Raw, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise PluginError(f"the event payload is not valid JSON: {exc}") from None
        found, value = resolve(doc, pointer_tokens(self.base))
        if found:
            found, value = resolve(value, pointer_tokens(pointer))
        if not found or value is None:
            return None
        if self.type == "uint64":
            ok = isinstance(value, _Raw) and value.isdigit() and int(value) < 2**64
            return int(value) if ok else None
        if self.type == "bool":
            return value if isinstance(value, bool) else None
        if self.type == "string_list":
            items = [v for v in value if v is not None] if isinstance(value, list) else [value]
            return [_text(v) for v in items] or None
        return _text(value)


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


class _Raw(str):
    """A JSON number as spelled in the payload."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL_ESCAPE = re.compile(r"\\(u[0-9a-f]{4}|.)")


def _string(text: str) -> str:
    """A JSON string as the glue writes it: UTF-8 as is, control characters as upper-case \\u escapes."""
    return _CONTROL_ESCAPE.sub(_upper_hex, json.dumps(text, ensure_ascii=False))


def _upper_hex(m: re.Match[str]) -> str:
    escaped = m.group(1)
    return "\\u" + escaped[1:].upper() if len(escaped) == 5 else m.group(0)


def _unescaped(text: str) -> str:
    """Lone surrogates as their escapes' text (the JSON reader kept them as characters)."""
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def _write(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, _Raw):
        return str(value)
    if isinstance(value, str):
        return _string(_unescaped(value))
    if isinstance(value, list):
        return "[" + ",".join(_write(v) for v in value) + "]"
    return "{" + ",".join(_string(_unescaped(k)) + ":" + _write(v) for k, v in value.items()) + "}"


def _text(value: Any) -> str:
    text = _unescaped(value) if isinstance(value, str) and not isinstance(value, _Raw) else _write(value)
    if "\0" in text:
        at = text.index("\0")
        raise PluginError(
            f"the JSON string holds a NUL character (\\u0000) at offset {at}, which a Falco string field cannot carry"
        )
    return text
