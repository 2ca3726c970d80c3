"""One initialised plugin state (``plugin_init`` .. ``plugin_destroy``) and the
calls made on it: open, extract, event_to_string, list_open_params."""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from falco_plugin.event import PLUGIN_EVENT
from falco_plugin_tools.host import raw as _raw
from falco_plugin_tools.host._ffi import Rc, ffi, scan_version
from falco_plugin_tools.host.async_events import AsyncEvents
from falco_plugin_tools.host.capture import Capture
from falco_plugin_tools.host.errors import ExtractionError, HostError
from falco_plugin_tools.host.events import HostEvent
from falco_plugin_tools.host.fields import EPF_IS_LIST, FieldRequest
from falco_plugin_tools.host.info import PluginInfo
from falco_plugin_tools.host.metrics import MetricValue, read_metrics
from falco_plugin_tools.host.parsing import parse_event
from falco_plugin_tools.host.routines import RoutinePool, capture_call
from falco_plugin_tools.host.schema import validate_init_config
from falco_plugin_tools.host.views import LibraryView

if TYPE_CHECKING:
    from falco_plugin_tools.host.tables import TableRegistry

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
_forwarding = threading.local()


class LogRecord(NamedTuple):
    """A message the plugin sent through ``log_fn``."""

    severity: int
    """``ss_plugin_log_severity``: 1 (fatal) .. 8 (trace)."""
    component: str
    message: str


HOST_EVENT_SCHEMA_MAJOR = 4
"""Major version of the event schema of the libsinsp this host emulates (libs 0.25)."""


class PluginHandle:
    """An initialised plugin (``plugin_init`` succeeded); use as a context manager or call :meth:`destroy`."""

    def __init__(
        self,
        library: LibraryView,
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
        info = library.info
        self.logs: list[LogRecord] = []
        self._logger = logging.getLogger(f"falco_plugin_tools.host.{info.name}") if forward_logs else None
        self._captures: list[Capture] = []
        self._rs: _raw.State | None = None
        self._asks: dict[str, _raw.Request] = {}
        """The raw request of each field expression extracted so far."""
        self._async: AsyncEvents | None = None
        schema_type, schema_text = library.init_schema_raw
        self.config = validate_init_config(info.name, schema_type, schema_text, config)
        offers_tables = tables is not None and bool({"parsing", "extraction"} & info.capabilities)
        state = library.raw.init(
            self.config, on_log=self._on_log, tables=tables.init_input() if tables and offers_tables else None
        )
        self._rs = state
        if tables is not None:
            state.table_reader_ext = tables.reader_ext
            tables.check_released(state, "init")
        if state.rc != Rc.SUCCESS:
            error = state.last_error if not state.null else NO_STATE_ERROR
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
        given = self._state.required_event_schema_version()
        wanted = "3.0.0" if given is None else given
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
        return self._rs is not None and not self._rs.null

    @property
    def raw(self) -> _raw.State:
        """The raw layer's state, for calls this layer does not check (it is destroyed with the handle)."""
        if self._rs is None:
            raise HostError(f"plugin {self.info.name} has no state")
        return self._rs

    @property
    def _state(self) -> _raw.State:
        state = self._rs
        if state is None or state.state == ffi.NULL:
            raise HostError(f"plugin {self.info.name} has been destroyed")
        return state

    def _require_alive(self) -> None:
        if not self.alive:
            raise HostError(f"plugin {self.info.name} has been destroyed")

    # -- parsing and capture listening (host/parsing.py, host/routines.py) -------

    parse_failures = 0
    """Failed ``parse`` calls so far."""

    def parse(self, event: HostEvent, *, strict: bool = True) -> bool:
        """``plugin_parse_event`` if the plugin parses this event's type and
        source (libsinsp's dispatch); ``False`` when it does not. A failure
        raises :class:`HostError` with the plugin's error; with ``strict=False``
        it is counted (:attr:`parse_failures`) and ``False`` returned, and the
        caller goes on with the next event, as libsinsp does."""

        return parse_event(self, event, strict)

    def capture_open(self) -> None:
        """``plugin_capture_open``; :class:`HostError` when it fails."""

        capture_call(self, "capture_open")

    def capture_close(self) -> None:
        """``plugin_capture_close``; :class:`HostError` when it fails."""

        capture_call(self, "capture_close")

    def _on_log(self, component: str, message: str, severity: int) -> None:
        if getattr(_forwarding, "active", False):
            # Our own forwarded record, back through a Python plugin's log handler: the plugins'
            # runtime sends records of every logger to its host, ours included.
            return
        component = component or self.info.name
        self.logs.append(LogRecord(severity, component, message))
        if self._logger is not None:
            _forwarding.active = True
            try:
                self._logger.log(_LEVELS.get(severity, logging.INFO), "%s: %s", component, message)
            finally:
                _forwarding.active = False

    def _event_codes(self, symbol: str, sources: frozenset[str]) -> frozenset[int] | None:
        codes = self._state.event_types(symbol)
        if codes:
            return frozenset(codes)
        # libsinsp's default: every event for syscall-compatible plugins, else plugin events only.
        if not sources or "syscall" in sources:
            return None
        return frozenset({PLUGIN_EVENT})

    @property
    def last_error(self) -> str:
        """``plugin_get_last_error`` for this state."""
        if not self.alive:
            return NO_STATE_ERROR
        return self.raw.last_error

    # -- sourcing ----------------------------------------------------------------

    def open(self, params: str = "") -> Capture:
        """``plugin_open`` with ``params`` passed as is; raise :class:`HostError` with the plugin's error."""

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
        if not self.library.has("list_open_params"):
            return []
        where = f"error in plugin {self.info.name}"
        rc, given = self._state.list_open_params()
        text = given or ""
        if rc != Rc.SUCCESS:
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
        text = self._state.event_to_string(event.raw_event())[1] if self.library.has("event_to_string") else ""
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
        source (or the event has no known source). A failing ``extract_fields``
        raises :class:`ExtractionError` with the plugin's last error;
        ``strict=False`` gives ``None`` instead, which is what libsinsp does.
        """
        state = self._state
        request = field if isinstance(field, FieldRequest) else self.library.field(field)
        codes = self.extract_event_types
        sources = self.info.extract_event_sources
        if event.source is None or (codes is not None and event.type not in codes):
            return None  # libsinsp: no extraction from an event of no known source
        if sources and event.source not in sources:
            return None
        info = request.field
        ask = self._asks.get(request.text)
        if ask is None:
            ask = self._asks[request.text] = _raw.Request(
                info.id,
                info.name,
                arg_present=request.arg_present,
                arg_index=request.arg_index,
                arg_key=request.arg_key,
                ftype=info.ftype,
                flist=EPF_IS_LIST if info.is_list else 0,
            )
        rc, out = state.extract_one(event.raw_event(), ask)
        if self.tables is not None:
            self.tables.check_released(state, "extract_fields")
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

    # -- async events and metrics (host/async_events.py, host/metrics.py) --------------

    @property
    def async_events(self) -> AsyncEvents:
        """This state's async events: ``start()``, ``stop()``, ``get()``, ``dump_state()``."""

        self._require_alive()
        if self._async is None:
            self._async = AsyncEvents(self, self._state_pointer)
        return self._async

    def _state_pointer(self) -> Any:
        return self._state.state

    def metrics(self) -> list[MetricValue]:
        """``plugin_get_metrics``, with typed values (empty when the plugin has none)."""
        return read_metrics(self.library, self._state_pointer())

    # -- lifetime ----------------------------------------------------------------

    def destroy(self) -> None:
        """Stop async events and close open captures (as sinsp does), then ``plugin_destroy`` (idempotent)."""
        if self._async is not None and self.alive:
            try:
                self._async.close()
            except HostError as exc:  # destroy goes on, like sinsp's close
                self.logs.append(LogRecord(3, self.info.name, str(exc)))
        for capture in list(self._captures):
            capture.close()
        if self._rs is not None:
            if self.routines is not None:
                self.routines.forget(self._rs)  # no routine may run into a destroyed state
            if self.tables is not None:
                self.tables.forget(self._rs)
        if self.alive and self._rs is not None:
            self._rs.destroy()
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
