"""State tables in the Python host, offered to plugins through the C vtables.

:class:`TableRegistry` is what libsinsp's table registry is to its plugins:
the host's own tables (generic typed :class:`HostTable`\\ s, e.g. the
``threads`` table of :func:`threads_table` with libsinsp's field names, types
and subtables) and the tables plugins export (``add_table``), reached by
every plugin of the host through one set of vtables (cffi callbacks).

As in libsinsp, the table pointer a plugin receives is a per-plugin
*accessor* of the table (:class:`_TableRef`), so the vtable functions, which
get no owner argument, know whom to report an error to
(``get_owner_last_error``). Owners are the raw layer's states
(:class:`falco_plugin_tools.host.raw.State`), whose handle is the owner
pointer. Entries and fields of host tables are cffi handles of Python
objects; those of exported tables pass through to the exporting plugin's own
vtables untouched.

The registry also checks what libsinsp relies on: every entry a plugin
obtains during a call is released by the end of it
(:attr:`TableRegistry.violations` lists the offenders).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from falco_plugin_tools.host._ffi import Rc, ffi, text_of

if TYPE_CHECKING:
    from falco_plugin_tools.host.raw import State

__all__ = [
    "ST",
    "FieldDef",
    "HostEntry",
    "HostTable",
    "TableRegistry",
    "TableSchema",
    "feed_thread",
    "sync_threads",
    "threads_table",
]

ST = {
    "int8": 1,
    "int16": 2,
    "int32": 3,
    "int64": 4,
    "uint8": 5,
    "uint16": 6,
    "uint32": 7,
    "uint64": 8,
    "string": 9,
    "table": 10,
    "bool": 25,
}
"""``ss_plugin_state_type`` codes by name."""
ST_NAME = {v: k for k, v in ST.items()}
_UNION = {1: "s8", 2: "s16", 3: "s32", 4: "s64", 5: "u8", 6: "u16", 7: "u32", 8: "u64", 25: "b"}
_LIMITS = {1: (-(2**7), 2**7 - 1), 2: (-(2**15), 2**15 - 1), 3: (-(2**31), 2**31 - 1), 4: (-(2**63), 2**63 - 1)}


def _zero(code: int) -> Any:
    return "" if code == ST["string"] else False if code == ST["bool"] else 0


@dataclass
class FieldDef:
    """One field of a table schema."""

    name: str
    type: int
    read_only: bool = False
    dynamic: bool = False
    subtable: TableSchema | None = None
    """For table-typed fields: the schema of each entry's subtable."""
    index: int = 0
    handle: Any = None
    table: str = ""
    """The name of the schema the field belongs to (set by :class:`TableSchema`)."""


@dataclass
class TableSchema:
    """The fields of a kind of table, shared by every table of that kind (so
    that fields found or added through one subtable apply to all)."""

    name: str
    key_type: int
    fields: list[FieldDef] = field(default_factory=list)

    def __post_init__(self) -> None:
        for i, f in enumerate(self.fields):
            f.index = i
            f.table = self.name
            f.handle = ffi.new_handle(f)

    def find(self, name: str) -> FieldDef | None:
        return next((f for f in self.fields if f.name == name), None)

    def add(self, name: str, type_: int) -> FieldDef:
        f = FieldDef(name, type_, dynamic=True, index=len(self.fields), table=self.name)
        f.handle = ffi.new_handle(f)
        self.fields.append(f)
        return f


class HostEntry:
    """An entry of a host table: one value per schema field (subtables made on first use)."""

    def __init__(self, table: HostTable) -> None:
        self.table = table
        self.values: dict[int, Any] = {}
        self.cstr: dict[int, Any] = {}
        self.handle = ffi.new_handle(self)

    def get(self, f: FieldDef) -> Any:
        if f.index not in self.values:
            if f.subtable is not None:
                self.values[f.index] = HostTable(f.subtable, name=f"{self.table.name}.{f.name}")
            else:
                return _zero(f.type)
        return self.values[f.index]

    def __getitem__(self, name: str) -> Any:
        f = self.table.schema.find(name)
        if f is None:
            raise KeyError(f"table {self.table.name} has no field {name}")
        return self.get(f)

    def __setitem__(self, name: str, value: Any) -> None:
        f = self.table.schema.find(name)
        if f is None:
            raise KeyError(f"table {self.table.name} has no field {name}")
        self.values[f.index] = value

    def __repr__(self) -> str:
        vals = {f.name: self.values[f.index] for f in self.table.schema.fields if f.index in self.values}
        return f"HostEntry({self.table.name}, {vals})"


class HostTable:
    """A table owned by the host: key -> :class:`HostEntry`."""

    def __init__(self, schema: TableSchema, name: str | None = None) -> None:
        self.schema = schema
        self.name = name or schema.name
        self.entries: dict[Any, HostEntry] = {}

    @property
    def key_type(self) -> int:
        return self.schema.key_type

    def new_entry(self) -> HostEntry:
        return HostEntry(self)

    def add(self, key: Any, **values: Any) -> HostEntry:
        """Insert (or replace) the entry ``key`` with ``values`` by field name (host side)."""
        entry = HostEntry(self)
        for k, v in values.items():
            entry[k] = v
        self.entries[key] = entry
        return entry

    def __getitem__(self, key: Any) -> HostEntry:
        return self.entries[key]

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)


def _schema(name: str, key: str, fields: Iterable[tuple[str, str] | tuple[str, str, bool]]) -> TableSchema:
    defs = [FieldDef(f[0], ST[f[1]], read_only=bool(f[2]) if len(f) > 2 else False) for f in fields]  # type: ignore[misc]
    return TableSchema(name, ST[key], defs)


def threads_table() -> HostTable:
    """libsinsp's ``threads`` table (libs 0.25): int64 tid keys, the static
    fields of ``sinsp_threadinfo`` in its order, and the ``args``, ``env``,
    ``cgroups`` and ``file_descriptors`` subtables (all read-only fields of
    the thread). Fill it with :meth:`HostTable.add`, or from the thread state
    of a capture (``host/threads.py``) with :func:`feed_thread` / :func:`sync_threads`."""
    args = _schema("args", "uint64", [("value", "string")])
    env = _schema("env", "uint64", [("value", "string")])
    cgroups = _schema("cgroups", "uint64", [("first", "string"), ("second", "string")])
    fds = _schema(
        "file_descriptors",
        "int64",
        [
            ("type", "uint8"),
            ("open_flags", "uint32"),
            ("name", "string"),
            ("name_raw", "string"),
            ("old_name", "string"),
            ("flags", "uint32"),
            ("dev", "uint32"),
            ("mount_id", "uint32"),
            ("ino", "uint64"),
            ("pid", "int64"),
            ("fd", "int64"),
        ],
    )
    schema = _schema(
        "threads",
        "int64",
        [
            ("tid", "int64"),
            ("pid", "int64"),
            ("ptid", "int64"),
            ("reaper_tid", "int64"),
            ("sid", "int64"),
            ("comm", "string"),
            ("exe", "string"),
            ("exe_path", "string"),
            ("exe_writable", "bool"),
            ("exe_upper_layer", "bool"),
            ("exe_lower_layer", "bool"),
            ("exe_from_memfd", "bool"),
            ("args", "table", True),
            ("env", "table", True),
            ("cgroups", "table", True),
            ("flags", "uint32"),
            ("fd_limit", "int64"),
            ("uid", "uint32"),
            ("gid", "uint32"),
            ("loginuid", "uint32"),
            ("exe_ino", "uint64"),
            ("exe_ino_ctime", "uint64"),
            ("exe_ino_mtime", "uint64"),
            ("vtid", "int64"),
            ("vpid", "int64"),
            ("vpgid", "int64"),
            ("pgid", "int64"),
            ("pidns_init_start_ts", "uint64"),
            ("root", "string"),
            ("tty", "uint32"),
            ("file_descriptors", "table", True),
            ("cwd", "string", True),
        ],
    )
    for f in schema.fields:
        f.subtable = {"args": args, "env": env, "cgroups": cgroups, "file_descriptors": fds}.get(f.name)
    return HostTable(schema)


_THREAD_FIELDS = ("tid", "pid", "ptid", "reaper_tid", "comm", "exe", "exe_path", "uid", "gid", "vtid", "vpid", "flags")


def feed_thread(table: HostTable, thread: Any) -> HostEntry:
    """Bring the ``threads`` entry of ``thread`` (a :class:`falco_plugin_tools.host.threads.ThreadInfo`)
    up to date: its static fields and subtables are replaced, the fields plugins added are kept."""
    entry = table.entries.get(thread.tid)
    if entry is None:
        entry = table.entries[thread.tid] = HostEntry(table)
    for name in _THREAD_FIELDS:
        value = getattr(thread, name)
        entry[name] = value & 0xFFFFFFFF if name in ("uid", "gid", "flags") else value
    entry["cwd"] = thread.cwd
    for name, values in (("args", thread.args), ("env", thread.env)):
        sub = entry[name]
        sub.entries.clear()
        for i, v in enumerate(values):
            sub.add(i, value=v)
    cgroups = entry["cgroups"]
    cgroups.entries.clear()
    for i, c in enumerate(thread.cgroups):
        subsys, _, path = c.partition("=")
        cgroups.add(i, first=subsys, second=path)
    return entry


def sync_threads(table: HostTable, threads: Any) -> None:
    """Make ``table`` hold the threads of ``threads`` (a :class:`falco_plugin_tools.host.threads.ThreadTable`):
    new ones added, gone ones removed, the others fed with :func:`feed_thread`."""
    live = threads.threads
    for tid in [t for t in table.entries if t not in live]:
        del table.entries[tid]
    for thread in live.values():
        feed_thread(table, thread)


# -- the registry and its vtables -------------------------------------------------


class _Foreign:
    """A table a plugin exported: calls go to its own vtables."""

    def __init__(self, inp: Any, owner: State) -> None:
        self.name = text_of(inp.name)
        self.key_type = int(inp.key_type)
        self.ptr = inp.table
        self.r = inp.reader_ext
        self.w = inp.writer_ext
        self.f = inp.fields_ext
        self.owner = owner


class _TableRef:
    """What one plugin holds for one table: the table, and whom errors go to."""

    def __init__(self, table: HostTable | _Foreign, owner: State) -> None:
        self.table = table
        self.owner = owner
        self.handle = ffi.new_handle(self)
        self.name_c = ffi.new("char[]", table.name.encode())


class TableRegistry:
    """The tables of one host, shared by all its plugins (pass it to ``init``)."""

    def __init__(self, *tables: HostTable) -> None:
        self.tables: dict[str, HostTable | _Foreign] = {t.name: t for t in tables}
        self.violations: list[str] = []
        self._refs: dict[tuple[int, int], _TableRef] = {}
        self._refs_of: dict[int, list[tuple[int, int]]] = {}  # id(table) -> its keys in _refs
        # Address -> object, for what a plugin may hand back: table accessors and fields (a few per
        # table and plugin), entries only while handed out (held, created, or in an iteration).
        self._live: dict[int, Any] = {}
        self._held: dict[int, int] = {}  # entry address -> outstanding get_table_entry count (> 0 only)
        self._info: Any = None
        self._info_keep: list[Any] = []
        self._build_vtables()

    def forget(self, owner: State) -> None:
        """Drop the tables ``owner`` exported and its accessors (its state is going away)."""
        for name, t in list(self.tables.items()):
            if isinstance(t, _Foreign) and t.owner is owner:
                del self.tables[name]
        for key, ref in list(self._refs.items()):
            if ref.owner is owner or (isinstance(ref.table, _Foreign) and ref.table.owner is owner):
                del self._refs[key]
                self._live.pop(_addr(ref.handle), None)
                keys = self._refs_of.get(key[0])
                if keys is not None and key in keys:
                    keys.remove(key)

    def forget_entry(self, entry: HostEntry) -> None:
        """``entry`` left its table for good (an exited thread): drop the accessors plugins were given
        of its subtables, so that nothing the registry keeps grows with the entries a capture ever had.
        A plugin that kept such a pointer gets a failure, never a stale table."""
        for value in entry.values.values():
            if isinstance(value, HostTable):
                for sub in value.entries.values():
                    self.forget_entry(sub)
                for key in self._refs_of.pop(id(value), []):
                    ref = self._refs.pop(key, None)
                    if ref is not None:
                        self._live.pop(_addr(ref.handle), None)

    @property
    def handed_out(self) -> int:
        """How many objects plugins may still hand back (accessors, fields, entries): bounded by what
        is live, never by the history of the capture."""
        return len(self._live)

    def add(self, table: HostTable) -> HostTable:
        self.tables[table.name] = table
        return table

    def __getitem__(self, name: str) -> HostTable:
        t = self.tables[name]
        if not isinstance(t, HostTable):
            raise KeyError(f"{name} is a table exported by plugin {_name(t.owner)}")
        return t

    # -- plumbing ----------------------------------------------------------------

    def _ref(self, table: HostTable | _Foreign, owner: State) -> _TableRef:
        key = (id(table), id(owner))
        ref = self._refs.get(key)
        if ref is None:
            ref = self._refs[key] = _TableRef(table, owner)
            self._refs_of.setdefault(key[0], []).append(key)
            self._live[_addr(ref.handle)] = ref
        return ref

    def _obj(self, ptr: Any) -> Any:
        return self._live.get(_addr(ptr))

    def _give_entry(self, entry: HostEntry) -> Any:
        a = _addr(entry.handle)
        self._live[a] = entry
        self._held[a] = self._held.get(a, 0) + 1
        return entry.handle

    def _let_go(self, a: int) -> None:
        """The entry at ``a`` is no longer handed out: forget its address."""
        self._held.pop(a, None)
        self._live.pop(a, None)

    def check_released(self, owner: State, call: str) -> None:
        """Record every entry still held when a plugin's call returns (only those are looked at)."""
        if not self._held:
            return
        for a in list(self._held):
            entry = self._live.get(a)
            name = entry.table.name if isinstance(entry, HostEntry) else "?"
            self.violations.append(f"{_name(owner)}: {call} returned holding an entry of table {name}")
            self._let_go(a)

    def init_input(self) -> Any:
        """The ``ss_plugin_init_tables_input`` (the registry keeps it alive)."""
        return self._init

    @property
    def reader_ext(self) -> Any:
        return self._reader

    @property
    def writer_ext(self) -> Any:
        return self._writer

    def _fail(self, ref: _TableRef | None, message: str) -> None:
        if ref is not None:
            ref.owner.set_owner_error(message)

    def _build_vtables(self) -> None:
        cb = _callbacks(self)
        self._cb = cb  # keep the cffi callbacks alive
        self._reader = ffi.new("ss_plugin_table_reader_vtable_ext *")
        self._writer = ffi.new("ss_plugin_table_writer_vtable_ext *")
        self._fields = ffi.new("ss_plugin_table_fields_vtable_ext *")
        for name in ("get_table_name", "get_table_size", "get_table_entry", "read_entry_field"):
            setattr(self._reader, name, cb[name])
        self._reader.release_table_entry = cb["release_table_entry"]
        self._reader.iterate_entries = cb["iterate_entries"]
        for name in (
            "clear_table",
            "erase_table_entry",
            "create_table_entry",
            "destroy_table_entry",
            "add_table_entry",
            "write_entry_field",
        ):
            setattr(self._writer, name, cb[name])
        for name in ("list_table_fields", "get_table_field", "add_table_field"):
            setattr(self._fields, name, cb[name])
        self._init = ffi.new("ss_plugin_init_tables_input *")
        self._init.list_tables = cb["list_tables"]
        self._init.get_table = cb["get_table"]
        self._init.add_table = cb["add_table"]
        for name in ("list_table_fields", "get_table_field", "add_table_field"):
            setattr(self._init.fields, name, cb[name])
        self._init.fields_ext = self._fields
        self._init.reader_ext = self._reader
        self._init.writer_ext = self._writer


def _name(owner: State) -> str:
    return owner.library.name


def _addr(ptr: Any) -> int:
    return int(ffi.cast("uintptr_t", ptr))


def _to_py(code: int, data: Any) -> Any:
    if code == ST["string"]:
        return text_of(data.str)
    if code == ST["bool"]:
        return bool(data.b)
    return int(getattr(data, _UNION[code]))


def _check_value(code: int, value: Any) -> str | None:
    if code == ST["string"]:
        return None if isinstance(value, str) else "expected a string"
    if code == ST["bool"]:
        return None
    # Not _LIMITS.get(code, default): the unsigned default would be computed (a negative shift) for signed codes.
    lo, hi = _LIMITS[code] if code in _LIMITS else (0, 2 ** (8 << (code - 5)) - 1)
    return None if lo <= int(value) <= hi else f"{value} does not fit in {ST_NAME[code]}"


def _callbacks(reg: TableRegistry) -> dict[str, Any]:
    """The vtable functions, as cffi callbacks closed over ``reg``. A Python
    error inside one is a host bug: it becomes a failure result, recorded."""

    def guard(default: Any) -> Callable[..., Any]:
        def on_error(exc_type: Any, exc: Any, tb: Any) -> Any:
            reg.violations.append(f"host table callback raised {exc_type.__name__}: {exc}")
            return default

        return on_error

    def ref_of(t: Any) -> _TableRef | None:
        obj = reg._obj(t)
        return obj if isinstance(obj, _TableRef) else None

    def owner_of(o: Any) -> State:
        return ffi.from_handle(o)  # type: ignore[no-any-return]

    # -- init-time -------------------------------------------------------------

    def list_tables(o: Any, n: Any) -> Any:
        names = list(reg.tables.values())
        arr = ffi.new("ss_plugin_table_info[]", max(len(names), 1))
        keep = [arr]
        for i, t in enumerate(names):
            c = ffi.new("char[]", t.name.encode())
            keep.append(c)
            arr[i].name = c
            arr[i].key_type = t.key_type
        reg._info_keep = keep
        n[0] = len(names)
        return arr

    def get_table(o: Any, name: Any, key_type: int) -> Any:
        owner = owner_of(o)
        tname = text_of(name)
        table = reg.tables.get(tname)
        if table is None:
            owner.set_owner_error(f"table '{tname}' does not exist")
            return ffi.NULL
        if table.key_type != key_type:
            owner.set_owner_error(
                f"table '{tname}' has key type {ST_NAME.get(table.key_type)}, not {ST_NAME.get(key_type, key_type)}"
            )
            return ffi.NULL
        return reg._ref(table, owner).handle

    def add_table(o: Any, inp: Any) -> int:
        owner = owner_of(o)
        if inp == ffi.NULL or inp.name == ffi.NULL or inp.reader_ext == ffi.NULL or inp.fields_ext == ffi.NULL:
            owner.set_owner_error("add_table: incomplete table input")
            return Rc.FAILURE
        name = text_of(inp.name)
        if name in reg.tables:
            owner.set_owner_error(f"table '{name}' already exists")
            return Rc.FAILURE
        reg.tables[name] = _Foreign(inp, owner)
        return Rc.SUCCESS

    # -- fields ------------------------------------------------------------------

    def list_table_fields(t: Any, n: Any) -> Any:
        ref = ref_of(t)
        if ref is None:
            n[0] = 0
            return ffi.NULL
        if isinstance(ref.table, _Foreign):
            return ref.table.f.list_table_fields(ref.table.ptr, n)
        fields = ref.table.schema.fields
        arr = ffi.new("ss_plugin_table_fieldinfo[]", max(len(fields), 1))
        keep = [arr]
        for i, f in enumerate(fields):
            c = ffi.new("char[]", f.name.encode())
            keep.append(c)
            arr[i].name = c
            arr[i].field_type = f.type
            arr[i].read_only = int(f.read_only)
        ref.fieldinfo = keep  # type: ignore[attr-defined]
        n[0] = len(fields)
        return arr

    def get_or_add_field(t: Any, name: Any, type_: int, add: bool) -> Any:
        ref = ref_of(t)
        if ref is None:
            return ffi.NULL
        if isinstance(ref.table, _Foreign):
            fn = ref.table.f.add_table_field if add else ref.table.f.get_table_field
            got = fn(ref.table.ptr, name, type_)
            if got == ffi.NULL:
                reg._fail(ref, f"table '{ref.table.name}': its owner refused field '{text_of(name)}'")
            return got
        fname = text_of(name)
        f = ref.table.schema.find(fname)
        if f is None:
            if not add:
                reg._fail(ref, f"undefined field '{fname}' in table '{ref.table.name}'")
                return ffi.NULL
            if type_ not in ST_NAME or type_ == ST["table"]:
                reg._fail(ref, f"cannot add field '{fname}' of type {type_} to table '{ref.table.name}'")
                return ffi.NULL
            f = ref.table.schema.add(fname, type_)
        elif f.type != type_:
            reg._fail(
                ref,
                f"incompatible data types for field '{fname}' of table '{ref.table.name}': "
                f"{ST_NAME.get(type_, type_)} requested, {ST_NAME[f.type]} defined",
            )
            return ffi.NULL
        reg._live[_addr(f.handle)] = f
        return f.handle

    def get_table_field(t: Any, name: Any, type_: int) -> Any:
        return get_or_add_field(t, name, type_, False)

    def add_table_field(t: Any, name: Any, type_: int) -> Any:
        return get_or_add_field(t, name, type_, True)

    # -- reading -----------------------------------------------------------------

    def get_table_name(t: Any) -> Any:
        ref = ref_of(t)
        return ref.name_c if ref is not None else ffi.NULL

    def get_table_size(t: Any) -> int:
        ref = ref_of(t)
        if ref is None:
            return 0
        if isinstance(ref.table, _Foreign):
            return int(ref.table.r.get_table_size(ref.table.ptr))
        return len(ref.table.entries)

    def key_of(ref: _TableRef, key: Any) -> Any:
        return _to_py(ref.table.key_type, key)

    def get_table_entry(t: Any, key: Any) -> Any:
        ref = ref_of(t)
        if ref is None:
            return ffi.NULL
        if isinstance(ref.table, _Foreign):
            e = ref.table.r.get_table_entry(ref.table.ptr, key)
            if e == ffi.NULL:
                reg._fail(ref, f"table '{ref.table.name}': no entry")
            return e
        k = key_of(ref, key)
        entry = ref.table.entries.get(k)
        if entry is None:
            reg._fail(ref, f"table '{ref.table.name}' has no entry {k!r}")
            return ffi.NULL
        return reg._give_entry(entry)

    def own_entry_field(ref: _TableRef, e: Any, f: Any, op: str) -> tuple[HostEntry, FieldDef] | None:
        """The entry and field ``op`` was handed, when they belong to ``ref``'s table. libsinsp would
        read a field of another table at that field's offset in the entry (garbage, or a crash): refuse it."""
        entry, fd, table = reg._obj(e), reg._obj(f), ref.table
        if not (isinstance(table, HostTable) and isinstance(entry, HostEntry) and isinstance(fd, FieldDef)):
            reg._fail(ref, f"{op}: invalid entry or field for table '{ref.table.name}'")
            return None
        if entry.table.schema is not table.schema:
            reg._fail(ref, f"{op}: the entry belongs to table '{entry.table.name}', not to table '{table.name}'")
            return None
        schema = table.schema
        if not (fd.index < len(schema.fields) and schema.fields[fd.index] is fd):
            reg._fail(
                ref,
                f"{op}: field '{fd.name}' belongs to table '{fd.table}', not to table '{table.name}' of the entry",
            )
            return None
        return entry, fd

    def read_entry_field(t: Any, e: Any, f: Any, out: Any) -> int:
        ref = ref_of(t)
        if ref is None:
            return Rc.FAILURE
        if isinstance(ref.table, _Foreign):
            rc = int(ref.table.r.read_entry_field(ref.table.ptr, e, f, out))
            if rc != Rc.SUCCESS:
                reg._fail(ref, f"table '{ref.table.name}' of plugin {_name(ref.table.owner)}: read failed")
            return rc
        found = own_entry_field(ref, e, f, "read_entry_field")
        if found is None:
            return Rc.FAILURE
        entry, fd = found
        value = entry.get(fd)
        if fd.type == ST["table"]:
            out.table = reg._ref(value, ref.owner).handle
        elif fd.type == ST["string"]:
            c = entry.cstr.get(fd.index)
            if c is None or c[0] != value:
                c = (value, ffi.new("char[]", str(value).encode()))
                entry.cstr[fd.index] = c
            out.str = c[1]
        elif fd.type == ST["bool"]:
            out.b = int(bool(value))
        else:
            setattr(out, _UNION[fd.type], int(value))
        return Rc.SUCCESS

    def release_table_entry(t: Any, e: Any) -> None:
        ref = ref_of(t)
        if ref is None:
            return
        if isinstance(ref.table, _Foreign):
            ref.table.r.release_table_entry(ref.table.ptr, e)
            return
        a = _addr(e)
        if reg._held.get(a, 0) <= 0:
            reg.violations.append(f"{_name(ref.owner)}: released an entry of table {ref.table.name} not held")
            return
        reg._held[a] -= 1
        if reg._held[a] == 0:
            reg._let_go(a)

    def iterate_entries(t: Any, it: Any, s: Any) -> int:
        ref = ref_of(t)
        if ref is None:
            return 0
        if isinstance(ref.table, _Foreign):
            return int(ref.table.r.iterate_entries(ref.table.ptr, it, s))
        for entry in list(ref.table.entries.values()):
            a = _addr(entry.handle)
            reg._live[a] = entry
            try:
                more = it(s, entry.handle)
            finally:
                if a not in reg._held:  # lent for the callback only
                    reg._live.pop(a, None)
            if not more:
                return 0
        return 1

    # -- writing -----------------------------------------------------------------

    def clear_table(t: Any) -> int:
        ref = ref_of(t)
        if ref is None:
            return Rc.FAILURE
        if isinstance(ref.table, _Foreign):
            return int(ref.table.w.clear_table(ref.table.ptr))
        ref.table.entries.clear()
        return Rc.SUCCESS

    def erase_table_entry(t: Any, key: Any) -> int:
        ref = ref_of(t)
        if ref is None:
            return Rc.FAILURE
        if isinstance(ref.table, _Foreign):
            rc = int(ref.table.w.erase_table_entry(ref.table.ptr, key))
            if rc != Rc.SUCCESS:
                reg._fail(ref, f"table '{ref.table.name}' of plugin {_name(ref.table.owner)}: erase failed")
            return rc
        k = key_of(ref, key)
        if ref.table.entries.pop(k, None) is None:
            reg._fail(ref, f"table '{ref.table.name}' has no entry {k!r}")
            return Rc.FAILURE
        return Rc.SUCCESS

    def create_table_entry(t: Any) -> Any:
        ref = ref_of(t)
        if ref is None:
            return ffi.NULL
        if isinstance(ref.table, _Foreign):
            return ref.table.w.create_table_entry(ref.table.ptr)
        entry = ref.table.new_entry()
        reg._live[_addr(entry.handle)] = entry
        return entry.handle

    def destroy_table_entry(t: Any, e: Any) -> None:
        ref = ref_of(t)
        if ref is None:
            return
        if isinstance(ref.table, _Foreign):
            ref.table.w.destroy_table_entry(ref.table.ptr, e)
            return
        reg._live.pop(_addr(e), None)

    def add_table_entry(t: Any, key: Any, e: Any) -> Any:
        ref = ref_of(t)
        if ref is None:
            return ffi.NULL
        if isinstance(ref.table, _Foreign):
            return ref.table.w.add_table_entry(ref.table.ptr, key, e)
        entry = reg._obj(e)
        if not isinstance(entry, HostEntry) or entry.table.schema is not ref.table.schema:
            reg._fail(ref, f"add_table_entry: not an entry created by table '{ref.table.name}'")
            return ffi.NULL
        entry.table = ref.table
        ref.table.entries[key_of(ref, key)] = entry
        return reg._give_entry(entry)

    def write_entry_field(t: Any, e: Any, f: Any, data: Any) -> int:
        ref = ref_of(t)
        if ref is None:
            return Rc.FAILURE
        if isinstance(ref.table, _Foreign):
            rc = int(ref.table.w.write_entry_field(ref.table.ptr, e, f, data))
            if rc != Rc.SUCCESS:
                reg._fail(ref, f"table '{ref.table.name}' of plugin {_name(ref.table.owner)}: write failed")
            return rc
        found = own_entry_field(ref, e, f, "write_entry_field")
        if found is None:
            return Rc.FAILURE
        entry, fd = found
        if fd.read_only:
            reg._fail(ref, f"attempt to write to read-only field '{fd.name}' of table '{ref.table.name}'")
            return Rc.FAILURE
        if fd.type == ST["table"]:
            reg._fail(ref, f"field '{fd.name}' of table '{ref.table.name}' is a table and cannot be written")
            return Rc.FAILURE
        value = _to_py(fd.type, data)
        problem = _check_value(fd.type, value)
        if problem:
            reg._fail(ref, f"field '{fd.name}' of table '{ref.table.name}': {problem}")
            return Rc.FAILURE
        entry.values[fd.index] = value
        return Rc.SUCCESS

    spec: dict[str, tuple[str, Callable[..., Any], Any]] = {
        "list_tables": ("ss_plugin_table_info *(ss_plugin_owner_t *, uint32_t *)", list_tables, ffi.NULL),
        "get_table": (
            "ss_plugin_table_t *(ss_plugin_owner_t *, const char *, ss_plugin_state_type)",
            get_table,
            ffi.NULL,
        ),
        "add_table": ("ss_plugin_rc(ss_plugin_owner_t *, const ss_plugin_table_input *)", add_table, Rc.FAILURE),
        "list_table_fields": (
            "const ss_plugin_table_fieldinfo *(ss_plugin_table_t *, uint32_t *)",
            list_table_fields,
            ffi.NULL,
        ),
        "get_table_field": (
            "ss_plugin_table_field_t *(ss_plugin_table_t *, const char *, ss_plugin_state_type)",
            get_table_field,
            ffi.NULL,
        ),
        "add_table_field": (
            "ss_plugin_table_field_t *(ss_plugin_table_t *, const char *, ss_plugin_state_type)",
            add_table_field,
            ffi.NULL,
        ),
        "get_table_name": ("const char *(ss_plugin_table_t *)", get_table_name, ffi.NULL),
        "get_table_size": ("uint64_t(ss_plugin_table_t *)", get_table_size, 0),
        "get_table_entry": (
            "ss_plugin_table_entry_t *(ss_plugin_table_t *, const ss_plugin_state_data *)",
            get_table_entry,
            ffi.NULL,
        ),
        "read_entry_field": (
            "ss_plugin_rc(ss_plugin_table_t *, ss_plugin_table_entry_t *, const ss_plugin_table_field_t *, "
            "ss_plugin_state_data *)",
            read_entry_field,
            Rc.FAILURE,
        ),
        "release_table_entry": ("void(ss_plugin_table_t *, ss_plugin_table_entry_t *)", release_table_entry, None),
        "iterate_entries": (
            "ss_plugin_bool(ss_plugin_table_t *, ss_plugin_table_iterator_func_t, ss_plugin_table_iterator_state_t *)",
            iterate_entries,
            0,
        ),
        "clear_table": ("ss_plugin_rc(ss_plugin_table_t *)", clear_table, Rc.FAILURE),
        "erase_table_entry": (
            "ss_plugin_rc(ss_plugin_table_t *, const ss_plugin_state_data *)",
            erase_table_entry,
            Rc.FAILURE,
        ),
        "create_table_entry": ("ss_plugin_table_entry_t *(ss_plugin_table_t *)", create_table_entry, ffi.NULL),
        "destroy_table_entry": ("void(ss_plugin_table_t *, ss_plugin_table_entry_t *)", destroy_table_entry, None),
        "add_table_entry": (
            "ss_plugin_table_entry_t *(ss_plugin_table_t *, const ss_plugin_state_data *, ss_plugin_table_entry_t *)",
            add_table_entry,
            ffi.NULL,
        ),
        "write_entry_field": (
            "ss_plugin_rc(ss_plugin_table_t *, ss_plugin_table_entry_t *, const ss_plugin_table_field_t *, "
            "const ss_plugin_state_data *)",
            write_entry_field,
            Rc.FAILURE,
        ),
    }
    out: dict[str, Any] = {}
    for name, (sig, fn, default) in spec.items():
        if default is None or (not isinstance(default, int) and default == ffi.NULL):
            out[name] = ffi.callback(sig, fn, onerror=guard(None))
        else:
            out[name] = ffi.callback(sig, fn, error=int(default), onerror=guard(int(default)))
    return out
