"""Field declarations resolved from a plugin class (what ``get_fields`` says).

Private to the SDK: plugin authors declare fields with
:func:`falco_plugin.field`; the builder and the runtime read them from here.
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from ..errors import SpecError
from ..extract import AbsTime, FieldType, Located, RelTime
from ..jsonfields import JsonField
from .fieldattr import FIELD_ATTR
from .hints import UnresolvedAnnotationError, resolved_annotation

__all__ = ["TYPE_CODES", "FieldSpec", "fields_of"]

TYPE_CODES: dict[str, int] = {
    "uint64": 8,
    "string": 9,
    "reltime": 20,
    "abstime": 21,
    "bool": 25,
    "ipaddr": 40,
    "ipnet": 41,
}


#: What a field's return annotation may be, for the build errors that reject one.
SUPPORTED_TYPES = (
    "supported return types: int (uint64), bool, str or bytes (string), RelTime, AbsTime, "
    "IPAddr (ipaddr), IPNet (ipnet), list[T] of one of these, T | None; or pass type=... to @field"
)


class FieldSpec:
    """Everything the host learns about one field (``get_fields``).

    A plain class rather than a dataclass: a dataclass compiles its methods
    when the module is imported, which every plugin library does at start-up.
    """

    __slots__ = (
        "name",
        "description",
        "type",
        "is_list",
        "arg",
        "arg_required",
        "display",
        "add_output",
        "properties",
        "method",
        "located",
        "json",
    )

    def __init__(
        self,
        name: str,
        description: str,
        type: FieldType,  # noqa: A002 - the field type, as get_fields names it
        is_list: bool,
        arg: Literal["index", "key"] | None,
        arg_required: bool,
        display: str | None,
        add_output: bool,
        properties: tuple[str, ...],
        method: str,
        located: bool = False,
        json: JsonField | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.type = type
        self.is_list = is_list
        self.arg = arg
        self.arg_required = arg_required
        self.display = display
        self.add_output = add_output
        self.properties = properties
        self.method = method
        self.located = located
        """The extractor may return :class:`Located` (needs plugin API 3.12)."""
        self.json = json
        """The declaration of a field extracted in C by JSON pointer (no method then)."""

    def __repr__(self) -> str:
        return f"FieldSpec({self.name!r}, type={self.type!r}, method={self.method!r})"

    def to_json(self) -> dict[str, Any]:
        """The entry of the ``get_fields`` JSON array for this field."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "desc": self.description}
        if self.is_list:
            out["isList"] = True
        if self.arg:
            out["arg"] = {"isRequired": self.arg_required, "isIndex": self.arg == "index", "isKey": self.arg == "key"}
        if self.display:
            out["display"] = self.display
        if self.add_output:
            out["addOutput"] = True
        if self.properties:
            out["properties"] = list(self.properties)
        return out


def fields_of(cls: type) -> list[FieldSpec]:
    """The fields declared on a plugin class (base classes first, in order)."""
    seen: dict[str, FieldSpec] = {}
    for klass in reversed(cls.__mro__):
        own: dict[str, str] = {}  # a subclass may override a field; one class may not declare it twice
        for attr, fn in vars(klass).items():
            if isinstance(fn, JsonField):
                spec = _json_spec(attr, fn)
            else:
                decl = getattr(fn, FIELD_ATTR, None)
                if decl is None:
                    continue
                spec = _spec(cls, attr, fn, *decl)
            if spec.name in own:
                raise SpecError(
                    f"{klass.__qualname__}: field {spec.name} is declared twice ({own[spec.name]} and {attr})"
                )
            own[spec.name] = attr
            seen.pop(spec.name, None)
            seen[spec.name] = spec
    return list(seen.values())


def _json_spec(attr: str, decl: JsonField) -> FieldSpec:
    return FieldSpec(
        name=decl.name,
        description=decl.description,
        type="string" if decl.type == "string_list" else decl.type,
        is_list=decl.type == "string_list",
        arg="key" if decl.pointer is None else None,
        arg_required=decl.pointer is None,
        display=decl.display,
        add_output=decl.add_output,
        properties=decl.properties,
        method=attr,
        json=decl,
    )


def _spec(
    cls: type,
    attr: str,
    fn: Callable[..., Any],
    name: str,
    description: str,
    type_: FieldType | None,
    display: str | None,
    add_output: bool,
    properties: tuple[str, ...],
) -> FieldSpec:
    where = f"{cls.__name__}.{attr} (field {name})"
    params = list(inspect.signature(fn).parameters.values())[1:]  # drop self
    if not params:
        raise SpecError(f"{where}: an extractor takes the event as its first argument")
    arg: Literal["index", "key"] | None = None
    arg_required = False
    if len(params) > 2:
        raise SpecError(f"{where}: an extractor takes (event) or (event, index) or (event, key)")
    if len(params) == 2:
        if params[1].name not in ("index", "key"):
            raise SpecError(f"{where}: the argument parameter must be named 'index' or 'key', not {params[1].name!r}")
        arg = "index" if params[1].name == "index" else "key"
        arg_required = params[1].default is inspect.Parameter.empty
    try:
        ret = resolved_annotation(fn, "return")
    except UnresolvedAnnotationError as exc:
        raise SpecError(f"{where}: {exc}; {SUPPORTED_TYPES}") from None
    inferred, is_list = _infer(ret, where)
    located = _mentions_located(ret)
    ftype = type_ or inferred
    if ftype is None:
        raise SpecError(f"{where}: annotate the return type or pass type=...")
    if ftype not in TYPE_CODES:
        raise SpecError(f"{where}: unknown field type {ftype!r}")
    return FieldSpec(
        name=name,
        description=description,
        type=ftype,
        is_list=is_list,
        arg=arg,
        arg_required=arg_required,
        display=display,
        add_output=add_output,
        properties=properties,
        method=attr,
        located=located,
    )


def _mentions_located(tp: Any) -> bool:
    if tp is Located:
        return True
    return any(_mentions_located(a) for a in typing.get_args(tp))


def _infer(tp: Any, where: str) -> tuple[FieldType | None, bool]:
    if tp is inspect.Signature.empty:
        return None, False
    if tp is Located:
        return None, False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = set(typing.get_args(tp)) - {type(None), Located}
        ip = _ip_type(args)
        if ip is not None:
            return ip, False
        if len(args) == 1:
            return _infer(args.pop(), where)
        raise SpecError(f"{where}: cannot infer a field type from {tp!r}; {SUPPORTED_TYPES}")
    if origin in (list, Sequence, tuple):
        items = typing.get_args(tp)
        inner, nested = _infer(items[0], where) if items else (None, False)
        if nested:
            raise SpecError(f"{where}: lists of lists are not a field type")
        return inner, True
    if tp is RelTime:
        return "reltime", False
    if tp is AbsTime:
        return "abstime", False
    if tp is bool:
        return "bool", False
    if tp is int:
        return "uint64", False
    if tp in (str, bytes):
        return "string", False
    ip = _ip_type([tp])
    if ip is not None:
        return ip, False
    raise SpecError(f"{where}: cannot infer a field type from {tp!r}; {SUPPORTED_TYPES}")


def _ip_type(candidates: Iterable[Any]) -> FieldType | None:
    """``ipaddr``/``ipnet`` when every candidate is a class of addresses / of networks."""
    # An annotation cannot name a class of ipaddress before that module is
    # imported (falco_plugin.IPAddr imports it), and a plugin without address
    # fields never has to import it.
    found = list(candidates)
    if "ipaddress" not in sys.modules or not found:
        return None
    import ipaddress as ip  # not sys.modules': another thread may be importing it still

    if all(tp in (ip.IPv4Address, ip.IPv6Address) for tp in found):
        return "ipaddr"
    if all(tp in (ip.IPv4Network, ip.IPv6Network) for tp in found):
        return "ipnet"
    return None
