"""Typed configuration: one class gives the JSON schema, the defaults and the validation.

A plugin's init configuration (and, if it wants, its open parameters) is a
subclass of :class:`Config`. Subclasses are dataclasses; every attribute is a
setting, declared with a type annotation and usually :func:`setting`::

    class DummyConfig(Config):
        jitter: int = setting("Random jitter added to each sample", default=10, minimum=0)

From that one declaration the SDK derives ``plugin_get_init_schema`` (the host
validates against it before ``init``) and parses the configuration string into
a ``DummyConfig`` instance, rejecting bad input with a message that names the
key: ``jitter: must be >= 0, got -3``.

Supported annotations: ``int``, ``float``, ``bool``, ``str``, ``Literal[...]``
of strings or ints, ``list[T]``, ``dict[str, T]``, another ``Config`` subclass
(a nested object) and ``T | None``.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar, dataclass_transform

from ._internal.hints import UnresolvedAnnotationError, resolved_annotation
from .errors import ConfigError, SpecError

__all__ = ["Config", "setting"]

_MISSING: Any = dataclasses.MISSING
_META_KEY = "falco_plugin"

C = TypeVar("C", bound="Config")


def setting(
    description: str = "",
    *,
    default: Any = _MISSING,
    key: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
    secret: bool = False,
) -> Any:
    """Declare one setting of a :class:`Config`: ``setting("what it does", default=10)``.

    ``default`` omitted makes the setting required (it is keyword-only so
    that type checkers see it, per PEP 681). ``key`` is the JSON key
    when it differs from the attribute name (``maxEvents``). ``minimum`` and
    ``maximum`` bound numbers; ``min_length``/``max_length`` bound strings and
    lists. ``secret`` marks a value that must never be echoed back in error
    messages.
    """
    meta = {
        "description": description,
        "key": key,
        "minimum": minimum,
        "maximum": maximum,
        "min_length": min_length,
        "max_length": max_length,
        "pattern": pattern,
        "secret": secret,
    }
    if isinstance(default, (list, dict, set)):
        snapshot = default
        return dataclasses.field(default_factory=lambda: json.loads(json.dumps(snapshot)), metadata={_META_KEY: meta})
    return dataclasses.field(default=default, metadata={_META_KEY: meta})


class _Setting:
    """One resolved setting of a Config class.

    A plain class rather than a dataclass: a dataclass compiles its methods
    when this module is imported, which every plugin library does at start-up.
    """

    __slots__ = (
        "attr",
        "key",
        "type",
        "required",
        "default",
        "description",
        "minimum",
        "maximum",
        "min_length",
        "max_length",
        "pattern",
        "secret",
    )

    def __init__(
        self,
        attr: str,
        key: str,
        type: Any,  # noqa: A002 - the annotation of the setting
        required: bool,
        default: Any,
        description: str,
        minimum: float | None,
        maximum: float | None,
        min_length: int | None,
        max_length: int | None,
        pattern: str | None,
        secret: bool,
    ) -> None:
        self.attr = attr
        self.key = key
        self.type = type
        self.required = required
        self.default = default
        self.description = description
        self.minimum = minimum
        self.maximum = maximum
        self.min_length = min_length
        self.max_length = max_length
        self.pattern = pattern
        self.secret = secret

    def __repr__(self) -> str:
        return f"_Setting({self.attr!r}, key={self.key!r}, type={self.type!r})"

    def without_lengths(self) -> _Setting:
        """This setting with no length bounds (what the items of a list or dict get)."""
        return _Setting(
            self.attr,
            self.key,
            self.type,
            self.required,
            self.default,
            self.description,
            self.minimum,
            self.maximum,
            None,
            None,
            self.pattern,
            self.secret,
        )


@dataclass_transform(field_specifiers=(setting, dataclasses.field))
class Config:
    """Base class of typed configurations (init config, open parameters)."""

    _settings: ClassVar[tuple[_Setting, ...]]
    _doc: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._doc = cls.__dict__.get("__doc__")  # before dataclass() invents one from the signature
        dataclasses.dataclass(cls)
        cls._settings = ()  # resolved lazily: annotations may name later classes

    # -- schema ---------------------------------------------------------------

    @classmethod
    def settings(cls) -> tuple[_Setting, ...]:
        """The settings of this class, in declaration order."""
        if not cls._settings:
            try:
                hints = typing.get_type_hints(cls)
            except Exception as exc:  # noqa: BLE001 - a typo (NameError) or anything else an annotation raises
                raise SpecError(
                    f"{cls.__qualname__}: cannot resolve the annotations of its settings ({exc}); "
                    f"{SUPPORTED_SETTING_TYPES}"
                ) from None
            found = []
            for f in dataclasses.fields(cls):  # type: ignore[arg-type]
                meta = f.metadata.get(_META_KEY, {})
                has_default = f.default is not _MISSING or f.default_factory is not _MISSING
                default = (
                    f.default
                    if f.default is not _MISSING
                    else (f.default_factory() if f.default_factory is not _MISSING else None)  # type: ignore[operator]
                )
                found.append(
                    _Setting(
                        attr=f.name,
                        key=meta.get("key") or f.name,
                        type=hints[f.name],
                        required=not has_default,
                        default=default,
                        description=meta.get("description", ""),
                        minimum=meta.get("minimum"),
                        maximum=meta.get("maximum"),
                        min_length=meta.get("min_length"),
                        max_length=meta.get("max_length"),
                        pattern=meta.get("pattern"),
                        secret=meta.get("secret", False),
                    )
                )
            cls._settings = tuple(found)
        return cls._settings

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON schema (draft-07 subset) describing this configuration."""
        schema = _object_schema(cls)
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        return schema

    # -- parsing --------------------------------------------------------------

    @classmethod
    def parse(cls: type[C], text: str) -> C:
        """Parse a JSON document; an empty string means "all defaults"."""
        if not text.strip():
            return cls.from_dict({})
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError("", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls: type[C], data: Any, path: str = "") -> C:
        """Build an instance from already-decoded JSON, validating every key."""
        if not isinstance(data, dict):
            raise ConfigError(path, f"expected an object, got {_json_kind(data)}")
        settings = cls.settings()
        known = {s.key: s for s in settings}
        for key in data:
            if key not in known:
                expected = ", ".join(sorted(known)) or "no settings"
                raise ConfigError(_join(path, key), f"unknown setting (expected one of: {expected})")
        values = {}
        for s in settings:
            where = _join(path, s.key)
            if s.key in data:
                values[s.attr] = _convert(s.type, data[s.key], where, s)
            elif s.required:
                raise ConfigError(where, "missing required setting")
        obj = cls(**values)
        try:
            obj.validate()
        except ConfigError as exc:
            raise ConfigError(_join(path, exc.path) if exc.path else path, exc.reason) from None
        return obj

    def validate(self) -> None:
        """Check rules that span several settings; raise ``ConfigError(key, message)``.

        Called after every setting was parsed on its own, so the message can
        name the key at fault (nested configurations get their full path).
        """

    def to_dict(self) -> dict[str, Any]:
        """The JSON-compatible form of this configuration."""
        return {s.key: _to_json(getattr(self, s.attr)) for s in self.settings()}


# -- helpers ---------------------------------------------------------------------


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Config)


def _optional_inner(tp: Any) -> Any | None:
    """``T`` for ``T | None`` / ``Optional[T]``, else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _shown(value: Any, s: _Setting | None) -> str:
    if s is not None and s.secret:
        return "<secret>"
    return json.dumps(value) if not isinstance(value, str) or len(value) < 80 else json.dumps(value[:77] + "...")


def _convert(tp: Any, value: Any, path: str, s: _Setting | None) -> Any:
    inner = _optional_inner(tp)
    if inner is not None:
        return None if value is None else _convert(inner, value, path, s)
    origin = typing.get_origin(tp)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected a boolean, got {_json_kind(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(path, f"expected an integer, got {_json_kind(value)}")
        _check_bounds(value, path, s)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"expected a number, got {_json_kind(value)}")
        _check_bounds(value, path, s)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {_json_kind(value)}")
        _check_length(value, path, s)
        if s is not None and s.pattern is not None:
            import re

            if not re.search(s.pattern, value):
                raise ConfigError(path, f"{_shown(value, s)} does not match pattern {s.pattern!r}")
        return value
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices or isinstance(value, bool) != any(isinstance(c, bool) for c in choices):
            raise ConfigError(
                path, f"must be one of {', '.join(json.dumps(c) for c in choices)}, got {_shown(value, s)}"
            )
        return value
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise ConfigError(path, f"expected an array, got {_json_kind(value)}")
        _check_length(value, path, s)
        each = _for_items(s)
        return [_convert(item, v, _join(path, i), each) for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(tp) or (str, Any)
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected an object, got {_json_kind(value)}")
        each = _for_items(s)
        return {k: _convert(item, v, _join(path, k), each) for k, v in value.items()}
    if _is_config(tp):
        return tp.from_dict(value, path)
    if tp is Any:
        return value
    raise TypeError(f"unsupported setting type {tp!r} at {path}")


def _for_items(s: _Setting | None) -> _Setting | None:
    """Bounds of a list or dict setting apply to its items; lengths to the container."""
    return None if s is None else s.without_lengths()


def _check_bounds(value: float, path: str, s: _Setting | None) -> None:
    if s is None:
        return
    if s.minimum is not None and value < s.minimum:
        raise ConfigError(path, f"must be >= {_num(s.minimum)}, got {_shown(value, s)}")
    if s.maximum is not None and value > s.maximum:
        raise ConfigError(path, f"must be <= {_num(s.maximum)}, got {_shown(value, s)}")


def _check_length(value: str | list[Any], path: str, s: _Setting | None) -> None:
    if s is None:
        return
    unit = "characters" if isinstance(value, str) else "items"
    if s.min_length is not None and len(value) < s.min_length:
        raise ConfigError(path, f"must have at least {s.min_length} {unit}, got {len(value)}")
    if s.max_length is not None and len(value) > s.max_length:
        raise ConfigError(path, f"must have at most {s.max_length} {unit}, got {len(value)}")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _to_json(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def _object_schema(cls: type[Config]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required = []
    for s in cls.settings():
        try:
            prop = _type_schema(s.type)
        except TypeError as exc:
            raise SpecError(f"{cls.__qualname__}.{s.attr}: {exc}; {SUPPORTED_SETTING_TYPES}") from None
        if s.description:
            prop["description"] = s.description
        if s.secret:
            prop["writeOnly"] = True  # tells hosts never to echo the value back
        if not s.required and s.default is not None and not s.secret:
            prop["default"] = _to_json(s.default)
        # Value bounds constrain the scalar items of a list or dict; lengths
        # constrain the list (or the string) itself, as the parser does.
        target = prop
        if prop.get("type") == "array" and isinstance(prop.get("items"), dict):
            target = prop["items"]
        elif prop.get("type") == "object" and isinstance(prop.get("additionalProperties"), dict):
            target = prop["additionalProperties"]
        for attr in ("minimum", "maximum", "pattern"):
            if getattr(s, attr) is not None:
                target[attr] = getattr(s, attr)
        length_kw = ("minItems", "maxItems") if prop.get("type") == "array" else ("minLength", "maxLength")
        if s.min_length is not None:
            prop[length_kw[0]] = s.min_length
        if s.max_length is not None:
            prop[length_kw[1]] = s.max_length
        props[s.key] = prop
        if s.required:
            required.append(s.key)
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if cls._doc:
        schema["description"] = " ".join(cls._doc.split())
    if required:
        schema["required"] = required
    return schema


#: What a setting's annotation may be, for the build errors that reject one.
SUPPORTED_SETTING_TYPES = (
    "supported setting types: bool, int, float, str, list[T], dict[str, T], Literal[...], a Config subclass, "
    "T | None, Any"
)

_SCALARS: dict[Any, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _type_schema(tp: Any) -> dict[str, Any]:
    inner = _optional_inner(tp)
    if inner is not None:
        schema = _type_schema(inner)
        if isinstance(schema.get("type"), str):
            schema["type"] = [schema["type"], "null"]
        else:
            schema = {"anyOf": [schema, {"type": "null"}]}
        return schema
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = list(typing.get_args(tp))
        kind = "string" if all(isinstance(c, str) for c in choices) else "integer"
        return {"type": kind, "enum": choices}
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return {"type": "array", "items": _type_schema(item)}
    if origin is dict:
        _, item = typing.get_args(tp) or (str, Any)
        return {"type": "object", "additionalProperties": _type_schema(item)}
    if _is_config(tp):
        return _object_schema(tp)
    if tp is Any:
        return {}
    raise TypeError(f"unsupported setting type {tp!r}")


def config_type_of(func: Callable[..., Any], param: str) -> type[Config] | None:
    """The Config subclass a callable's parameter is annotated with, if any.

    An annotation of that parameter that does not resolve is a :class:`SpecError`: taken as
    "untyped", the plugin would get the raw text instead of its config, and lose its schema,
    without a word."""
    try:
        tp = resolved_annotation(func, param)
    except UnresolvedAnnotationError as exc:
        raise SpecError(f"{func.__qualname__}: {exc}: it decides how the {param} are parsed and checked") from None
    return tp if _is_config(tp) else None
