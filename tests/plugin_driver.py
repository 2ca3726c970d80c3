"""A minimal in-process plugin host for tests that need precise control.

It calls a plugin library's ``plugin_*`` functions one by one through cffi's
ABI mode, with the SDK's own declarations (``plugin_abi.h`` and
``abi.ENTRY_POINTS``), so a test can craft malformed events, pass field
arguments the way a host would, ask for value offsets, and read the raw
memory the plugin returned after later calls. It deliberately does none of
the checks a real host does: tests decide what to call and in which order.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cffi
from falco_plugin import _abi as abi

ffi = cffi.FFI()
ffi.cdef(abi.cdef_packed(), packed=True)
ffi.cdef(abi.cdef_main())
ffi.cdef("\n".join(abi.ENTRY_POINTS.values()))

SUCCESS, FAILURE, TIMEOUT, EOF, NOT_SUPPORTED = 0, 1, -1, 2, 3
PLUGIN_EVENT = 322
HEADER = struct.Struct("<QQIHI")  # ts, tid, len, type, nparams: 26 bytes, packed
PAYLOAD_OFFSET = HEADER.size + 12
NO_VALUE = 2**64 - 1

_U64_TYPES = {"uint64", "reltime", "abstime"}
_NAME_ARG = re.compile(r"^([^\[]+)(?:\[(.*)\])?$")


def plugin_event(payload: bytes, *, plugin_id: int = 0, ts: int = NO_VALUE, tid: int = NO_VALUE) -> bytes:
    """The bytes of a well-formed plugin event (type 322) carrying ``payload``."""
    size = PAYLOAD_OFFSET + len(payload)
    return HEADER.pack(ts, tid, size, PLUGIN_EVENT, 2) + struct.pack("<III", 4, len(payload), plugin_id) + payload


def raw_event(etype: int, params: list[bytes], *, ts: int = 0, tid: int = NO_VALUE, length: int | None = None) -> bytes:
    """An event of any type with 4-byte parameter lengths; ``length`` overrides the header's total."""
    body = b"".join(struct.pack("<I", len(p)) for p in params) + b"".join(params)
    size = HEADER.size + len(body) if length is None else length
    return HEADER.pack(ts, tid, size, etype, len(params)) + body


def event_header(data: bytes) -> tuple[int, int, int, int, int]:
    """(ts, tid, len, type, nparams) of raw event bytes."""
    return HEADER.unpack_from(data)  # type: ignore[return-value]


def payload_of(data: bytes) -> bytes:
    """The payload of the raw bytes of a plugin event."""
    (length,) = struct.unpack_from("<I", data, HEADER.size + 4)
    return data[PAYLOAD_OFFSET : PAYLOAD_OFFSET + length]


class Event:
    """An event handed to the plugin: its memory is kept alive by this object."""

    def __init__(self, ptr: Any, num: int, source: str | None = None, *, keep: Any = None) -> None:
        self.ptr = ptr
        self.num = num
        self._keep = keep
        self._src = ffi.new("char[]", source.encode()) if source is not None else ffi.NULL
        self.input = ffi.new("ss_plugin_event_input *", {"evt": ptr, "evtnum": num, "evtsrc": self._src})

    @classmethod
    def from_bytes(cls, data: bytes, num: int = 1, source: str | None = None) -> Event:
        buf = ffi.new("char[]", data)
        return cls(ffi.cast("ss_plugin_event *", buf), num, source, keep=buf)

    def bytes(self) -> bytes:
        """A copy of the event as the plugin's memory holds it now."""
        (length,) = struct.unpack_from("<I", ffi.buffer(self.ptr, HEADER.size), 16)
        return bytes(ffi.buffer(self.ptr, length))


@dataclass
class Extraction:
    rc: int
    values: list[list[Any]]
    """Decoded values of each requested field (empty when rc is not SUCCESS)."""
    fields: Any
    """The ``ss_plugin_extract_field`` array, to read the raw result pointers later."""
    offsets: Any = None
    """The ``ss_plugin_extract_value_offsets`` passed to the plugin, if any."""
    keep: list[Any] = field(default_factory=list)


class Library:
    """One plugin library loaded into this process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lib = ffi.dlopen(str(path))
        self.logs: list[tuple[int, str, str]] = []
        """(severity, component, message) of every log_fn call, for every state."""
        self._log_cb = ffi.callback(
            "void(ss_plugin_owner_t *, const char *, const char *, ss_plugin_log_severity)", self._on_log
        )

    def _on_log(self, owner: Any, component: Any, msg: Any, sev: int) -> None:
        comp = ffi.string(component).decode() if component != ffi.NULL else ""
        self.logs.append((int(sev), comp, ffi.string(msg).decode("utf-8", "replace")))

    def has(self, symbol: str) -> bool:
        try:
            getattr(self.lib, symbol)
        except AttributeError:
            return False
        return True

    def text(self, symbol: str) -> str:
        return ffi.string(getattr(self.lib, symbol)()).decode()  # type: ignore[no-any-return]

    @property
    def name(self) -> str:
        return self.text("plugin_get_name")

    @property
    def version(self) -> str:
        return self.text("plugin_get_version")

    @property
    def description(self) -> str:
        return self.text("plugin_get_description")

    @property
    def contact(self) -> str:
        return self.text("plugin_get_contact")

    @property
    def required_api_version(self) -> str:
        return self.text("plugin_get_required_api_version")

    @property
    def fields(self) -> list[dict[str, Any]]:
        return json.loads(self.text("plugin_get_fields"))  # type: ignore[no-any-return]

    def init_schema(self) -> tuple[int, str]:
        kind = ffi.new("ss_plugin_schema_type *")
        text = self.lib.plugin_get_init_schema(kind)
        return int(kind[0]), ffi.string(text).decode()

    def field_id(self, name: str) -> int:
        for i, f in enumerate(self.fields):
            if f["name"] == name:
                return i
        raise KeyError(name)

    def init(self, config: str | None = "", *, log: bool = True) -> PluginState:
        """``plugin_init``; check ``.rc`` (the state exists even when init failed)."""
        keep = ffi.new("char[]", config.encode()) if config is not None else ffi.NULL
        inp = ffi.new(
            "ss_plugin_init_input *",
            {"config": keep, "owner": ffi.NULL, "log_fn": self._log_cb if log else ffi.NULL},
        )
        rc = ffi.new("ss_plugin_rc *")
        state = self.lib.plugin_init(inp, rc)
        return PluginState(self, state, int(rc[0]))


class PluginState:
    """The result of one ``plugin_init``."""

    def __init__(self, library: Library, state: Any, rc: int) -> None:
        self.library = library
        self.lib = library.lib
        self.state = state
        self.rc = rc
        self._fields = library.fields if library.has("plugin_get_fields") else []
        self._last_text: Any = None

    @property
    def last_error(self) -> str:
        return ffi.string(self.lib.plugin_get_last_error(self.state)).decode()  # type: ignore[no-any-return]

    def destroy(self) -> None:
        self.lib.plugin_destroy(self.state)
        self.state = ffi.NULL

    def set_config(self, config: str) -> int:
        keep = ffi.new("char[]", config.encode())
        inp = ffi.new("ss_plugin_set_config_input *", {"config": keep})
        return int(self.lib.plugin_set_config(self.state, inp))

    def list_open_params(self) -> tuple[int, str | None]:
        rc = ffi.new("ss_plugin_rc *")
        text = self.lib.plugin_list_open_params(self.state, rc)
        return int(rc[0]), (ffi.string(text).decode() if text != ffi.NULL else None)

    def open(self, params: str = "") -> tuple[int, Instance | None]:
        rc = ffi.new("ss_plugin_rc *")
        handle = self.lib.plugin_open(self.state, params.encode(), rc)
        if int(rc[0]) != SUCCESS:
            return int(rc[0]), None
        return SUCCESS, Instance(self, handle)

    def opened(self, params: str = "") -> Instance:
        """Open an instance that must succeed (the failure message is the plugin's)."""
        rc, inst = self.open(params)
        assert inst is not None, f"open failed ({rc}): {self.last_error}"
        return inst

    def event_to_string(self, event: Event) -> tuple[Any, str]:
        """The raw ``const char *`` and its text."""
        ptr = self.lib.plugin_event_to_string(self.state, event.input)
        return ptr, ffi.string(ptr).decode()

    # -- extraction -----------------------------------------------------------

    def request(self, spec: str) -> dict[str, Any]:
        """A field request like a host builds it from ``name[arg]``."""
        m = _NAME_ARG.match(spec)
        assert m, spec
        name, arg = m.group(1), m.group(2)
        fid = next(i for i, f in enumerate(self._fields) if f["name"] == name)
        req: dict[str, Any] = {"field_id": fid}
        if arg is not None:
            req["arg_present"] = 1
            if self._fields[fid].get("arg", {}).get("isIndex"):
                req["arg_index"] = int(arg)
            else:
                req["arg_key"] = arg
        return req

    def extract(self, event: Event, *specs: str | dict[str, Any], offsets: bool = False) -> Extraction:
        """``plugin_extract_fields`` for the given ``name[arg]`` specs (or raw request dicts)."""
        reqs = [self.request(s) if isinstance(s, str) else s for s in specs]
        arr = ffi.new("ss_plugin_extract_field[]", len(reqs))
        keep: list[Any] = []
        for i, r in enumerate(reqs):
            f = arr[i]
            f.field_id = r["field_id"]
            meta = self._fields[r["field_id"]] if r["field_id"] < len(self._fields) else {}
            name = ffi.new("char[]", str(meta.get("name", "?")).encode())
            keep.append(name)
            f.field = name
            f.ftype = r.get("ftype", 0)
            f.flist = 1 if meta.get("isList") else 0
            f.arg_present = r.get("arg_present", 0)
            f.arg_index = r.get("arg_index", 0)
            if r.get("arg_key") is not None:
                key = ffi.new("char[]", r["arg_key"].encode())
                keep.append(key)
                f.arg_key = key
        vo = ffi.new("ss_plugin_extract_value_offsets *") if offsets else ffi.NULL
        inp = ffi.new("ss_plugin_field_extract_input *", {"num_fields": len(reqs), "fields": arr, "value_offsets": vo})
        keep.append(inp)
        rc = int(self.lib.plugin_extract_fields(self.state, event.input, inp))
        values = [self.decode(arr[i]) for i in range(len(reqs))] if rc == SUCCESS else []
        return Extraction(rc, values, arr, vo if offsets else None, keep)

    def decode(self, f: Any) -> list[Any]:
        """The values an ``ss_plugin_extract_field`` points at now."""
        ftype = self._fields[f.field_id]["type"]
        out: list[Any] = []
        for i in range(f.res_len):
            if ftype == "string":
                out.append(ffi.string(f.res.str[i]).decode())
            elif ftype == "bool":
                out.append(int(f.res.boolean[i]))
            elif ftype in ("ipaddr", "ipnet"):
                buf = f.res.buf[i]
                out.append(bytes(ffi.buffer(buf.ptr, buf.len)))
            else:
                assert ftype in _U64_TYPES, ftype
                out.append(int(f.res.u64[i]))
        return out

    def values(self, event: Event, *specs: str) -> list[list[Any]]:
        """Extract, asserting success."""
        got = self.extract(event, *specs)
        assert got.rc == SUCCESS, self.last_error
        return got.values


class Instance:
    """One ``plugin_open``."""

    def __init__(self, state: PluginState, handle: Any) -> None:
        self.state = state
        self.lib = state.lib
        self.handle = handle
        self.source = state.library.text("plugin_get_event_source")
        self.numbered = 0

    def next_batch(self) -> tuple[int, list[Event]]:
        """``plugin_next_batch``; events are numbered 1, 2, ... across calls."""
        n = ffi.new("uint32_t *")
        evts = ffi.new("ss_plugin_event ***")
        rc = int(self.lib.plugin_next_batch(self.state.state, self.handle, n, evts))
        out = []
        for i in range(n[0]):
            self.numbered += 1
            out.append(Event(evts[0][i], self.numbered, self.source, keep=evts))
        return rc, out

    def batches(self, limit: int = 10_000) -> list[Event]:
        """Every event until EOF (copies: the memory of earlier batches is gone)."""
        events: list[Event] = []
        for _ in range(limit):
            rc, batch = self.next_batch()
            events.extend(Event.from_bytes(e.bytes(), e.num, self.source) for e in batch)
            if rc == EOF:
                return events
            assert rc in (SUCCESS, TIMEOUT), self.state.last_error
        raise AssertionError("no EOF")

    def progress(self) -> tuple[int, str]:
        pct = ffi.new("uint32_t *")
        text = self.lib.plugin_get_progress(self.state.state, self.handle, pct)
        return int(pct[0]), ffi.string(text).decode()

    def close(self) -> None:
        self.lib.plugin_close(self.state.state, self.handle)
        self.handle = ffi.NULL
