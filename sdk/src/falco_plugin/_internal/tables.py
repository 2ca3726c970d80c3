"""The runtime half of state tables: what ``falco_plugin.tables`` calls at init,
and the Python side of the tables a plugin exports.

The per-entry operations are C (``build/glue/tables.c``); here are the cold paths:
opening tables and obtaining accessors (through the glue's init-time
functions, which check that init is under way), and :class:`OwnedTable`,
whose methods the glue's exported-table vtables call when the host or
another plugin uses a table of ours.
"""

from __future__ import annotations

import logging
from typing import Any

from ..tables import (
    BY_CODE,
    STRING,
    TABLE_CODE,
    TYPE_NAMES,
    Field,
    HostTable,
    PluginTable,
    Row,
    StateType,
    SubtableField,
    TableError,
    Tables,
)
from .capabilities import imported_author_module

__all__ = ["NoTables", "OwnedTable", "TablesRuntime", "uses_tables"]


def uses_tables(cls: type) -> bool:
    """Whether a plugin class needs the table glue: parsers and capture
    listeners always may; other plugins say so with ``uses_tables = True``."""
    for module, base in (("parse", "ParsePlugin"), ("capture", "CaptureListenPlugin")):
        found = imported_author_module(module)
        if found is not None and issubclass(cls, getattr(found, base)):
            return True
    return bool(getattr(cls, "uses_tables", False))


class NoTables:
    """``self.tables`` of a plugin library built without table support."""

    def __getattr__(self, name: str) -> Any:
        raise TableError(
            "this plugin library has no state table support: derive from ParsePlugin or CaptureListenPlugin, or set "
            "uses_tables = True on the plugin class, and rebuild"
        )


class TablesRuntime:
    """One plugin state's access to the host's tables (``Tables._impl``)."""

    def __init__(self, glue: Any, state_addr: int, log: logging.Logger) -> None:
        self._g = glue
        self.state_addr = state_addr
        self.log = log
        self.exported: dict[str, OwnedTable] = {}

    def list_tables(self) -> list[tuple[str, str]]:
        return [(name, TYPE_NAMES.get(code, str(code))) for name, code in self._g.list_tables()]

    def get_table(self, name: str, key: StateType[Any]) -> HostTable[Any]:
        handle = self._g.get_table(name, key.code)
        return HostTable(handle, name, key, Tables(self))

    def field(self, handle: Any, table: str, name: str, tp: StateType[Any], add: bool) -> Field[Any]:
        acc = self._g.get_field(handle, name, tp.code, add, 0)
        return Field(acc, table, name, tp, bool(_read_only(self._g, handle, name)))

    def subtable(self, tables: Tables, table: HostTable[Any], name: str, key: StateType[Any]) -> SubtableField[Any]:
        acc = self._g.get_field(table._h, name, TABLE_CODE, False, key.code)
        sample = self._g.sample_subtable(table._h, acc)
        return SubtableField(acc, table.name, name, key, tables, sample)

    def list_fields(self, handle: Any, table: str) -> list[tuple[str, str, bool]]:
        return [(n, TYPE_NAMES.get(c, str(c)), ro) for n, c, ro in self._g.list_fields(handle)]

    def export(self, name: str, key: StateType[Any], row: type[Row]) -> PluginTable[Any, Any]:
        if not (isinstance(row, type) and issubclass(row, Row)):
            raise TableError(f"exporting table {name}: the row type must be a falco_plugin.Row subclass, not {row!r}")
        if name in self.exported:
            raise TableError(f"exporting table {name}: this plugin already exported a table of that name")
        table: PluginTable[Any, Any] = PluginTable(name, key, row)
        impl = OwnedTable(table, self.state_addr, self.log)
        self._g.export(name, key.code, impl)
        self.exported[name] = impl
        return table


def _read_only(glue: Any, handle: Any, name: str) -> bool:
    return any(n == name and ro for n, _, ro in glue.list_fields(handle))


class OwnedTable:
    """What the glue's vtables call for one exported table (GIL held, any thread).

    Entries handed to the host are the row objects themselves; the columns
    other plugins add live in each row's ``_extra`` list. String values are
    returned as bytes kept in the row (``_cstr``), so the pointer the host
    gets stays valid until the value changes.
    """

    def __init__(self, table: PluginTable[Any, Any], state_addr: int, log: logging.Logger) -> None:
        self.table = table
        self.state_addr = state_addr
        self.log = log
        self.cols: list[tuple[str, StateType[Any], bool]] = [
            (c.name, c.type, c.read_only) for c in table.row.__columns__
        ]
        self.nstatic = len(self.cols)

    # -- fields ---------------------------------------------------------------

    def columns(self) -> list[tuple[str, int, bool]]:
        return [(n, t.code, ro) for n, t, ro in self.cols]

    def field(self, name: str, code: int, add: bool) -> int:
        where = f"table {self.table.name} field {name}"
        for i, (n, t, _) in enumerate(self.cols):
            if n == name:
                if t.code != code:
                    raise TableError(f"{where}: the field has type {t.name}, not {TYPE_NAMES.get(code, code)}")
                return i
        if not add:
            raise TableError(f"{where}: the table has no such field")
        tp = BY_CODE.get(code)
        if tp is None:
            raise TableError(f"{where}: fields of type {TYPE_NAMES.get(code, code)} cannot be added")
        self.cols.append((name, tp, False))
        return len(self.cols) - 1

    # -- entries ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.table.rows)

    def entry(self, key: Any) -> Row | None:
        return self.table.rows.get(key)

    def snapshot(self) -> list[Row]:
        return list(self.table.rows.values())

    def create(self) -> Row:
        row: Row = self.table.row()
        return row

    def add(self, key: Any, row: Row) -> Row:
        self.table[key] = row
        return row

    def erase(self, key: Any) -> bool:
        if key not in self.table.rows:
            raise TableError(f"table {self.table.name} has no entry {key!r}")
        del self.table.rows[key]
        return True

    def clear(self) -> None:
        self.table.rows.clear()

    def read(self, row: Row, index: int) -> Any:
        name, tp, _ = self.cols[index]
        if index < self.nstatic:
            value = getattr(row, name)
        else:
            extra = row._extra
            value = extra[index - self.nstatic] if extra is not None and index - self.nstatic < len(extra) else None
            if value is None:
                value = "" if tp is STRING else False if tp.py is bool else 0
        tp.check(value, f"table {self.table.name} field {name}")
        if tp is STRING:
            # The host reads a C string: the row keeps its bytes until the value changes.
            kept = row._cstr
            if kept is None:
                kept = row._cstr = {}
            cached = kept.get(index)
            if cached is None or cached[0] is not value:
                cached = kept[index] = (value, value.encode())
            return cached[1]
        return value

    def write(self, row: Row, index: int, value: Any) -> None:
        name, tp, read_only = self.cols[index]
        if read_only:
            raise TableError(f"table {self.table.name} field {name} is read-only")
        tp.check(value, f"table {self.table.name} field {name}")
        if index < self.nstatic:
            object.__setattr__(row, name, value)
            return
        if row._extra is None:
            row._extra = []
        extra = row._extra
        while len(extra) <= index - self.nstatic:
            extra.append(None)
        extra[index - self.nstatic] = value

    def log_error(self, message: str) -> None:
        self.log.error("%s", message)
