"""State tables: the host's (libsinsp's ``threads``...) and the plugin's own.

Tables are typed key -> entry maps shared by the host and every plugin. A
plugin reaches them through ``self.tables`` (a :class:`Tables`), and only in
:meth:`~falco_plugin.Plugin.init` may it look tables up and obtain *field
accessors*: the plugin API hands out the field vtable at init only, so an
accessor asked for later is an error. Entries are then read and written in
the host calls that carry table vtables: ``parse_event`` and
``capture_open``/``capture_close`` read and write, ``extract_fields`` only
reads::

    from falco_plugin import INT64, UINT64, Event, ParsePlugin, tables

    class Counter(ParsePlugin):
        parse_event_types = (PPME_SYSCALL_OPEN_X,)

        def init(self, config: str) -> None:
            self.threads = self.tables.get("threads", key=INT64)
            self.comm = self.threads.field("comm", str)
            self.opens = self.threads.add_field("counter.opens", UINT64)  # our own column

        def parse_event(self, event: Event) -> None:
            entry = self.threads.get(event.tid)  # released when parse_event returns
            if entry is not None:
                entry[self.opens] += 1

An :class:`Entry` is valid during the host call that obtained it (the SDK
releases it when the call returns); ``with table.get(k) as e:`` releases it
earlier. Reading a table-typed field (``threads``' ``file_descriptors``,
``args``, ``env``, ``cgroups``) gives the entry's own subtable, a
:class:`TableView` whose accessors come from :meth:`HostTable.subtable`.

Tables of the plugin's own are declared as a :class:`Row` subclass with
typed columns and exported at init with :meth:`Tables.export`; the host and
other plugins (in any language) then read and write them through the host.

The per-entry operations run in the C glue; the classes here only describe
and type them.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, overload

from ._internal.records import frozen_record
from .errors import PluginError

__all__ = [
    "BOOL",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "STRING",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "Entry",
    "Field",
    "HostTable",
    "PluginTable",
    "Row",
    "StateType",
    "SubtableField",
    "TableError",
    "TableView",
    "Tables",
]

T = TypeVar("T")
K = TypeVar("K")
KC = TypeVar("KC", contravariant=True)
R = TypeVar("R", bound="Row")


class TableError(PluginError):
    """A table operation failed: unknown table or field, wrong type, an access
    the current host call does not allow, or an error of the table's owner.
    The message names the table and the field."""


@frozen_record  # a frozen dataclass, without its start-up cost
class StateType(Generic[T]):
    """A state table data type (``ss_plugin_state_type``) and its Python type."""

    __match_args__ = ("name", "code", "py", "bits", "signed")
    name: str
    code: int
    py: type
    bits: int
    signed: bool

    def __init__(self, name: str, code: int, py: type, bits: int = 0, signed: bool = False) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "py", py)
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "signed", signed)

    def __repr__(self) -> str:
        return self.name

    def check(self, value: Any, where: str) -> Any:
        """``value`` if it fits this type, else :class:`TableError` naming ``where``."""
        if self.py is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TableError(f"{where}: expected an int ({self.name}), got {type(value).__name__}")
            lo, hi = (-(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1) if self.signed else (0, (1 << self.bits) - 1)
            if not lo <= value <= hi:
                raise TableError(f"{where}: {value} does not fit in {self.name}")
        elif not isinstance(value, self.py):
            raise TableError(f"{where}: expected {self.py.__name__} ({self.name}), got {type(value).__name__}")
        return value


INT8: StateType[int] = StateType("int8", 1, int, 8, True)
INT16: StateType[int] = StateType("int16", 2, int, 16, True)
INT32: StateType[int] = StateType("int32", 3, int, 32, True)
INT64: StateType[int] = StateType("int64", 4, int, 64, True)
UINT8: StateType[int] = StateType("uint8", 5, int, 8)
UINT16: StateType[int] = StateType("uint16", 6, int, 16)
UINT32: StateType[int] = StateType("uint32", 7, int, 32)
UINT64: StateType[int] = StateType("uint64", 8, int, 64)
STRING: StateType[str] = StateType("string", 9, str)
BOOL: StateType[bool] = StateType("bool", 25, bool)
TABLE_CODE = 10
"""``SS_PLUGIN_ST_TABLE``: a field holding a subtable."""

BY_CODE: dict[int, StateType[Any]] = {
    t.code: t for t in (INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64, STRING, BOOL)
}
TYPE_NAMES: dict[int, str] = {**{c: t.name for c, t in BY_CODE.items()}, TABLE_CODE: "table"}


def state_type(tp: type[T] | StateType[T]) -> StateType[T]:
    """The :class:`StateType` for ``str``, ``bool`` or a :class:`StateType`
    (integers need an explicit width: ``INT64``, ``UINT32``...)."""
    if isinstance(tp, StateType):
        return tp
    if tp is str:
        return STRING  # type: ignore[return-value]
    if tp is bool:
        return BOOL  # type: ignore[return-value]
    if tp is int:
        raise TableError("an integer field needs an explicit width: INT8..INT64 or UINT8..UINT64")
    raise TableError(f"{tp!r} is not a state table type (use str, bool, INT8..INT64, UINT8..UINT64)")


class Field(Generic[T]):
    """An accessor for one field of a table; obtained at init, used on entries."""

    __slots__ = ("_acc", "table", "name", "type", "read_only")

    def __init__(self, acc: Any, table: str, name: str, type_: StateType[T], read_only: bool) -> None:
        self._acc = acc  # the glue's C accessor: what Entry.__getitem__ reads
        self.table = table
        self.name = name
        self.type = type_
        self.read_only = read_only

    def __repr__(self) -> str:
        return f"Field({self.table}.{self.name}: {self.type.name})"


class Entry(Protocol):
    """One entry of a table, valid during the host call that obtained it."""

    @overload
    def __getitem__(self, field: SubtableField[K]) -> TableView[K]: ...
    @overload
    def __getitem__(self, field: Field[T]) -> T: ...
    def __getitem__(self, field: Any) -> Any: ...
    def __setitem__(self, field: Field[T], value: T) -> None: ...
    def release(self) -> None:
        """Give the entry back to its table now (else when the host call returns)."""

    def __enter__(self) -> Entry: ...
    def __exit__(self, *exc: object) -> None: ...


class TableView(Protocol[KC]):
    """Per-entry operations on a table (a host table, or a subtable read from an entry)."""

    @property
    def name(self) -> str: ...
    def get(self, key: KC) -> Entry | None:
        """The entry with ``key``, or ``None`` when the table has none."""

    def __getitem__(self, key: KC) -> Entry:
        """The entry with ``key``; :class:`TableError` when the table has none."""

    def __len__(self) -> int: ...
    def create(self) -> Entry:
        """A new, detached entry: fill its fields, then :meth:`add` it."""

    def add(self, key: KC, entry: Entry) -> Entry:
        """Insert a :meth:`create`\\ d entry under ``key``; returns the entry now in the table."""

    def erase(self, key: KC) -> None: ...
    def clear(self) -> None: ...
    def for_each(self, fn: Callable[[Entry], bool | None]) -> bool:
        """Call ``fn`` on every entry (valid only during that call) until it
        returns ``False``; ``False`` when it stopped early."""


class SubtableField(Field[Any], Generic[K]):
    """A table-typed field: reading it from an entry gives that entry's subtable."""

    __slots__ = ("key", "_tables", "_sample")

    def __init__(self, acc: Any, table: str, name: str, key: StateType[Any], tables: Any, sample: Any) -> None:
        super().__init__(acc, table, name, _TABLE_TYPE, True)
        self.key = key
        self._tables = tables
        self._sample = sample  # a subtable of a temporary entry, alive until init returns

    def field(self, name: str, tp: type[T] | StateType[T]) -> Field[T]:
        """An accessor for field ``name`` of these subtables (at init only)."""
        return self._tables._field(self._sample, f"{self.table}.{self.name}", name, state_type(tp), add=False)  # type: ignore[no-any-return]

    def add_field(self, name: str, tp: type[T] | StateType[T]) -> Field[T]:
        """Add a field of the plugin's own to these subtables (at init only)."""
        return self._tables._field(self._sample, f"{self.table}.{self.name}", name, state_type(tp), add=True)  # type: ignore[no-any-return]

    def fields(self) -> list[tuple[str, str, bool]]:
        """(name, type, read_only) of each field these subtables have."""
        return self._tables._list_fields(self._sample, f"{self.table}.{self.name}")  # type: ignore[no-any-return]


_TABLE_TYPE: StateType[Any] = StateType("table", TABLE_CODE, object)


class HostTable(Generic[K]):
    """A table reached through the host (its own or another plugin's).

    Field accessors (:meth:`field`, :meth:`add_field`, :meth:`subtable`) may
    only be obtained at init; the per-entry operations are those of
    :class:`TableView`, bound to the glue's C implementation.
    """

    if TYPE_CHECKING:

        def get(self, key: K) -> Entry | None: ...
        def __getitem__(self, key: K) -> Entry: ...
        def __len__(self) -> int: ...
        def create(self) -> Entry: ...
        def add(self, key: K, entry: Entry) -> Entry: ...
        def erase(self, key: K) -> None: ...
        def clear(self) -> None: ...
        def for_each(self, fn: Callable[[Entry], bool | None]) -> bool: ...

    def __init__(self, handle: Any, name: str, key: StateType[K], tables: Tables) -> None:
        self._h = handle
        self.name = name
        self.key = key
        self._tables = tables
        # The hot operations are the C handle's own methods: no Python frame in between.
        self.get = handle.get  # type: ignore[method-assign]
        self.create = handle.create  # type: ignore[method-assign]
        self.add = handle.add  # type: ignore[method-assign]
        self.erase = handle.erase  # type: ignore[method-assign]
        self.clear = handle.clear  # type: ignore[method-assign]
        self.for_each = handle.for_each  # type: ignore[method-assign]

    if not TYPE_CHECKING:

        def __getitem__(self, key):
            return self._h[key]

        def __len__(self):
            return len(self._h)

    def field(self, name: str, tp: type[T] | StateType[T]) -> Field[T]:
        """An accessor for the existing field ``name`` of type ``tp`` (at init only)."""
        return self._tables._field(self._h, self.name, name, state_type(tp), add=False)  # type: ignore[no-any-return]

    def add_field(self, name: str, tp: type[T] | StateType[T]) -> Field[T]:
        """Add a field of the plugin's own to every entry (at init only); an
        existing field of the same name and type is shared."""
        return self._tables._field(self._h, self.name, name, state_type(tp), add=True)  # type: ignore[no-any-return]

    def subtable(self, name: str, key: StateType[T]) -> SubtableField[T]:
        """The table-typed field ``name`` whose subtables are keyed by ``key`` (at init only)."""
        return self._tables._subtable(self, name, key)  # type: ignore[no-any-return]

    def fields(self) -> list[tuple[str, str, bool]]:
        """(name, type, read_only) of each field of the table."""
        return self._tables._list_fields(self._h, self.name)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"HostTable({self.name!r}, key={self.key.name})"


class Tables:
    """The tables the host offers a plugin (``self.tables``); see the module docs."""

    def __init__(self, impl: Any) -> None:
        self._impl = impl  # _internal.tables.TablesRuntime, or None without a table-capable host

    def list(self) -> builtins.list[tuple[str, str]]:
        """(name, key type) of every table the host has (at init only)."""
        return self._impl.list_tables()  # type: ignore[no-any-return]

    def get(self, name: str, key: StateType[K] | type[K]) -> HostTable[K]:
        """Open table ``name``, whose keys have type ``key`` (at init only)."""
        return self._impl.get_table(name, state_type(key))  # type: ignore[no-any-return]

    def export(self, name: str, key: StateType[K] | type[K], row: type[R]) -> PluginTable[K, R]:
        """Create table ``name`` of the plugin's own with ``row``'s columns, and
        register it with the host so that other plugins can use it (at init only)."""
        return self._impl.export(name, state_type(key), row)  # type: ignore[no-any-return]

    def _field(self, handle: Any, table: str, name: str, tp: StateType[Any], add: bool) -> Field[Any]:
        return self._impl.field(handle, table, name, tp, add)  # type: ignore[no-any-return]

    def _subtable(self, table: HostTable[Any], name: str, key: StateType[Any]) -> SubtableField[Any]:
        return self._impl.subtable(self, table, name, key)  # type: ignore[no-any-return]

    def _list_fields(self, handle: Any, table: str) -> builtins.list[tuple[str, str, bool]]:
        return self._impl.list_fields(handle, table)  # type: ignore[no-any-return]


# -- tables of the plugin's own ---------------------------------------------------


@frozen_record
class Column:
    __match_args__ = ("name", "type", "default", "read_only")
    name: str
    type: StateType[Any]
    default: Any
    read_only: bool

    def __init__(self, name: str, type: StateType[Any], default: Any, read_only: bool = False) -> None:  # noqa: A002
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "default", default)
        object.__setattr__(self, "read_only", read_only)


class Row:
    """The columns of a table the plugin owns, declared like a dataclass::

        class Proc(Row):
            count: Annotated[int, UINT64] = 0
            comm: str = ""

    ``str`` and ``bool`` columns need no annotation; integer columns name
    their width with ``Annotated[int, UINT64]`` (or ``INT32``, ...). Rows are
    read and written as attributes; other plugins see the columns (and may
    add their own, kept per row) through the host.
    """

    __columns__: ClassVar[tuple[Column, ...]] = ()
    __slots__ = ("_extra", "_cstr", "__weakref__")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        import typing

        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except NameError as exc:
            raise TypeError(
                f"{cls.__qualname__}: cannot resolve its column annotations ({exc}); declare Row classes at module "
                "level, with the names they use imported there"
            ) from None
        cols: list[Column] = list(cls.__columns__)
        known = {c.name for c in cols}
        for attr, hint in hints.items():
            if attr.startswith("_") or attr in known or typing.get_origin(hint) is ClassVar:
                continue
            tp: StateType[Any] | None = None
            if typing.get_origin(hint) is typing.Annotated:
                tp = next((a for a in typing.get_args(hint)[1:] if isinstance(a, StateType)), None)
            elif hint in (str, bool):
                tp = state_type(hint)
            if tp is None:
                raise TypeError(
                    f"{cls.__qualname__}.{attr}: a column is str, bool, or Annotated[int, INT8..UINT64], not {hint!r}"
                )
            default = cls.__dict__.get(attr, _zero(tp))
            tp.check(default, f"{cls.__qualname__}.{attr} default")
            cols.append(Column(attr, tp, default))
        cls.__columns__ = tuple(cols)

    def __init__(self, **values: Any) -> None:
        self._extra: list[Any] | None = None
        self._cstr: dict[int, tuple[str, bytes]] | None = None  # what the host last read of each string column
        for col in self.__columns__:
            object.__setattr__(self, col.name, values.pop(col.name, col.default))
        if values:
            raise TypeError(f"{type(self).__qualname__} has no column {', '.join(values)}")

    def __repr__(self) -> str:
        cols = ", ".join(f"{c.name}={getattr(self, c.name)!r}" for c in self.__columns__)
        return f"{type(self).__qualname__}({cols})"


def _zero(tp: StateType[Any]) -> Any:
    return "" if tp is STRING else False if tp is BOOL else 0


class PluginTable(Generic[K, R]):
    """A table the plugin owns: a typed mapping key -> row that the host and
    other plugins also read and write (through the host's vtables)."""

    def __init__(self, name: str, key: StateType[K], row: type[R]) -> None:
        self.name = name
        self.key = key
        self.row = row
        self.rows: dict[K, R] = {}
        """The rows, by key: a plain dict, yours to read and change."""

    def __getitem__(self, key: K) -> R:
        return self.rows[key]

    def get(self, key: K) -> R | None:
        return self.rows.get(key)

    def setdefault(self, key: K) -> R:
        """The row of ``key``, created with the column defaults when missing."""
        row = self.rows.get(key)
        if row is None:
            row = self.rows[self.key.check(key, f"table {self.name} key")] = self.row()
        return row

    def __setitem__(self, key: K, row: R) -> None:
        if not isinstance(row, self.row):
            raise TableError(f"table {self.name}: rows are {self.row.__qualname__}, not {type(row).__name__}")
        self.rows[self.key.check(key, f"table {self.name} key")] = row

    def __delitem__(self, key: K) -> None:
        del self.rows[key]

    def __contains__(self, key: object) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[K]:
        return iter(self.rows)

    def __repr__(self) -> str:
        return f"PluginTable({self.name!r}, key={self.key.name}, rows={len(self.rows)})"
