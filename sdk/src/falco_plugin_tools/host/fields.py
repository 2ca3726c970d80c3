"""A plugin's fields: the ``get_fields`` JSON checked the way libsinsp checks
it at load time, and field expressions (``name[arg]``) parsed the way its
filter checks parse them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from falco_plugin._internal.fields import TYPE_CODES
from falco_plugin_tools.host.errors import FieldExpressionError, HostError

__all__ = ["FieldInfo", "FieldRequest", "parse_fields_json", "parse_field_expression", "EPF_IS_LIST"]

# libsinsp's field flag for list fields; it is what sinsp puts in
# ss_plugin_extract_field.flist (the raw bit, not 1).
EPF_IS_LIST = 1 << 6
U64_MAX = 2**64 - 1
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class FieldInfo:
    """One entry of ``get_fields``; ``id`` is its position (the ``field_id`` sent to the plugin)."""

    id: int
    name: str
    type: str
    desc: str
    display: str = ""
    is_list: bool = False
    arg_required: bool = False
    is_index: bool = False
    is_key: bool = False
    add_output: bool = False
    properties: tuple[str, ...] = ()

    @property
    def ftype(self) -> int:
        """The ``ss_plugin_field_type`` code of :attr:`type`."""
        return TYPE_CODES[self.type]

    @property
    def arg_allowed(self) -> bool:
        return self.is_index or self.is_key

    def arg_summary(self) -> str:
        """How the field takes an argument, for people: ``""``, ``"index"``, ``"key, required"``..."""
        kinds = [k for k, on in (("index", self.is_index), ("key", self.is_key)) if on]
        if not kinds:
            return ""
        return " or ".join(kinds) + (", required" if self.arg_required else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "desc": self.desc,
            "display": self.display,
            "isList": self.is_list,
            "arg": {"isRequired": self.arg_required, "isIndex": self.is_index, "isKey": self.is_key},
            "addOutput": self.add_output,
            "properties": list(self.properties),
        }


class NotAJsonString(Exception):  # noqa: N818 - internal signal
    pass


def as_json_string(value: Any) -> str:
    """jsoncpp's ``asString()``: null is "", scalars convert, containers cannot."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    raise NotAJsonString


def parse_fields_json(plugin: str, text: str | None) -> list[FieldInfo]:
    """Check a ``get_fields`` result like libsinsp and return the fields.

    On top of libsinsp's rules an empty list is rejected: newer libsinsp
    refuses an extraction plugin without fields, and so does the SDK.
    """
    where = f"error in plugin {plugin}"
    if text is None:
        raise HostError(f"{where}: get_fields returned a null string")
    try:
        root = json.loads(text)
    except ValueError:
        root = None
    if not isinstance(root, list):
        raise HostError(f"{where}: get_fields returned an invalid JSON")
    if not root:
        raise HostError(f"{where}: get_fields returned an empty list of fields")
    try:
        return [_parse_entry(where, i, entry) for i, entry in enumerate(root)]
    except NotAJsonString:
        raise HostError(f"{where}: get_fields returned an invalid JSON") from None


def _parse_entry(where: str, index: int, entry: Any) -> FieldInfo:
    if not isinstance(entry, dict):
        raise NotAJsonString
    ftype = as_json_string(entry.get("type"))
    if not ftype:
        raise HostError(f"{where}: field JSON entry has no type")
    name = as_json_string(entry.get("name"))
    if not name:
        raise HostError(f"{where}: field JSON entry has no name")
    display = as_json_string(entry.get("display"))
    desc = as_json_string(entry.get("desc"))
    if not desc:
        raise HostError(f"{where}: field JSON entry has no desc")
    if ftype not in TYPE_CODES:
        raise HostError(f"{where}: invalid field type {ftype}")
    flags: dict[str, bool] = {}
    # libsinsp's messages for these two end with a space; kept for fidelity.
    for key in ("isList", "addOutput"):
        if key in entry:
            if not isinstance(entry[key], bool):
                raise HostError(f"{where}: field {name} {key} property is not boolean ")
            flags[key] = entry[key]
    arg = entry.get("arg")
    if arg is not None and not isinstance(arg, dict):
        raise NotAJsonString
    for key in ("isRequired", "isIndex", "isKey"):
        if arg is not None and key in arg:
            if not isinstance(arg[key], bool):
                raise HostError(f"{where}: field {name} {key} property is not boolean")
            flags[key] = arg[key]
    if flags.get("isRequired") and not (flags.get("isIndex") or flags.get("isKey")):
        raise HostError(f"{where}: field {name} arg has isRequired true, but none of isKey nor isIndex is true")
    props = entry.get("properties")
    properties: list[str] = []
    if props is not None:
        if not isinstance(props, list):
            raise HostError(f"{where}: field {name} properties property is not array ")
        for p in props:
            if not isinstance(p, str):
                raise HostError(f"{where}: field {name} properties value is not string ")
            properties.append(p)
    return FieldInfo(
        id=index,
        name=name,
        type=ftype,
        desc=desc,
        display=display,
        is_list=flags.get("isList", False),
        arg_required=flags.get("isRequired", False),
        is_index=flags.get("isIndex", False),
        is_key=flags.get("isKey", False),
        add_output=flags.get("addOutput", False),
        properties=tuple(properties),
    )


@dataclass(frozen=True)
class FieldRequest:
    """A parsed field expression: what goes into ``ss_plugin_extract_field``."""

    text: str
    field: FieldInfo
    arg_present: bool = False
    arg: str | None = None
    """The raw text between the brackets."""
    arg_index: int = 0
    arg_key: str | None = None


def _index_problem(arg: str) -> str | None:
    if not arg or (arg[0] == "0" and len(arg) > 1):
        return " has an invalid index argument starting with 0: "
    if not _DIGITS.fullmatch(arg):
        return " has an invalid index argument not composed only by digits: "
    if int(arg) > U64_MAX:
        return " has an invalid index argument not representable on 64 bit: "
    return None


def parse_field_expression(expr: str, fields: list[FieldInfo]) -> FieldRequest:
    """Parse ``name`` or ``name[arg]`` against ``fields`` like libsinsp's plugin filter check.

    As in libsinsp (checked with the libsinsp host, ``sdk/tests/test_host_fields.py``): the field
    is read up to the first space; its name is the longest field name it starts with; the
    argument is checked against the field's ``arg`` flags (errors quote the text read); and only
    then must the expression have ended: anything after it, blanks included, makes the whole
    expression an unknown field.
    """
    unknown = FieldExpressionError(f"unknown field '{expr}'")
    val = expr.split(" ", 1)[0]
    best: FieldInfo | None = None
    for f in fields:
        if val.startswith(f.name) and (best is None or len(f.name) > len(best.name)):
            best = f
    bracket = val.find("[")
    if best is None or (bracket >= 0 and bracket != len(best.name)) or (bracket < 0 and val != best.name):
        raise unknown
    name = best.name
    if bracket < 0:
        if best.arg_required:
            raise FieldExpressionError(f"filter '{val}': {name} requires an argument but none provided")
        if val != expr:
            raise unknown
        return FieldRequest(text=val, field=best)
    if bracket + 1 == len(val):
        raise FieldExpressionError(f"filter '{val}': {name} terminates with incomplete argument brackets")
    end = val.find("]", bracket + 1)
    if end < 0:
        raise FieldExpressionError(f"filter '{val}': {name} has unbalanced argument brackets")
    arg = val[bracket + 1 : end]
    if not best.arg_allowed and not best.arg_required:
        raise FieldExpressionError(
            f"filter '{val}': {name} does not allow nor require an argument but one is provided: {arg}"
        )
    index = 0
    if best.is_index:
        problem = _index_problem(arg)
        if problem is None:
            index = int(arg)
        elif not best.is_key:  # a field taking both uses an invalid index as a key
            raise FieldExpressionError(f"filter {val} {name}{problem}{arg}")
    if end + 1 != len(val) or val != expr:
        raise unknown
    return FieldRequest(
        text=val,
        field=best,
        arg_present=True,
        arg=arg,
        arg_index=index,
        arg_key=arg if best.is_key else None,
    )
