"""The author API's frozen records behave like the frozen dataclasses they replace."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest
from falco_plugin import INT32, OpenParam, StateType
from falco_plugin._internal.records import frozen_record


@dataclasses.dataclass(frozen=True)
class RefParam:
    value: str
    desc: str = ""
    separator: str = ""


@frozen_record
class Param:
    __match_args__ = ("value", "desc", "separator")
    value: str
    desc: str
    separator: str

    def __init__(self, value: str, desc: str = "", separator: str = "") -> None:
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "desc", desc)
        object.__setattr__(self, "separator", separator)


def test_a_record_has_the_repr_equality_and_hash_of_the_dataclass() -> None:
    for args in [("a",), ("a", "b"), ("a", "b", "|")]:
        ref, rec = RefParam(*args), Param(*args)
        assert repr(rec) == repr(ref).replace("RefParam", "Param")
        assert rec == Param(*args) and hash(rec) == hash(ref)
    other: Any = RefParam("a")
    assert Param("a") != Param("b") and Param("a") != other
    assert Param("a").__eq__(("a", "", "")) is NotImplemented


def test_a_record_refuses_assignment_and_deletion_like_a_frozen_dataclass() -> None:
    rec = Param("a")
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'value'"):
        rec.value = "b"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'other'"):
        rec.other = 1  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'desc'"):
        del rec.desc  # type: ignore[misc]
    assert rec.value == "a"


def test_a_subclass_may_add_attributes_but_not_change_fields() -> None:
    class Sub(Param):
        pass

    sub = Sub("a")
    sub.extra = 1  # type: ignore[attr-defined]
    assert sub.extra == 1  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sub.value = "b"  # type: ignore[misc]


def test_a_record_copies_pickles_and_matches() -> None:
    rec = Param("a", "b")
    assert copy.copy(rec) == rec and copy.deepcopy(rec) == rec and pickle.loads(pickle.dumps(rec)) == rec
    match rec:
        case Param(value, desc):
            assert (value, desc) == ("a", "b")
        case _:
            pytest.fail("no match")


def test_a_record_missing_an_argument_fails_like_the_dataclass() -> None:
    with pytest.raises(TypeError, match=r"Param.__init__\(\) missing 1 required positional argument: 'value'"):
        Param()  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (OpenParam("{}", "all defaults"), "OpenParam(value='{}', desc='all defaults', separator='')"),
        (INT32, "int32"),  # StateType keeps its own repr
    ],
)
def test_the_author_api_records(record: Any, expected: str) -> None:
    assert repr(record) == expected
    assert record == copy.deepcopy(record) and hash(record) == hash(copy.deepcopy(record))
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.x = 1
    assert StateType("int32", 3, int, 32, True) == INT32
