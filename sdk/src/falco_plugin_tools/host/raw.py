"""The raw layer of the host: each ``plugin_*`` function called directly, nothing checked.

:class:`~falco_plugin_tools.host.PluginLibrary` and friends (the checking layer)
are built on it and add libsinsp's checks, messages and conversions. Tests
use this layer directly when they need what no real host would do: call
functions in any order, hand the plugin malformed events or a ``NULL``
event, pass arbitrary field requests, ask for value offsets, or read the
memory a call returned after later calls::

    from falco_plugin_tools.host import raw

    lib = raw.Library.open("libfoo.so")
    state = lib.init('{"x": 1}')          # state.rc is whatever plugin_init said
    event = raw.Event.from_bytes(raw.plugin_event(b"payload"), num=1)
    got = state.extract(event, "foo.field[2]", offsets=True)
    got.rc, got.values, got.fields, got.offsets

Return codes are plain ints (compare with :class:`~falco_plugin_tools.host.Rc`);
strings are decoded with replacement, ``NULL`` reads as ``""`` except where
the result says ``None``.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from falco_plugin._internal.fields import TYPE_CODES
from falco_plugin._internal.layout import (
    HEADER,
    HEADER_SIZE,
    NO_VALUE,
    PAYLOAD_LEN_OFFSET,
    PAYLOAD_OFFSET,
    pack_plugin_event,
)
from falco_plugin_tools.abi import ENTRY_POINTS
from falco_plugin_tools.host._ffi import Rc, ffi, text_of
from falco_plugin_tools.host.fields import EPF_IS_LIST

__all__ = [
    "CallFailedError",
    "Event",
    "Extraction",
    "Instance",
    "Library",
    "NotExportedError",
    "Request",
    "State",
    "event_header",
    "ffi",
    "payload_of",
    "plugin_event",
    "raw_event",
]

_U32 = struct.Struct("<I")
_U64_TYPES = frozenset({"uint64", "reltime", "abstime"})
_NAME_ARG = re.compile(r"^([^\[]+)(?:\[(.*)\])?$", re.S)

# Resolved once: ffi.new("<type>") looks the type string up on every call, and the
# checking layer's extract() goes through here once per field and event.
_CHARS = ffi.typeof("char[]")
_EVENT_PTR = ffi.typeof("ss_plugin_event *")
_EVENT_INPUT = ffi.typeof("ss_plugin_event_input *")
_FIELDS = ffi.typeof("ss_plugin_extract_field[]")
_FIELD = ffi.typeof("ss_plugin_extract_field *")
_EXTRACT_INPUT = ffi.typeof("ss_plugin_field_extract_input *")
_OFFSETS = ffi.typeof("ss_plugin_extract_value_offsets *")

LogHook = Callable[[str, str, int], None]
"""``(component, message, severity)`` of one ``log_fn`` call."""


class NotExportedError(AttributeError):
    """The library has no such ``plugin_*`` symbol."""


class CallFailedError(Exception):
    """A call the caller required to succeed (``opened``, ``values``, ``batches``) did not."""


# -- event bytes ---------------------------------------------------------------------------


def plugin_event(payload: bytes, *, plugin_id: int = 0, ts: int = NO_VALUE, tid: int = NO_VALUE) -> bytes:
    """The bytes of a well-formed plugin event (type 322) carrying ``payload``."""
    return pack_plugin_event(payload, plugin_id=plugin_id, ts=ts, tid=tid)


def raw_event(etype: int, params: list[bytes], *, ts: int = 0, tid: int = NO_VALUE, length: int | None = None) -> bytes:
    """An event of any type with 4-byte parameter lengths; ``length`` overrides the header's total."""
    body = b"".join(_U32.pack(len(p)) for p in params) + b"".join(params)
    size = HEADER_SIZE + len(body) if length is None else length
    return HEADER.pack(ts, tid, size, etype, len(params)) + body


def event_header(data: bytes) -> tuple[int, int, int, int, int]:
    """(ts, tid, len, type, nparams) of raw event bytes."""
    return HEADER.unpack_from(data)  # type: ignore[return-value]


def payload_of(data: bytes) -> bytes:
    """The payload of the raw bytes of a plugin event."""
    (length,) = _U32.unpack_from(data, PAYLOAD_LEN_OFFSET)
    return data[PAYLOAD_OFFSET : PAYLOAD_OFFSET + length]


class Event:
    """An event handed to the plugin (``ss_plugin_event_input``); it keeps its memory alive.

    ``ptr`` may point into plugin memory (events of a batch), into memory
    this object owns (:meth:`from_bytes`), or be ``ffi.NULL``.
    """

    __slots__ = ("ptr", "num", "source", "_keep", "_input")

    def __init__(self, ptr: Any, num: int, source: str | None = None, *, keep: Any = None) -> None:
        self.ptr = ptr
        self.num = num
        self.source = source
        self._keep = keep
        self._input: tuple[Any, Any] | None = None

    @classmethod
    def from_bytes(cls, data: bytes, num: int = 1, source: str | None = None) -> Event:
        """A copy of ``data`` in C memory (writable with ``ffi.memmove`` through :attr:`ptr`)."""
        buf = ffi.new(_CHARS, bytes(data))
        return cls(ffi.cast(_EVENT_PTR, buf), num, source, keep=buf)

    @classmethod
    def over(cls, data: bytes, num: int = 1, source: str | None = None) -> Event:
        """An event reading ``data`` in place (no copy: ``data`` must not change)."""
        buf = ffi.from_buffer(_CHARS, data)
        return cls(ffi.cast(_EVENT_PTR, buf), num, source, keep=(buf, data))

    @property
    def input(self) -> Any:
        """The ``ss_plugin_event_input *`` for this event (made on first use)."""
        if self._input is None:
            src = ffi.new(_CHARS, self.source.encode()) if self.source is not None else ffi.NULL
            self._input = (
                ffi.new(_EVENT_INPUT, {"evt": self.ptr, "evtnum": self.num, "evtsrc": src}),
                src,
            )
        return self._input[0]

    def view(self) -> Any:
        """The event's memory, ``len`` bytes from its header, not copied (a cffi buffer)."""
        return ffi.buffer(self.ptr, self.ptr.len)

    def bytes(self) -> bytes:
        """A copy of the event as its memory holds it now (``len`` bytes, from the header)."""
        return bytes(self.view())


# -- logging: one callback for the process, the owner pointer leads back to the state ---------


def _ignore_callback_error(*_: object) -> None:
    """A host callback must never raise into plugin code; losing a log line is the lesser evil."""


def _on_log(owner: Any, component: Any, msg: Any, severity: int) -> None:
    state: State = ffi.from_handle(owner)
    state._on_log(text_of(component), text_of(msg), int(severity))


def _no_owner_error(owner: Any) -> Any:
    # The owner's errors come from the table API (host/tables.py sets them).
    state: State = ffi.from_handle(owner)
    return state.owner_error


_log_fn = ffi.callback(
    "void(ss_plugin_owner_t *, const char *, const char *, ss_plugin_log_severity)",
    _on_log,
    onerror=_ignore_callback_error,
)
_owner_last_error = ffi.callback("const char *(ss_plugin_owner_t *)", _no_owner_error, onerror=_ignore_callback_error)

_LIVE: set[State] = set()
"""States not destroyed yet: the plugin may call log_fn with their owner until destroy, so a state
dropped without destroy must not take its owner handle with it (ffi.from_handle would read garbage)."""


# -- library -------------------------------------------------------------------------------


class Library:
    """One ``dlopen``-ed plugin library and its ``plugin_*`` symbols, looked up by name."""

    def __init__(self, path: Path, lib: Any) -> None:
        self.path = path
        self.lib: Any = lib
        """The cffi library object (``lib.plugin_get_id()``...); ``None`` once closed."""
        self.symbols: dict[str, Any] = {}
        """Every exported entry point, by name without ``plugin_``."""
        for name in ENTRY_POINTS:
            try:
                self.symbols[name] = getattr(lib, "plugin_" + name)
            except AttributeError:
                pass
        self.logs: list[tuple[int, str, str]] = []
        """(severity, component, message) of every ``log_fn`` call, for every state."""
        self._fields: list[dict[str, Any]] | None = None

    @classmethod
    def open(cls, path: str | Path, flags: int | None = None) -> Library:
        """``dlopen(path, RTLD_LAZY)`` like libsinsp; ``OSError`` (cffi's, with ``dlerror()``) when it fails."""
        lib = ffi.dlopen(str(path), ffi.RTLD_LAZY if flags is None else flags)
        return cls(Path(path), lib)

    @property
    def closed(self) -> bool:
        return self.lib is None

    def close(self) -> None:
        """``dlclose`` (idempotent); states still alive are the caller's business."""
        if self.lib is not None:
            ffi.dlclose(self.lib)
            self.lib = None
            self.symbols = {}

    @staticmethod
    def _name(symbol: str) -> str:
        return symbol.removeprefix("plugin_")

    def has(self, symbol: str) -> bool:
        """Whether ``plugin_<symbol>`` is exported (with or without the ``plugin_`` prefix)."""
        return self._name(symbol) in self.symbols

    def symbol(self, symbol: str) -> Any | None:
        """The C function, or ``None`` when not exported."""
        return self.symbols.get(self._name(symbol))

    def function(self, symbol: str) -> Callable[..., Any]:
        """The C function ``plugin_<symbol>``; :class:`NotExportedError` when there is no such symbol."""
        fn = self.symbols.get(self._name(symbol))
        if fn is None:
            raise NotExportedError(f"{self.path.name} does not export plugin_{self._name(symbol)}")
        return fn  # type: ignore[no-any-return]

    def call(self, symbol: str, *args: Any) -> Any:
        """Call ``plugin_<symbol>(*args)``; :class:`NotExportedError` when there is no such symbol."""
        return self.function(symbol)(*args)

    def text(self, symbol: str) -> str:
        """The string a no-argument ``const char *`` getter returns."""
        return text_of(self.call(symbol))

    # -- metadata -----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.text("get_name")

    @property
    def version(self) -> str:
        return self.text("get_version")

    @property
    def description(self) -> str:
        return self.text("get_description")

    @property
    def contact(self) -> str:
        return self.text("get_contact")

    @property
    def required_api_version(self) -> str:
        return self.text("get_required_api_version")

    @property
    def event_source(self) -> str | None:
        """``get_event_source``, or ``None`` when not exported."""
        return self.text("get_event_source") if self.has("get_event_source") else None

    @property
    def fields(self) -> list[dict[str, Any]]:
        """``get_fields`` parsed as JSON (empty when not exported); read once."""
        if self._fields is None:
            self._fields = json.loads(self.text("get_fields")) if self.has("get_fields") else []
        return self._fields

    def field_id(self, name: str) -> int:
        for i, f in enumerate(self.fields):
            if f.get("name") == name:
                return i
        raise KeyError(name)

    def init_schema(self) -> tuple[int, str]:
        """``get_init_schema``'s (type, text)."""
        kind = ffi.new("ss_plugin_schema_type *", 0)
        text = text_of(self.call("get_init_schema", kind))
        return int(kind[0]), text

    def init(
        self, config: str | None = "", *, log: bool = True, on_log: LogHook | None = None, tables: Any = None
    ) -> State:
        """``plugin_init`` with ``config`` (``None``: a ``NULL`` pointer); check ``.rc`` (the state exists
        even when init failed). Without ``log`` the host offers no ``log_fn``; ``tables`` is the
        ``ss_plugin_init_tables_input *`` to offer (``host/tables.py``), ``None`` for none."""
        return State(self, config, log=log, on_log=on_log, tables=tables)


# -- state ---------------------------------------------------------------------------------


@dataclass
class Request:
    """One ``ss_plugin_extract_field`` request, as a host fills it in."""

    field_id: int
    name: str = "?"
    arg_present: bool = False
    arg_index: int = 0
    arg_key: str | None = None
    ftype: int = 0
    flist: int = 0


@dataclass
class Extraction:
    """What one ``plugin_extract_fields`` call gave."""

    rc: int
    values: list[list[Any]]
    """Decoded values of each requested field (empty when rc is not SUCCESS or decoding was not asked)."""
    fields: Any
    """The ``ss_plugin_extract_field`` array, to read the result pointers later."""
    offsets: Any = None
    """The ``ss_plugin_extract_value_offsets`` passed to the plugin, if any."""
    keep: list[Any] = field(default_factory=list)


class State:
    """The result of one ``plugin_init`` (also when it failed: ``rc`` says)."""

    def __init__(
        self, library: Library, config: str | None, *, log: bool, on_log: LogHook | None, tables: Any = None
    ) -> None:
        self.library = library
        self.owner_error: Any = ffi.NULL
        """What ``get_owner_last_error`` returns (a C string the table API sets, host/tables.py)."""
        self.table_reader_ext: Any = ffi.NULL
        """The reader vtable extraction gets (host/tables.py), ``NULL`` without tables."""
        self.lib = library.lib
        self.logs: list[tuple[int, str, str]] = []
        """(severity, component, message) of this state's ``log_fn`` calls."""
        self._hook = on_log
        self._strings: dict[str, Any] = {}
        self._extract_fn: Callable[..., Any] | None = None
        # The owner pointer leads log_fn back here; the init input, its config and
        # the owner stay alive as long as the state, since the plugin may keep them.
        self._owner = ffi.new_handle(self)
        self._config = ffi.new("char[]", config.encode()) if config is not None else ffi.NULL
        self._init_input = ffi.new("ss_plugin_init_input *")
        self._init_input.config = self._config
        self._init_input.owner = self._owner
        self._init_input.get_owner_last_error = _owner_last_error
        self._init_input.tables = tables if tables is not None else ffi.NULL
        self._init_input.log_fn = _log_fn if log else ffi.NULL
        rc = ffi.new("ss_plugin_rc *", Rc.FAILURE)
        self.state: Any = library.call("init", self._init_input, rc)
        self.rc = int(rc[0])
        if self.state != ffi.NULL:
            _LIVE.add(self)

    def _on_log(self, component: str, message: str, severity: int) -> None:
        record = (severity, component, message)
        self.logs.append(record)
        self.library.logs.append(record)
        if self._hook is not None:
            self._hook(component, message, severity)

    @property
    def null(self) -> bool:
        """Whether the state pointer is ``NULL`` (init gave none, or destroyed)."""
        return bool(self.state == ffi.NULL)

    @property
    def last_error(self) -> str:
        return text_of(self.library.call("get_last_error", self.state))

    def set_owner_error(self, message: str) -> None:
        """What ``get_owner_last_error`` returns next."""
        self.owner_error = ffi.new("char[]", message.encode("utf-8", "replace"))

    def destroy(self) -> None:
        self.library.call("destroy", self.state)
        self.state = ffi.NULL
        _LIVE.discard(self)

    def set_config(self, config: str) -> int:
        keep = ffi.new("char[]", config.encode())
        inp = ffi.new("ss_plugin_set_config_input *", {"config": keep})
        return int(self.library.call("set_config", self.state, inp))

    def list_open_params(self) -> tuple[int, str | None]:
        """(rc, text); the text is ``None`` for a ``NULL`` pointer."""
        rc = ffi.new("ss_plugin_rc *", Rc.FAILURE)
        ptr = self.library.call("list_open_params", self.state, rc)
        return int(rc[0]), (text_of(ptr) if ptr != ffi.NULL else None)

    def required_event_schema_version(self) -> str | None:
        """``get_required_event_schema_version``; ``None`` when not exported or ``NULL``."""
        if not self.library.has("get_required_event_schema_version"):
            return None
        ptr = self.library.call("get_required_event_schema_version", self.state)
        return text_of(ptr) if ptr != ffi.NULL else None

    def event_types(self, symbol: str) -> list[int] | None:
        """``get_extract_event_types`` / ``get_parse_event_types``; ``None`` when not exported or ``NULL``."""
        if not self.library.has(symbol):
            return None
        count = ffi.new("uint32_t *")
        codes = self.library.call(symbol, count, self.state)
        if codes == ffi.NULL:
            return None
        return [int(codes[i]) for i in range(count[0])]

    def open(self, params: str | None = "") -> tuple[int, Instance | None]:
        """``plugin_open``: (rc, the instance when rc is SUCCESS)."""
        rc = ffi.new("ss_plugin_rc *", Rc.FAILURE)
        handle = self.library.call("open", self.state, params.encode() if params is not None else ffi.NULL, rc)
        if int(rc[0]) != Rc.SUCCESS:
            return int(rc[0]), None
        return int(Rc.SUCCESS), Instance(self, handle)

    def opened(self, params: str = "") -> Instance:
        """Open an instance that must succeed (:class:`CallFailedError` with the plugin's error)."""
        rc, inst = self.open(params)
        if inst is None:
            raise CallFailedError(f"open failed ({rc}): {self.last_error}")
        return inst

    def event_to_string(self, event: Event) -> tuple[Any, str]:
        """The raw ``const char *`` and its text."""
        ptr = self.library.call("event_to_string", self.state, event.input)
        return ptr, text_of(ptr)

    # -- extraction -----------------------------------------------------------------------------

    def request(self, spec: str) -> Request:
        """A request like a host builds it from ``name[arg]``: an index when the field says
        ``isIndex``, else a key. Nothing else is checked."""
        m = _NAME_ARG.match(spec)
        if m is None:
            raise ValueError(f"not a field expression: {spec!r}")
        name, arg = m.group(1), m.group(2)
        fid = self.library.field_id(name)
        meta = self.library.fields[fid]
        req = Request(
            fid,
            name,
            ftype=TYPE_CODES.get(str(meta.get("type")), 0),
            flist=EPF_IS_LIST if meta.get("isList") else 0,
        )
        if arg is not None:
            req.arg_present = True
            if meta.get("arg", {}).get("isIndex"):
                req.arg_index = int(arg)
            else:
                req.arg_key = arg
        return req

    def extract(self, event: Event, *specs: str | Request, offsets: bool = False, decode: bool = True) -> Extraction:
        """One ``plugin_extract_fields`` call for all of ``specs`` (``name[arg]`` or :class:`Request`)."""
        reqs = [self.request(s) if isinstance(s, str) else s for s in specs]
        rc, arr, vo, keep = self._extract(event, reqs, offsets)
        values = [self.decode(arr[i]) for i in range(len(reqs))] if rc == Rc.SUCCESS and decode else []
        return Extraction(rc, values, arr, vo if offsets else None, keep)

    def extract_one(self, event: Event, request: Request) -> tuple[int, Any]:
        """One field, one call (as libsinsp extracts): (rc, its ``ss_plugin_extract_field``), undecoded.

        The field is an owning pointer: ``arr[0]`` of an array would not keep the array alive, and the
        caller would read freed memory."""
        rc, field, _, _ = self._extract(event, (request,), False, single=True)
        return rc, field

    def _extract(
        self, event: Event, reqs: Sequence[Request], offsets: bool, single: bool = False
    ) -> tuple[int, Any, Any, list[Any]]:
        arr = ffi.new(_FIELD) if single else ffi.new(_FIELDS, len(reqs))
        for i, r in enumerate(reqs):
            f = arr[i]
            f.field_id = r.field_id
            f.field = self._c_string(r.name)
            f.ftype = r.ftype
            f.flist = r.flist
            f.arg_present = int(r.arg_present)
            f.arg_index = r.arg_index
            if r.arg_key is not None:
                f.arg_key = self._c_string(r.arg_key)
        vo = ffi.new(_OFFSETS) if offsets else ffi.NULL
        inp = ffi.new(_EXTRACT_INPUT)
        inp.owner = self._owner
        inp.get_owner_last_error = _owner_last_error
        inp.num_fields = len(reqs)
        inp.fields = arr
        inp.table_reader_ext = self.table_reader_ext
        inp.value_offsets = vo
        fn = self._extract_fn
        if fn is None:  # looked up once: this is the hot path of the checking layer
            fn = self._extract_fn = self.library.function("extract_fields")
        rc = int(fn(self.state, event.input, inp))
        return rc, arr, vo, [arr, inp]

    def _c_string(self, text: str) -> Any:
        """A C copy of ``text``, kept for the state's lifetime (names and keys repeat: one copy each)."""
        c = self._strings.get(text)
        if c is None:
            c = self._strings[text] = ffi.new(_CHARS, text.encode())
        return c

    def decode(self, f: Any) -> list[Any]:
        """The values an ``ss_plugin_extract_field`` points at now: str, int (also bool), or bytes
        (ipaddr, ipnet), by the type ``get_fields`` gives the field."""
        ftype = self.library.fields[f.field_id]["type"]
        out: list[Any] = []
        for i in range(f.res_len):
            if ftype == "string":
                out.append(text_of(f.res.str[i]))
            elif ftype == "bool":
                out.append(int(f.res.boolean[i]))
            elif ftype in ("ipaddr", "ipnet"):
                buf = f.res.buf[i]
                out.append(bytes(ffi.buffer(buf.ptr, buf.len)) if buf.len else b"")
            elif ftype in _U64_TYPES:
                out.append(int(f.res.u64[i]))
            else:
                raise ValueError(f"field {f.field_id} has unknown type {ftype!r}")
        return out

    def values(self, event: Event, *specs: str | Request) -> list[list[Any]]:
        """Extract, raising :class:`CallFailedError` with the plugin's error unless it succeeds."""
        got = self.extract(event, *specs)
        if got.rc != Rc.SUCCESS:
            raise CallFailedError(f"extract_fields failed ({got.rc}): {self.last_error}")
        return got.values


# -- instance ------------------------------------------------------------------------------


class Instance:
    """One ``plugin_open``."""

    def __init__(self, state: State, handle: Any) -> None:
        self.state = state
        self.library = state.library
        self.handle = handle
        self.source = state.library.event_source
        self.numbered = 0
        """Events numbered so far by :meth:`next_batch` (1, 2, ... across calls)."""
        self._nevts = ffi.new("uint32_t *")
        self._evts = ffi.new("ss_plugin_event ***")
        self._next_batch_fn: Callable[..., Any] | None = None

    def call_next_batch(self) -> tuple[int, int, Any]:
        """``plugin_next_batch`` alone: (rc, the event count, the ``ss_plugin_event **`` array).

        The array and the events it points at are plugin memory, valid until the next call."""
        self._nevts[0] = 0
        fn = self._next_batch_fn
        if fn is None:  # looked up once: the checking layer calls this for every batch
            fn = self._next_batch_fn = self.library.function("next_batch")
        rc = int(fn(self.state.state, self.handle, self._nevts, self._evts))
        n = int(self._nevts[0])
        return rc, n, self._evts[0] if n else ffi.NULL

    def next_batch(self) -> tuple[int, list[Event]]:
        """``plugin_next_batch``: (rc, the events, pointing into plugin memory, numbered)."""
        rc, n, array = self.call_next_batch()
        out = []
        for i in range(n):
            self.numbered += 1
            out.append(Event(array[i], self.numbered, self.source))
        return rc, out

    def batches(self, limit: int = 10_000) -> list[Event]:
        """Every event until EOF, copied (a batch's memory is gone at the next call)."""
        events: list[Event] = []
        for _ in range(limit):
            rc, batch = self.next_batch()
            events.extend(Event.from_bytes(e.bytes(), e.num, self.source) for e in batch)
            if rc == Rc.EOF:
                return events
            if rc not in (Rc.SUCCESS, Rc.TIMEOUT):
                raise CallFailedError(f"next_batch failed ({rc}): {self.state.last_error}")
        raise CallFailedError(f"no EOF after {limit} batches")

    def progress(self) -> tuple[int, str]:
        """``plugin_get_progress``: (hundredths of a percent, text)."""
        pct = ffi.new("uint32_t *")
        text = text_of(self.library.call("get_progress", self.state.state, self.handle, pct))
        return int(pct[0]), text

    def close(self) -> None:
        self.library.call("close", self.state.state, self.handle)
        self.handle = ffi.NULL
