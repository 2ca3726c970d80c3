"""State tables, event parsing and capture listening, in the SDK's Python host.

The host's ``threads`` table (libsinsp's fields and subtables) and the tables
plugins export are offered through the C vtables (``falco_plugin_tools.host.tables``);
the fixture plugins ``tables_parse``, ``tables_export`` and ``tables_reader``
use every table operation, and make each mistake on request (``misuse``).
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import pytest
from falco_plugin import (
    ALL_EVENTS,
    ALL_SOURCES,
    INT8,
    STRING,
    UINT8,
    UINT16,
    Event,
    ExtractPlugin,
    ParsePlugin,
    PluginTable,
    Row,
    SpecError,
    TableError,
    field,
)
from falco_plugin._internal.spec import resolve
from falco_plugin_tools.abi import HEADER as ABI_HEADER
from falco_plugin_tools.build import build_plugin
from falco_plugin_tools.host import HostError, HostEvent, PluginHandle, PluginLibrary
from falco_plugin_tools.host.routines import RoutinePool
from falco_plugin_tools.host.tables import HostTable, TableRegistry, threads_table
from harness import REPO, Built

HEADER = struct.Struct("<QQIHI")
PPME_SYSCALL_OPEN_X = 3


# Every event gets a new number, as from a real host: the SDK takes an event
# with the number and address of the previous one for that same event.
_numbers = itertools.count(1)


def syscall_event(tid: int, etype: int = PPME_SYSCALL_OPEN_X) -> HostEvent:
    return HostEvent(HEADER.pack(1, tid, HEADER.size, etype, 0), num=next(_numbers), source="syscall")


def plugin_event(payload: bytes, tid: int, source: str = "fxt") -> HostEvent:
    head = HEADER.pack(1, tid, 38 + len(payload), 322, 2)
    return HostEvent(head + struct.pack("<III", 4, len(payload), 999) + payload, num=next(_numbers), source=source)


@pytest.fixture
def registry() -> TableRegistry:
    reg = TableRegistry(threads_table())
    bash = reg["threads"].add(42, tid=42, pid=42, comm="bash", cwd="/home")
    bash["file_descriptors"].add(3, name="/etc/passwd", fd=3)
    bash["args"].add(0, value="-c")
    bash["args"].add(1, value="ls")
    return reg


@pytest.fixture
def libs(built: Built) -> Iterator[Callable[[str], PluginLibrary]]:
    opened: dict[str, PluginLibrary] = {}

    def get(name: str) -> PluginLibrary:
        if name not in opened:
            opened[name] = PluginLibrary.load(built(name).library)
        return opened[name]

    yield get
    for lib in opened.values():
        lib.close()


def tables_plugin(libs: Callable[[str], PluginLibrary], reg: TableRegistry, misuse: str = "") -> PluginHandle:
    return libs("tables_parse").init(json.dumps({"misuse": misuse}), tables=reg)


# -- the host's tables ------------------------------------------------------------


def test_a_parser_adds_columns_to_threads_and_fills_them(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry
) -> None:
    p = tables_plugin(libs, registry)
    ev = syscall_event(42)
    assert p.parse(ev) and p.parse(ev)
    bash = registry["threads"][42]
    assert bash["fxt.count"] == 2 and bash["fxt.tag"] == "bash#2" and bash["fxt.flag"] is True
    assert [f.name for f in registry["threads"].schema.fields[-3:]] == ["fxt.count", "fxt.tag", "fxt.flag"]
    # The entry obtained with `with` and the others were all given back.
    assert bash["file_descriptors"][3]["fxt.seen"] is True
    assert registry.violations == []


def test_fields_read_the_tables_during_extraction(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry
) -> None:
    p = tables_plugin(libs, registry)
    ev = syscall_event(42)
    p.parse(ev)
    assert p.extract_many(ev, ["fxt.count", "fxt.tag", "fxt.comm", "fxt.fdnames", "fxt.args", "fxt.tables"]) == {
        "fxt.count": 1,
        "fxt.tag": "bash#1",
        "fxt.comm": "bash",
        "fxt.fdnames": ["/etc/passwd"],
        "fxt.args": ["-c", "ls"],
        "fxt.tables": "threads",
    }
    assert p.extract(syscall_event(7), "fxt.count") is None  # no such thread
    assert registry.violations == []


def test_subtable_entries_are_created_added_and_erased(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry
) -> None:
    fds = registry["threads"][42]["file_descriptors"]
    tables_plugin(libs, registry, "fd_add").parse(syscall_event(42))
    assert fds[101]["name"] == "made by fxt_tables"
    tables_plugin(libs, registry, "fd_erase").parse(syscall_event(42))
    assert 3 not in fds
    assert registry.violations == []


def test_a_host_with_no_tables_gets_a_precise_init_error(libs: Callable[[str], PluginLibrary]) -> None:
    with pytest.raises(HostError, match="the host offers no state tables to this plugin"):
        libs("tables_parse").init("{}")


@pytest.mark.parametrize(
    ("misuse", "message"),
    [
        (
            "unknown_table",
            "opening table no_such_table with int64 keys: the host has no table of that name (it has: threads)",
        ),
        ("wrong_key", "opening table threads with string keys: the table's keys are int64"),
        ("unknown_field", "getting field no_such_field of table threads: the table has no such field"),
        ("wrong_type", "getting field comm of table threads: the field has type string, not int64"),
        ("int_no_width", "an integer field needs an explicit width: INT8..INT64 or UINT8..UINT64"),
        ("add_conflict", "adding field comm of table threads: the field has type string, not uint64"),
    ],
)
def test_init_time_misuse_names_the_table_and_field(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry, misuse: str, message: str
) -> None:
    with pytest.raises(HostError) as err:
        tables_plugin(libs, registry, misuse)
    assert str(err.value) == f"could not initialize plugin: init: {message}"
    assert registry.violations == []  # the temporary subtable entries were destroyed


@pytest.mark.parametrize(
    ("misuse", "message"),
    [
        (
            "field_outside_init",
            "getting field comm of table threads: tables and field accessors can only be obtained during init",
        ),
        ("missing_entry", "table threads has no entry 999999"),
        ("write_readonly", "writing field cwd of table threads: the field is read-only"),
        ("bad_value", "writing field fxt.count of table threads: expected uint64, got str"),
        ("overflow", "writing field fxt.count of table threads: -1 does not fit in uint64"),
        ("released", "reading table threads: the entry was released"),
        (
            "foreign_read",
            "reading field name of table threads.file_descriptors: the entry belongs to table threads; use an "
            "accessor obtained from table threads",
        ),
        (
            "foreign_write",
            "writing field name of table threads.file_descriptors: the entry belongs to table threads; use an "
            "accessor obtained from table threads",
        ),
        ("fd_add_twice", "adding to table threads.file_descriptors: the entry was not made by this table's create()"),
        (
            "erase_in_for_each",
            "erasing from table threads.file_descriptors: not while for_each iterates it (collect the keys in the "
            "callback, then change the table after for_each returns)",
        ),
        ("raise_in_for_each", "ValueError: the callback gives up"),
    ],
)
def test_parse_time_misuse_fails_the_call_with_a_precise_error(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry, misuse: str, message: str
) -> None:
    p = tables_plugin(libs, registry, misuse)
    with pytest.raises(HostError) as err:
        p.parse(syscall_event(42))
    assert str(err.value).startswith(f"cannot parse event with plugin fxt_tables: parse_event: {message}")
    assert registry.violations == []  # entries are given back even when the call fails


def test_an_entry_kept_past_its_call_is_refused(libs: Callable[[str], PluginLibrary], registry: TableRegistry) -> None:
    p = tables_plugin(libs, registry, "use_kept")
    p.parse(syscall_event(42))
    with pytest.raises(HostError, match="the entry was obtained in an earlier host call"):
        p.parse(syscall_event(42))


def test_extraction_may_only_read(libs: Callable[[str], PluginLibrary], registry: TableRegistry) -> None:
    p = tables_plugin(libs, registry, "write_in_extract")
    with pytest.raises(Exception, match=r"writing field fxt\.count of table threads: extract_fields may only read"):
        p.extract(syscall_event(42), "fxt.count")


# -- tables a plugin exports -------------------------------------------------------


def test_a_table_exported_by_one_plugin_is_used_by_another(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry
) -> None:
    exporter = libs("tables_export").init("", tables=registry)
    reader = libs("tables_reader").init("", tables=registry)
    assert "fxt_procs" in registry.tables
    ev = plugin_event(b"hello", tid=7)
    assert exporter.parse(ev) and reader.parse(ev)
    assert reader.extract_many(ev, ["reader.count", "reader.name", "reader.note", "reader.flag", "reader.size"]) == {
        "reader.count": 2,
        "reader.name": "hello",
        "reader.note": "seen 2",  # a column the reader added to the exporter's table
        "reader.flag": True,  # written by the reader into the exporter's own column
        "reader.size": 1,
    }
    # The reader creates a row in the other plugin's table.
    other = plugin_event(b"", tid=8)
    reader.parse(other)
    assert reader.extract_many(other, ["reader.name", "reader.count", "reader.size"]) == {
        "reader.name": "made by reader",
        "reader.count": 0,
        "reader.size": 2,
    }
    assert registry.violations == []


def test_another_plugin_iterates_erases_and_clears_an_exported_table(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry
) -> None:
    exporter = libs("tables_export").init("", tables=registry)
    reader = libs("tables_reader").init("", tables=registry)
    for tid, name in ((1, b"one"), (2, b"two")):
        exporter.parse(plugin_event(name, tid=tid))
    ev = plugin_event(b"", tid=1)
    assert reader.extract(ev, "reader.names") == ["one", "seven", "two"]
    reader.parse(plugin_event(b"erase", tid=2))
    assert reader.extract(ev, "reader.names") == ["one", "seven"]
    with pytest.raises(HostError, match="erasing entry 2 of table fxt_procs: table 'fxt_procs' of plugin fxt_export"):
        reader.parse(plugin_event(b"erase", tid=2))
    assert any("table fxt_procs has no entry 2" in r.message for r in exporter.logs)
    reader.parse(plugin_event(b"clear", tid=2))
    assert reader.extract(ev, "reader.size") == 0
    assert registry.violations == []


def test_a_bad_value_in_an_exported_table_is_an_error_for_its_reader(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry
) -> None:
    exporter = libs("tables_export").init("bad_row", tables=registry)
    reader = libs("tables_reader").init("", tables=registry)
    ev = plugin_event(b"x", tid=7)
    exporter.parse(ev)
    with pytest.raises(
        Exception, match="reading field count of table fxt_procs: table 'fxt_procs' of plugin fxt_export"
    ):
        reader.extract(ev, "reader.count")
    assert any("table fxt_procs field count: -5 does not fit in uint64" in r.message for r in exporter.logs)


def test_a_field_of_an_exported_table_has_its_type(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry
) -> None:
    libs("tables_export").init("", tables=registry)
    with pytest.raises(
        HostError, match="getting field count of table fxt_procs: the field has type uint64, not string"
    ):
        libs("tables_reader").init("wrong_type", tables=registry)


def test_an_exported_table_goes_away_with_its_plugin(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry
) -> None:
    libs("tables_export").init("", tables=registry).destroy()
    with pytest.raises(HostError, match=r"opening table fxt_procs with int64 keys: the host has no table of that name"):
        libs("tables_reader").init("", tables=registry)


# -- parsing: dispatch and declarations -------------------------------------------------


def test_parse_dispatch_follows_declared_types_and_sources(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry
) -> None:
    parser = tables_plugin(libs, registry)  # ALL_EVENTS of the syscall source
    exporter = libs("tables_export").init("", tables=registry)  # type 322 of ALL_SOURCES
    assert parser.parse_event_types is None and parser.info.parse_event_sources == {"syscall"}
    assert exporter.parse_event_types == {322} and exporter.info.parse_event_sources == frozenset()
    assert parser.parse(syscall_event(42, etype=5))
    assert not parser.parse(plugin_event(b"", tid=42, source="fxt"))
    assert not exporter.parse(syscall_event(42))
    assert exporter.parse(plugin_event(b"", tid=42, source="anything"))


def test_parsers_export_the_symbols_of_what_they_declare(libs: Callable[[str], PluginLibrary]) -> None:
    parser, exporter = libs("tables_parse").info, libs("tables_export").info
    assert "plugin_get_parse_event_types" not in parser.symbols  # ALL_EVENTS: the host's default
    assert "plugin_get_parse_event_sources" in parser.symbols
    assert "plugin_get_parse_event_types" in exporter.symbols
    assert "plugin_get_parse_event_sources" not in exporter.symbols  # ALL_SOURCES
    # Both may see syscall events: both declare the event schema they need.
    assert {"plugin_get_required_event_schema_version"} <= parser.symbols & exporter.symbols
    assert exporter.capabilities == {"parsing", "capture_listening"}


def _parser(**attrs: object) -> type[ParsePlugin]:
    def parse_event(self: ParsePlugin, event: Event) -> None:
        pass

    return type("P", (ParsePlugin,), {"name": "p", "parse_event": parse_event, **attrs})


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"parse_event_sources": ("syscall",)}, "P.parse_event_types is required"),
        ({"parse_event_types": (), "parse_event_sources": ("syscall",)}, "say ALL_EVENTS if that is what you mean"),
        ({"parse_event_types": (3,)}, "P.parse_event_sources is required"),
        ({"parse_event_types": (3,), "parse_event_sources": ()}, "say ALL_SOURCES if that is what you mean"),
        ({"parse_event_types": (70000,), "parse_event_sources": ("syscall",)}, "70000 is not an event type code"),
    ],
)
def test_an_empty_or_missing_parse_declaration_is_a_build_error(attrs: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        resolve(_parser(**attrs))


def test_everything_is_parsed_only_when_asked_by_name() -> None:
    spec = resolve(_parser(parse_event_types=ALL_EVENTS, parse_event_sources=ALL_SOURCES))
    assert spec.event_schema_version == "4.0.0"
    assert "plugin_parse_event" in spec.symbols() and "plugin_get_parse_event_types" not in spec.symbols()
    plugin_only = resolve(_parser(parse_event_types=(322,), parse_event_sources=("fxt",)))
    assert plugin_only.event_schema_version is None


def test_a_parser_without_parse_event_is_a_build_error() -> None:
    cls = type("P", (ParsePlugin,), {"name": "p", "parse_event_types": (3,), "parse_event_sources": ("syscall",)})
    with pytest.raises(SpecError, match="does not define parse_event"):
        resolve(cls)


# -- capture listening and routines ------------------------------------------------------


def _wait(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_routines_run_between_capture_open_and_close(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry
) -> None:
    pool = RoutinePool()
    exporter = libs("tables_export").init("", tables=registry, routines=pool)
    reader = libs("tables_reader").init("", tables=registry)
    exporter.capture_open()
    _wait(lambda: bool(pool.routines) and next(iter(pool.routines.values())).calls >= 3)
    assert len(pool.active(exporter)) == 1
    exporter.capture_close()  # unsubscribes, then writes the tick count into row 0
    _wait(lambda: not pool.active(exporter))
    assert pool.routines == {}
    assert reader.extract(plugin_event(b"", tid=0), "reader.count") >= 3  # type: ignore[operator]


def test_a_failing_capture_open_is_reported(libs: Callable[[str], PluginLibrary], registry: TableRegistry) -> None:
    exporter = libs("tables_export").init("open_fails", tables=registry, routines=RoutinePool())
    with pytest.raises(
        HostError, match="capture_open failed for plugin fxt_export: capture_open: RuntimeError: capture_open refused"
    ):
        exporter.capture_open()


def test_a_failing_capture_close_is_reported(libs: Callable[[str], PluginLibrary], registry: TableRegistry) -> None:
    exporter = libs("tables_export").init("close_fails", tables=registry, routines=RoutinePool())
    exporter.capture_open()
    with pytest.raises(HostError) as err:
        exporter.capture_close()
    assert str(err.value) == "capture_close failed for plugin fxt_export: capture_close: not closing today"


def test_a_routine_has_no_table_access_and_stops_on_error(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry
) -> None:
    pool = RoutinePool()
    exporter = libs("tables_export").init("routine_tables", tables=registry, routines=pool)
    exporter.capture_open()
    _wait(lambda: any("will not be called again" in r.message for r in exporter.logs))
    message = next(r.message for r in exporter.logs if "will not be called again" in r.message)
    assert "tables and field accessors can only be obtained during init" in message
    _wait(lambda: not pool.active(exporter))
    assert not pool.active(exporter)


def test_routines_are_subscribed_only_while_the_capture_is_open(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry
) -> None:
    exporter = libs("tables_export").init("subscribe_in_parse", tables=registry, routines=RoutinePool())
    with pytest.raises(HostError, match="routines can be subscribed only while the capture is open"):
        exporter.parse(plugin_event(b"", tid=1))


def test_without_a_thread_pool_subscribe_fails_precisely(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry
) -> None:
    exporter = libs("tables_export").init("strict_routine", tables=registry)  # no routines=: no pool
    with pytest.raises(HostError) as err:
        exporter.capture_open()
    assert str(err.value) == (
        "capture_open failed for plugin fxt_export: capture_open: routines.subscribe: the host refused the routine (it "
        "may have no thread pool)"
    )


class _Owner:
    """Just enough of a raw-layer State for the registry's vtables: a name and an error slot."""

    def __init__(self) -> None:
        self.library = type("Lib", (), {"name": "owner"})()
        self.error = ""

    def set_owner_error(self, message: str) -> None:
        self.error = message


def test_the_host_refuses_a_field_of_another_table_on_an_entry(registry: TableRegistry) -> None:
    """What a plugin not built with the SDK's glue meets: the host's own vtables refuse a
    file_descriptors field on a threads entry (libsinsp would read it at a foreign offset)."""
    from falco_plugin_tools.host._ffi import Rc, ffi

    owner = _Owner()
    o = ffi.new_handle(owner)
    init = registry.init_input()
    threads = init.get_table(o, b"threads", 4)
    fds_field = init.fields_ext.get_table_field(threads, b"file_descriptors", 10)
    key = ffi.new("ss_plugin_state_data *")
    key.s64 = 42
    entry = registry.reader_ext.get_table_entry(threads, key)
    out = ffi.new("ss_plugin_state_data *")
    assert registry.reader_ext.read_entry_field(threads, entry, fds_field, out) == Rc.SUCCESS
    fds = out.table
    name_field = init.fields_ext.get_table_field(fds, b"name", 9)
    assert registry.reader_ext.read_entry_field(threads, entry, name_field, out) == Rc.FAILURE
    assert owner.error == (
        "read_entry_field: field 'name' belongs to table 'file_descriptors', not to table 'threads' of the entry"
    )
    data = ffi.new("ss_plugin_state_data *")
    data.str = c = ffi.new("char[]", b"x")
    assert registry.writer_ext.write_entry_field(threads, entry, name_field, data) == Rc.FAILURE
    assert owner.error.startswith("write_entry_field: field 'name' belongs to table 'file_descriptors'")
    assert registry["threads"][42]["comm"] == "bash" and c  # nothing written
    registry.reader_ext.release_table_entry(threads, entry)
    assert registry.violations == []


def test_host_tables_are_plain_python() -> None:
    t = threads_table()
    assert isinstance(t, HostTable) and t.key_type == 4
    e = t.add(1, comm="init")
    assert e["comm"] == "init" and e["pid"] == 0 and len(e["env"]) == 0


def test_the_sdk_readme_tables_example_works(tmp_path: Path) -> None:
    blocks = re.findall(r"^```py\n(.*?)^```", (REPO / "sdk" / "README.md").read_text(), flags=re.S | re.M)
    (code,) = [b for b in blocks if "class Opens(" in b]
    package = tmp_path / "src" / "opens"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(code)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "opens"\nversion = "0.1.0"\ndependencies = ["falco-plugin-sdk"]\n\n'
        '[tool.falco-plugin]\nplugin = "opens.plugin:Opens"\n'
    )
    result = build_plugin(tmp_path)
    reg = TableRegistry(threads_table())
    reg["threads"].add(42, comm="bash")
    with PluginLibrary.load(result.library) as lib, lib.init("", tables=reg) as plugin:
        ev = syscall_event(42)
        plugin.parse(ev)
        plugin.parse(ev)
        assert plugin.extract(ev, "opens.count") == 2
        assert reg["threads"][42]["opens.count"] == 2
        assert "opens_procs" in reg.tables
    assert reg.violations == []


def test_row_columns_are_typed_like_a_dataclass() -> None:
    class Small(Row):
        tiny: Annotated[int, INT8] = -3
        port: Annotated[int, UINT16] = 0
        label: str = "x"
        on: bool = False

    assert [(c.name, c.type.name, c.default) for c in Small.__columns__] == [
        ("tiny", "int8", -3),
        ("port", "uint16", 0),
        ("label", "string", "x"),
        ("on", "bool", False),
    ]
    table: PluginTable[str, Small] = PluginTable("small", STRING, Small)
    row = table.setdefault("a")
    row.port = 8080
    assert table["a"].port == 8080 and len(table) == 1 and "a" in table
    with pytest.raises(TableError, match="table small key: expected str"):
        table.setdefault(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Bad\.n: a column is str, bool, or Annotated\[int, INT8\.\.UINT64\]"):

        class Bad(Row):
            n: int = 0

    with pytest.raises(TableError, match=r"Wide\.n default: 300 does not fit in uint8"):

        class Wide(Row):
            n: Annotated[int, UINT8] = 300


def test_an_extract_only_plugin_gets_the_table_glue_when_it_asks() -> None:
    def value(self: ExtractPlugin, event: Event) -> int:
        return 0

    attrs = {"name": "x", "value": field("x.value", "A value")(value)}
    plain = resolve(type("X", (ExtractPlugin,), attrs))
    asking = resolve(type("X", (ExtractPlugin,), {**attrs, "uses_tables": True}))
    assert "#define FP_HAS_TABLES 1" not in plain.caps["extraction"].c_defines()
    assert "#define FP_HAS_TABLES 1" in asking.caps["extraction"].c_defines()


def test_a_table_exported_by_a_python_plugin_is_read_by_a_plugin_written_in_c(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry, tmp_path: Path
) -> None:
    """tests/c/table_reader.c reads fxt_procs as any C plugin would: the table's vtables are the host's,
    the data behind them the Python plugin's."""
    cc = shutil.which("cc") or "gcc"
    lib = tmp_path / "libc_table_reader.so"
    src = REPO / "tests" / "c" / "table_reader.c"
    flags = ["-O1", "-Wall", "-Werror", "-shared", "-fPIC", "-fvisibility=hidden"]
    subprocess.run([cc, *flags, "-I", str(ABI_HEADER.parent), str(src), "-o", str(lib)], check=True)
    exporter = libs("tables_export").init("", tables=registry)
    with PluginLibrary.load(lib) as c_lib, c_lib.init("", tables=registry) as reader:
        ev = plugin_event(b"from python", tid=12)
        assert exporter.parse(ev)
        assert reader.extract(ev, "creader.row[7]") == "seven/1"
        assert reader.extract(ev, "creader.row[12]") == "from python/1"
        assert reader.extract(ev, "creader.row[99]") is None
    assert registry.violations == []


# -- every integer width, both ends, through the glue's write ---------------------------

WIDTH_NAMES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
BOUNDS = {
    "lo": "int8=-128 int16=-32768 int32=-2147483648 int64=-9223372036854775808 uint8=0 uint16=0 uint32=0 uint64=0",
    "hi": "int8=127 int16=32767 int32=2147483647 int64=9223372036854775807 uint8=255 uint16=65535 "
    "uint32=4294967295 uint64=18446744073709551615",
    "under": " ".join(f"{t}:refused" for t in WIDTH_NAMES),
    "over": " ".join(f"{t}:refused" for t in WIDTH_NAMES),
}


@pytest.mark.parametrize("which", list(BOUNDS))
def test_each_integer_width_takes_both_its_ends_and_refuses_one_past(
    libs: Callable[[str], PluginLibrary], registry: TableRegistry, which: str
) -> None:
    """One past either end is a TableError (the value is not stored as it wraps: 300 would be 44 in a
    uint8); the ends themselves are stored and read back exactly. Real Falco: test_realhost_tables."""
    p = tables_plugin(libs, registry, f"widths:{which}")
    ev = syscall_event(42)
    p.parse(ev)
    assert p.extract(ev, "fxt.widths") == BOUNDS[which]
    assert registry.violations == []
