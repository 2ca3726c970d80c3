"""``@field``: the method's signature and return annotation declare the field.

Types come from the return annotation, the argument kind from the name of a
second parameter (``index``/``key``), its optionality from a default. Bad
declarations are rejected when the plugin class is resolved (before any
library is built), with the method and field named.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any, Optional

import pytest
from falco_plugin import AbsTime, Event, ExtractPlugin, IPAddr, IPNet, Located, RelTime, SpecError, field
from falco_plugin._internal.fields import FieldSpec, fields_of
from falco_plugin._internal.spec import resolve


def only_field(cls: type) -> FieldSpec:
    (spec,) = fields_of(cls)
    return spec


def plugin_with(annotation: Any) -> type[ExtractPlugin]:
    class P(ExtractPlugin):
        name = "p"

        @field("p.f", "A field")
        def f(self, event: Event) -> None: ...

    P.f.__annotations__["return"] = annotation
    return P


@pytest.mark.parametrize(
    ("annotation", "ftype", "is_list"),
    [
        (int, "uint64", False),
        (str, "string", False),
        (bytes, "string", False),
        (bool, "bool", False),
        (RelTime, "reltime", False),
        (AbsTime, "abstime", False),
        (IPAddr, "ipaddr", False),
        (IPNet, "ipnet", False),
        (ipaddress.IPv4Address, "ipaddr", False),
        (ipaddress.IPv6Address, "ipaddr", False),
        (ipaddress.IPv4Network, "ipnet", False),
        (ipaddress.IPv6Network, "ipnet", False),
        (int | None, "uint64", False),
        (Optional[str], "string", False),  # noqa: UP045 - the old spelling must work too
        (IPAddr | None, "ipaddr", False),
        (list[int], "uint64", True),
        (list[str] | None, "string", True),
        (Sequence[bool], "bool", True),
        (tuple[str, ...], "string", True),
        (list[IPNet], "ipnet", True),
        (str | Located, "string", False),
        (list[str] | Located | None, "string", True),
    ],
)
def test_field_type_is_inferred_from_the_return_annotation(annotation: Any, ftype: str, is_list: bool) -> None:
    spec = only_field(plugin_with(annotation))
    assert (spec.type, spec.is_list) == (ftype, is_list)


@pytest.mark.parametrize(("annotation", "located"), [(int, False), (int | Located, True), (Located, True)])
def test_fields_that_may_return_located_are_marked(annotation: Any, located: bool) -> None:
    cls = plugin_with(annotation)
    if annotation is Located:
        cls.f.__falco_field__ = ("p.f", "A field", "string", None, False, ())  # type: ignore[attr-defined]
    assert only_field(cls).located is located


def test_string_annotations_are_resolved() -> None:
    class P(ExtractPlugin):
        name = "p"

        @field("p.f", "A field")
        def f(self, event: Event) -> list[RelTime]:  # a string under `from __future__ import annotations`
            return []

    assert (only_field(P).type, only_field(P).is_list) == ("reltime", True)


def test_explicit_type_overrides_or_replaces_the_annotation() -> None:
    class P(ExtractPlugin):
        name = "p"

        @field("p.untyped", "No annotation", type="abstime")
        def untyped(self, event):  # type: ignore[no-untyped-def]
            return 0

        @field("p.override", "Annotated int, declared reltime", type="reltime")
        def override(self, event: Event) -> int:
            return 0

    assert [(f.name, f.type) for f in fields_of(P)] == [("p.untyped", "abstime"), ("p.override", "reltime")]


@pytest.mark.parametrize(
    ("signature", "arg", "required"),
    [
        ("(self, event)", None, False),
        ("(self, event, index: int)", "index", True),
        ("(self, event, index: int | None = None)", "index", False),
        ("(self, event, key: str)", "key", True),
        ("(self, event, key: str = 'default')", "key", False),
    ],
)
def test_argument_kind_and_optionality_come_from_the_second_parameter(
    signature: str, arg: str | None, required: bool
) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def f{signature} -> int: return 0", namespace)
    cls = type("P", (ExtractPlugin,), {"name": "p", "f": field("p.f", "A field")(namespace["f"])})
    spec = only_field(cls)
    assert (spec.arg, spec.arg_required) == (arg, required)


def test_to_json_is_the_get_fields_entry() -> None:
    class P(ExtractPlugin):
        name = "p"

        @field("p.a", "All options", display="A!", add_output=True, properties=("hidden", "conversation"))
        def a(self, event: Event, key: str) -> list[str]:
            return []

        @field("p.b", "Nothing optional")
        def b(self, event: Event) -> int:
            return 0

    a, b = fields_of(P)
    assert a.to_json() == {
        "name": "p.a",
        "type": "string",
        "desc": "All options",
        "isList": True,
        "arg": {"isRequired": True, "isIndex": False, "isKey": True},
        "display": "A!",
        "addOutput": True,
        "properties": ["hidden", "conversation"],
    }
    assert b.to_json() == {"name": "p.b", "type": "uint64", "desc": "Nothing optional"}


def test_fields_keep_declaration_order_with_base_class_fields_first() -> None:
    class Base(ExtractPlugin):
        name = "base"

        @field("b.z", "z")
        def z(self, event: Event) -> int:
            return 0

        @field("b.a", "a")
        def a(self, event: Event) -> int:
            return 0

    class Child(Base):
        name = "child"

        @field("c.m", "m")
        def m(self, event: Event) -> int:
            return 0

    assert [f.name for f in fields_of(Child)] == ["b.z", "b.a", "c.m"]


def test_a_subclass_can_redeclare_an_inherited_field() -> None:
    class Base(ExtractPlugin):
        name = "base"

        @field("f.x", "old")
        def x(self, event: Event) -> int:
            return 0

    class Child(Base):
        name = "child"

        @field("f.x", "new")
        def x(self, event: Event) -> str:  # type: ignore[override]
            return ""

    assert [(f.name, f.description, f.type) for f in fields_of(Child)] == [("f.x", "new", "string")]


# -- bad declarations -------------------------------------------------------------------------


def bad_signature(signature: str, returns: str = "int", **kw: Any) -> type[ExtractPlugin]:
    namespace: dict[str, Any] = {"Any": Any}
    exec(f"def f{signature} -> {returns}: return 0", namespace)
    return type("Bad", (ExtractPlugin,), {"name": "bad", "f": field("bad.f", "A field", **kw)(namespace["f"])})


@pytest.mark.parametrize(
    ("signature", "returns", "message"),
    [
        ("(self)", "int", "an extractor takes the event as its first argument"),
        ("(self, event, index, extra)", "int", r"an extractor takes \(event\) or \(event, index\) or \(event, key\)"),
        ("(self, event, idx: int)", "int", "the argument parameter must be named 'index' or 'key', not 'idx'"),
        ("(self, event)", "dict[str, int]", "cannot infer a field type from"),
        ("(self, event)", "float", "cannot infer a field type from"),
        ("(self, event)", "int | str", "cannot infer a field type from"),
        ("(self, event)", "list[list[int]]", "lists of lists are not a field type"),
        ("(self, event)", "Any", "cannot infer a field type from"),
    ],
)
def test_bad_declarations_raise_spec_error_at_resolve_time_naming_the_method(
    signature: str, returns: str, message: str
) -> None:
    cls = bad_signature(signature, returns)
    with pytest.raises(SpecError, match=message) as info:
        resolve(cls)
    assert "Bad.f (field bad.f)" in str(info.value)


def test_an_unannotated_extractor_without_explicit_type_is_rejected() -> None:
    namespace: dict[str, Any] = {}
    exec("def f(self, event): return 0", namespace)
    cls = type("Bad", (ExtractPlugin,), {"name": "bad", "f": field("bad.f", "A field")(namespace["f"])})
    with pytest.raises(SpecError, match=r"Bad.f \(field bad.f\): annotate the return type or pass type=..."):
        resolve(cls)


def test_an_unknown_explicit_type_is_rejected() -> None:
    with pytest.raises(SpecError, match="unknown field type 'float64'"):
        resolve(bad_signature("(self, event)", type="float64"))


def test_unknown_field_properties_are_rejected_when_the_class_is_created() -> None:
    with pytest.raises(ValueError, match=r"field p.f: unknown properties \['secret'\]"):

        class P(ExtractPlugin):
            name = "p"

            @field("p.f", "A field", properties=("secret",))
            def f(self, event: Event) -> int:
                return 0


def test_two_methods_declaring_the_same_field_name_are_rejected() -> None:
    class P(ExtractPlugin):
        name = "p"

        @field("p.same", "first")
        def first(self, event: Event) -> int:
            return 0

        @field("p.same", "second")
        def second(self, event: Event) -> int:
            return 0

    with pytest.raises(SpecError, match=r"p\.same"):
        resolve(P)
