"""One initialised plugin state (``plugin_init`` .. ``plugin_destroy``) and the
calls made on it: open, extract, event_to_string, list_open_params."""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from ._ffi import Rc, ffi, scan_version, text_of
from .errors import ExtractionError, HostError
from .events import PLUGINEVENT_E, HostEvent
from .fields import EPF_IS_LIST, FieldRequest
from .schema import validate_init_config

if TYPE_CHECKING:
    from .capture import Capture
    from .loader import PluginInfo, PluginLibrary
    from .routines import RoutinePool
    from .tables import TableRegistry

__all__ = ["PluginHandle", "LogRecord", "Value"]

Value = str | int | bool | ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network
"""One extracted value, by field type: string -> str, uint64/reltime/abstime -> int, bool, ipaddr, ipnet."""

_LEVELS = {
    1: logging.CRITICAL,
    2: logging.CRITICAL,
    3: logging.ERROR,
    4: logging.WARNING,
    5: logging.INFO,
    6: logging.INFO,
    7: logging.DEBUG,
    8: logging.DEBUG,
}
NO_STATE_ERROR = "plugin handle or 'get_last_error' function not defined"


class LogRecord(NamedTuple):
    """A message the plugin sent through ``log_fn``."""

    severity: int
    """``ss_plugin_log_severity``: 1 (fatal) .. 8 (trace)."""
    component: str
    message: str


def _ignore_callback_error(*_: object) -> None:
    """A host callback must never raise into plugin code; losing a log line is the lesser evil."""


def _log(owner: Any, component: Any, msg: Any, severity: int) -> None:
    handle: PluginHandle = ffi.from_handle(owner)
    handle._on_log(text_of(component), text_of(msg), int(severity))


def _no_owner_error(owner: Any) -> Any:
    # The owner's errors come from the table API (host/tables.py).
    handle: PluginHandle = ffi.from_handle(owner)
    return handle._owner_error_c


# One pair of callbacks for the whole process: the owner pointer leads back to the handle.
_log_fn = ffi.callback(
    "void(ss_plugin_owner_t *, const char *, const char *, ss_plugin_log_severity)",
    _log,
    onerror=_ignore_callback_error,
)
_owner_last_error = ffi.callback("const char *(ss_plugin_owner_t *)", _no_owner_error, onerror=_ignore_callback_error)


HOST_EVENT_SCHEMA_MAJOR = 4
"""Major version of the event schema of the libsinsp this host emulates (libs 0.25)."""


class PluginHandle:
    """An initialised plugin (``plugin_init`` succeeded); use as a context manager or call :meth:`destroy`."""

    def __init__(
        self,
        library: PluginLibrary,
        config: str,
        *,
        forward_logs: bool = False,
        tables: TableRegistry | None = None,
        routines: RoutinePool | None = None,
    ) -> None:
        self.library = library
        self.tables = tables
        """The host's state tables offered to the plugin (libsinsp: to parsers and extractors only)."""
        self.routines = routines
        """The thread pool running the routines of capture listening plugins."""
        self._owner_error_c: Any = ffi.NULL
        self._exported_inputs: list[Any] = []
        info = library.info
        self.logs: list[LogRecord] = []
        self._logger = logging.getLogger(f"falco_plugin.host.{info.name}") if forward_logs else None
        self._captures: list[Capture] = []
        self._state: Any = ffi.NULL
        self._owner = ffi.new_handle(self)
        schema_type, schema_text = library.init_schema_raw
        self.config = validate_init_config(info.name, schema_type, schema_text, config)
        self._config_c = ffi.new("char[]", self.config.encode())
        self._init_input = ffi.new("ss_plugin_init_input *")
        self._init_input.config = self._config_c
        self._init_input.owner = self._owner
        self._init_input.get_owner_last_error = _owner_last_error
        offers_tables = tables is not None and bool({"parsing", "extraction"} & info.capabilities)
        self._init_input.tables = tables.init_input() if tables is not None and offers_tables else ffi.NULL
        self._init_input.log_fn = _log_fn
        rc = ffi.new("ss_plugin_rc *", Rc.FAILURE)
        self._state = self._call("init", self._init_input, rc)
        if tables is not None:
            tables.check_released(self, "init")
        if rc[0] != Rc.SUCCESS:
            error = self.last_error if self._state != ffi.NULL else NO_STATE_ERROR
            self.destroy()
            raise HostError(f"could not initialize plugin: {error}")
        problem = self._event_schema_problem()
        if problem:
            self.destroy()
            raise HostError(problem)
        self.extract_event_types = self._event_codes("get_extract_event_types", info.extract_event_sources)
        """Event types :meth:`extract` serves; ``None`` means all of them."""
        self.parse_event_types = self._event_codes("get_parse_event_types", info.parse_event_sources)

    # -- plumbing --------------------------------------------------------------

    def _event_schema_problem(self) -> str | None:
        """libsinsp (libs >= 0.22) refuses a plugin whose fields or parser may see
        syscall events unless it needs an event schema of the host's major
        version (4); a plugin that does not say is taken to need 3.0.0. Only the
        major is checked: the exact minor of the host's schema is not modelled."""
        info = self.info
        may_see_syscall = any(
            cap in info.capabilities and (not sources or "syscall" in sources)
            for cap, sources in (("extraction", info.extract_event_sources), ("parsing", info.parse_event_sources))
        )
        if not may_see_syscall:
            return None
        fn = self.library.symbol("get_required_event_schema_version")
        raw = fn(self._state) if fn is not None else ffi.NULL
        wanted = "3.0.0" if raw == ffi.NULL else text_of(raw)
        parsed = scan_version(wanted)
        if parsed is None:
            return f"plugin {info.name}: invalid required event schema version '{wanted}'"
        if parsed[0] != HOST_EVENT_SCHEMA_MAJOR:
            return (
                f"plugin {info.name}: required event schema version '{wanted}' not compatible with the "
                f"framework's event schema {HOST_EVENT_SCHEMA_MAJOR}.x: major versions disagree"
            )
        return None

    @property
    def info(self) -> PluginInfo:
        return self.library.info

    @property
    def alive(self) -> bool:
        return bool(self._state != ffi.NULL)

    def _call(self, name: str, *args: Any) -> Any:
        fn = self.library.symbol(name)
        if fn is None:
            raise HostError(f"plugin {self.info.name} does not export plugin_{name}")
        return fn(*args)

    def _require_alive(self) -> None:
        if self._state == ffi.NULL:
            raise HostError(f"plugin {self.info.name} has been destroyed")

    def _set_owner_error(self, message: str) -> None:
        """What ``get_owner_last_error`` returns next (set by the table API)."""
        self._owner_error_c = ffi.new("char[]", message.encode("utf-8", "replace"))

    # -- parsing and capture listening (host/parsing.py, host/routines.py) -------

    def parse(self, event: HostEvent) -> bool:
        """``plugin_parse_event`` if the plugin parses this event's type and
        source (libsinsp's dispatch); ``False`` when it does not. A failure
        raises :class:`HostError` with the plugin's error, as libsinsp does."""
        from .parsing import parse_event

        return parse_event(self, event)

    def capture_open(self) -> None:
        """``plugin_capture_open``; :class:`HostError` when it fails."""
        from .routines import capture_call

        capture_call(self, "capture_open")

    def capture_close(self) -> None:
        """``plugin_capture_close``; :class:`HostError` when it fails."""
        from .routines import capture_call

        capture_call(self, "capture_close")

    def _on_log(self, component: str, message: str, severity: int) -> None:
        component = component or self.info.name
        self.logs.append(LogRecord(severity, component, message))
        if self._logger is not None:
            self._logger.log(_LEVELS.get(severity, logging.INFO), "%s: %s", component, message)

    def _event_codes(self, symbol: str, sources: frozenset[str]) -> frozenset[int] | None:
        fn = self.library.symbol(symbol)
        if fn is not None:
            count = ffi.new("uint32_t *")
            codes = fn(count, self._state)
            if codes != ffi.NULL and count[0] > 0:
                return frozenset(int(codes[i]) for i in range(count[0]))
        # libsinsp's default: every event for syscall-compatible plugins, else plugin events only.
        if not sources or "syscall" in sources:
            return None
        return frozenset({PLUGINEVENT_E})

    @property
    def last_error(self) -> str:
        """``plugin_get_last_error`` for this state."""
        if self._state == ffi.NULL:
            return NO_STATE_ERROR
        return text_of(self._call("get_last_error", self._state))

    # -- sourcing ----------------------------------------------------------------

    def open(self, params: str = "") -> Capture:
        """``plugin_open`` with ``params`` passed as is; raise :class:`HostError` with the plugin's error."""
        from .capture import Capture

        self._require_alive()
        if "sourcing" not in self.info.capabilities:
            raise HostError(f"plugin {self.info.name} has not event sourcing capabilities and cannot be used as input.")
        capture = Capture(self, params)
        self._captures.append(capture)
        return capture

    def _forget(self, capture: Capture) -> None:
        if capture in self._captures:
            self._captures.remove(capture)

    def list_open_params(self) -> list[dict[str, str]]:
        """The suggested open parameters, checked like libsinsp (``value``, ``desc``, ``separator``)."""
        self._require_alive()
        fn = self.library.symbol("list_open_params")
        if fn is None:
            return []
        where = f"error in plugin {self.info.name}"
        rc = ffi.new("ss_plugin_rc *", Rc.FAILURE)
        text = text_of(fn(self._state, rc))
        if rc[0] != Rc.SUCCESS:
            raise HostError(f"{where}: list_open_params has error {self.last_error}")
        if not text:
            return []
        try:
            entries = json.loads(text)
        except ValueError:
            entries = None
        if not isinstance(entries, list):
            raise HostError(f"{where}: list_open_params returned a non-array JSON")
        result = []
        for entry in entries:
            entry = entry if isinstance(entry, dict) else {}
            value = entry.get("value")
            if not isinstance(value, str) or not value:
                raise HostError(f"{where}: list_open_params has entry with no value")
            desc, sep = entry.get("desc"), entry.get("separator")
            result.append(
                {
                    "value": value,
                    "desc": desc if isinstance(desc, str) else "",
                    "separator": sep if isinstance(sep, str) else "",
                }
            )
        return result

    def event_to_string(self, event: HostEvent) -> str:
        """The plugin's rendering of one of its events, with libsinsp's fallback text."""
        self._require_alive()
        if event.plugin_id is None or event.plugin_id != self.info.id:
            raise HostError("can't format unknown non-plugin event to string")
        fn = self.library.symbol("event_to_string")
        text = text_of(fn(self._state, event.event_input())) if fn is not None else ""
        if text:
            return text
        payload = event.payload or b""
        shown = payload[:50]
        data = shown.decode("ascii") if all(0x20 <= b < 0x7F for b in shown) else "<binary>"
        return f"datalen={len(payload)} data={data}" + ("..." if len(payload) > 50 else "")

    # -- extraction --------------------------------------------------------------

    def extract(
        self, event: HostEvent, field: str | FieldRequest, *, strict: bool = True
    ) -> Value | list[Value] | None:
        """Extract one field (``name`` or ``name[arg]``) from ``event``, one field per call like libsinsp.

        Returns the value (a list for list fields), or ``None`` when the
        plugin gives no value or does not extract from this event's type or
        source. A failing ``extract_fields`` raises :class:`ExtractionError`
        with the plugin's last error; ``strict=False`` gives ``None`` instead,
        which is what libsinsp does.
        """
        self._require_alive()
        request = field if isinstance(field, FieldRequest) else self.library.field(field)
        codes = self.extract_event_types
        sources = self.info.extract_event_sources
        if (codes is not None and event.type not in codes) or (sources and event.source not in sources):
            return None
        info = request.field
        name_c = ffi.new("char[]", info.name.encode())
        key_c = ffi.new("char[]", request.arg_key.encode()) if request.arg_key is not None else ffi.NULL
        out = ffi.new("ss_plugin_extract_field *")
        out.field_id = info.id
        out.field = name_c
        out.arg_key = key_c
        out.arg_index = request.arg_index
        out.arg_present = int(request.arg_present)
        out.ftype = info.ftype
        out.flist = EPF_IS_LIST if info.is_list else 0
        inp = ffi.new("ss_plugin_field_extract_input *")
        inp.owner = self._owner
        inp.get_owner_last_error = _owner_last_error
        inp.num_fields = 1
        inp.fields = out
        inp.table_reader_ext = self.tables.reader_ext if self.tables is not None else ffi.NULL
        inp.value_offsets = ffi.NULL
        rc = self._call("extract_fields", self._state, event.event_input(), inp)
        if self.tables is not None:
            self.tables.check_released(self, "extract_fields")
        if rc != Rc.SUCCESS:
            if strict:
                raise ExtractionError(self.last_error)
            return None
        if out.res_len == 0:
            return None
        values = [_convert(info.type, out, i) for i in range(out.res_len if info.is_list else 1)]
        return values if info.is_list else values[0]

    def extract_many(
        self, event: HostEvent, fields: Iterable[str | FieldRequest], *, strict: bool = True
    ) -> dict[str, Value | list[Value] | None]:
        """:meth:`extract` for each field, keyed by the field expression."""
        result: dict[str, Value | list[Value] | None] = {}
        for f in fields:
            key = f.text if isinstance(f, FieldRequest) else f
            result[key] = self.extract(event, f, strict=strict)
        return result

    # -- lifetime ----------------------------------------------------------------

    def destroy(self) -> None:
        """Close open captures, then ``plugin_destroy`` (idempotent)."""
        for capture in list(self._captures):
            capture.close()
        if self.routines is not None:
            self.routines.forget(self)  # no routine may run into a destroyed state
        if self.tables is not None:
            self.tables.forget(self)
        if self._state != ffi.NULL:
            state, self._state = self._state, ffi.NULL
            self._call("destroy", state)
        self.library._forget(self)

    def __enter__(self) -> PluginHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def __repr__(self) -> str:
        return f"PluginHandle({self.info.name!r}, alive={self.alive})"


def _convert(ftype: str, out: Any, i: int) -> Value:
    if ftype in ("uint64", "reltime", "abstime"):
        return int(out.res.u64[i])
    if ftype == "string":
        ptr = out.res.str[i]
        return "" if ptr == ffi.NULL else bytes(ffi.string(ptr)).decode("utf-8", "replace")
    if ftype == "bool":
        return bool(out.res.boolean[i])
    buf = out.res.buf[i]
    data = bytes(ffi.buffer(buf.ptr, buf.len)) if buf.len else b""
    if len(data) not in (4, 16):
        raise ExtractionError(f"{ftype} value of {len(data)} bytes (expected 4 or 16)")
    address = ipaddress.ip_address(data)
    # The ABI carries a bare address for ipnet too: it is a host network (/32 or /128).
    return address if ftype == "ipaddr" else ipaddress.ip_network(address)
