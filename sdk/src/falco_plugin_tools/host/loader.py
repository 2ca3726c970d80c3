"""Loading a plugin library the way libsinsp does.

:meth:`PluginLibrary.load` follows libsinsp's order and messages: ``dlopen``
(``RTLD_LAZY``), every ``plugin_*`` symbol looked up by name, the required
API version checked numerically against the host's 3.12.0, the required
symbols, name and version, the capabilities (rejecting half-implemented
ones), the sourcing identity, the fields, and the event source lists. All
of it happens before ``init``, with no plugin state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falco_plugin_tools.abi import REQUIRED_SYMBOLS
from falco_plugin_tools.host import raw as _raw
from falco_plugin_tools.host._ffi import ffi, scan_version, text_of
from falco_plugin_tools.host.errors import FieldExpressionError, HostError, LoadError
from falco_plugin_tools.host.fields import (
    FieldInfo,
    FieldRequest,
    NotAJsonString,
    as_json_string,
    parse_field_expression,
    parse_fields_json,
)
from falco_plugin_tools.host.handle import PluginHandle
from falco_plugin_tools.host.info import CAPABILITIES, PluginInfo
from falco_plugin_tools.host.schema import SCHEMA_NONE, parse_init_schema

if TYPE_CHECKING:
    from falco_plugin_tools.host.routines import RoutinePool
    from falco_plugin_tools.host.tables import TableRegistry

__all__ = ["HOST_API_VERSION", "CAPABILITIES", "PluginInfo", "PluginLibrary", "check_api_version"]

HOST_API_VERSION = (3, 12, 0)


def check_api_version(required: str, host: tuple[int, int, int] = HOST_API_VERSION) -> str | None:
    """Why a plugin requiring API ``required`` cannot run on ``host``, or ``None`` if it can."""
    parsed = scan_version(required)
    if parsed is None:
        return f"plugin provided an invalid required API version: '{required}'"
    major, minor, patch = parsed
    if major != host[0]:
        reason = "major versions disagree"
    elif minor > host[1]:
        reason = "framework's minor is less than the requested one"
    elif minor == host[1] and patch > host[2]:
        reason = "framework's patch is less than the requested one"
    else:
        return None
    host_str = ".".join(map(str, host))
    return (
        f"plugin required API version '{required}' not compatible with the framework's API version '{host_str}': "
        + reason
    )


_SOURCING_HALF = "must implement all of 'plugin_open', 'plugin_close', and 'plugin_next_batch' (event sourcing)"
_IDENTITY_HALF = "must implement both 'plugin_get_id' and 'plugin_get_event_source' or neither (event sourcing)"
# (symbol, symbol, capability, what libsinsp calls it) for the capabilities made of two symbols.
_PAIRS = (
    ("get_fields", "extract_fields", "extraction", "field extraction"),
    ("get_async_events", "set_async_event_handler", "async", "async events"),
    ("capture_open", "capture_close", "capture_listening", "capture listening"),
)


def _capabilities(sym: dict[str, Any]) -> tuple[set[str], list[str], int, str]:
    """libsinsp's capability detection: (capabilities, problems, id, source)."""
    caps: set[str] = set()
    problems: list[str] = []
    pid, source = 0, ""
    sourcing = [n in sym for n in ("open", "close", "next_batch")]
    if all(sourcing):
        # get_id / get_event_source are called here already, as libsinsp does.
        pid = int(sym["get_id"]()) if "get_id" in sym else 0
        source = text_of(sym["get_event_source"]()) if "get_event_source" in sym else ""
        if (pid != 0) == bool(source):
            caps.add("sourcing")
        else:
            problems.append(_IDENTITY_HALF)
    elif any(sourcing):
        problems.append(_SOURCING_HALF)
    for first, second, cap, what in _PAIRS:
        if first in sym and second in sym:
            caps.add(cap)
        elif second in sym or (cap == "capture_listening" and first in sym):
            # libsinsp ignores a lone get_fields / get_async_events (nothing to call),
            # but a lone capture_open would be called without its closing half.
            problems.append(f"must implement both 'plugin_{first}' and 'plugin_{second}' ({what})")
    if "parse_event" in sym:
        caps.add("parsing")
    if "sourcing" not in caps:
        pid, source = 0, ""
    return caps, problems, pid, source


def _json_strlist(plugin: str, sym: dict[str, Any], name: str, *, allow_empty: bool = True) -> list[str]:
    """A ``get_*_sources``-style JSON array of strings (missing symbol: empty)."""
    if name not in sym:
        return []
    text = text_of(sym[name]())
    if not text:
        if allow_empty:
            return []
        raise HostError(f"error in plugin {plugin}: '{name}' did not return a json array but it should")
    bad = HostError(f"error in plugin {plugin}: '{name}' did not return a json array")
    try:
        value = json.loads(text)
    except ValueError:
        raise bad from None
    if not isinstance(value, list):
        raise bad
    try:
        items = [as_json_string(v) for v in value]
    except NotAJsonString:
        raise bad from None
    return [s for s in items if s]


class PluginLibrary:
    """A loaded plugin library; :meth:`init` it to get a :class:`PluginHandle` (several may coexist)."""

    def __init__(self, path: Path, library: _raw.Library, info: PluginInfo, schema: tuple[int, str]) -> None:
        self.path = path
        self.raw = library
        """The raw layer's library: every ``plugin_*`` function, callable without checks."""
        self.info = info
        self._schema_type, self._schema_text = schema
        self._handles: list[PluginHandle] = []
        self._requests: dict[str, FieldRequest] = {}

    @classmethod
    def load(cls, path: str | Path) -> PluginLibrary:
        """Load ``path`` and check it like libsinsp; raise :class:`LoadError` with its message."""
        path = Path(path)
        try:
            # A path, never a bare name: dlopen would look `libx.so` (or `./libx.so`, which
            # Path shortens to that) up in the system's library directories, not here.
            library = _raw.Library.open(path.absolute())
        except OSError as exc:
            detail = _dlerror_text(str(exc), str(path))
            raise LoadError(path, "can't load plugin dynamic library:" + (f" {detail}" if detail else "")) from None
        try:
            info, schema = _inspect(library.symbols)
        except HostError as exc:
            library.close()
            raise LoadError(path, str(exc)) from None
        return cls(path, library, info, schema)

    # -- symbols ---------------------------------------------------------------

    def symbol(self, name: str) -> Any | None:
        """The C function ``plugin_<name>``, or ``None`` when the library does not export it."""
        return self.raw.symbol(name)

    def has(self, name: str) -> bool:
        return self.raw.has(name)

    # -- fields ----------------------------------------------------------------

    def field(self, expression: str) -> FieldRequest:
        """Parse a field expression (``name`` or ``name[arg]``) against this plugin's fields."""
        request = self._requests.get(expression)
        if request is None:
            if "extraction" not in self.info.capabilities:
                raise FieldExpressionError(f"plugin {self.info.name} has no field extraction capability")
            request = parse_field_expression(expression, self.info.fields)
            self._requests[expression] = request
        return request

    # -- lifetime --------------------------------------------------------------

    def init(
        self,
        config: str = "",
        *,
        forward_logs: bool = False,
        tables: TableRegistry | None = None,
        routines: RoutinePool | None = None,
    ) -> PluginHandle:
        """Validate ``config`` against the init schema (like libsinsp) and ``plugin_init``.

        With ``forward_logs`` the plugin's log messages also go to the
        ``falco_plugin_tools.host.<name>`` Python logger (they are always kept in
        :attr:`PluginHandle.logs`). ``tables`` is the host's
        :class:`~falco_plugin_tools.host.tables.TableRegistry` (shared by the
        plugins of one host), ``routines`` its routine thread pool.
        """
        if self.raw.closed:
            raise HostError(f"plugin library {self.path} is closed")
        handle = PluginHandle(self, config, forward_logs=forward_logs, tables=tables, routines=routines)
        self._handles.append(handle)
        return handle

    def _forget(self, handle: PluginHandle) -> None:
        if handle in self._handles:
            self._handles.remove(handle)

    @property
    def init_schema_raw(self) -> tuple[int, str]:
        """``get_init_schema``'s (type, text) as returned (``(0, "")`` when not exported)."""
        return self._schema_type, self._schema_text

    def close(self) -> None:
        """Destroy the states still alive, then ``dlclose`` (what sinsp does at teardown)."""
        for handle in list(self._handles):
            handle.destroy()
        self.raw.close()

    def __enter__(self) -> PluginLibrary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PluginLibrary({str(self.path)!r}, name={self.info.name!r})"


def _dlerror_text(message: str, path: str) -> str:
    """The ``dlerror()`` part of cffi's "cannot load library" message."""
    prefix = f"cannot load library '{path}': "
    if message.startswith(prefix):
        message = message[len(prefix) :]
    return message.split("  Additionally, ctypes.util.find_library()")[0].strip()


def _inspect(sym: dict[str, Any]) -> tuple[PluginInfo, tuple[int, str]]:
    if "get_required_api_version" not in sym:
        raise HostError("plugin_get_required_api_version symbol not implemented")
    required = text_of(sym["get_required_api_version"]())
    problem = check_api_version(required)
    if problem:
        raise HostError(problem)
    for name in REQUIRED_SYMBOLS:
        if name not in sym:
            raise HostError(f"required symbol not implemented: '{name}'")
    name = text_of(sym["get_name"]())
    version = text_of(sym["get_version"]())
    if scan_version(version) is None:
        raise HostError(f"plugin provided an invalid version string: '{version}'")
    caps, problems, pid, source = _capabilities(sym)
    if problems:
        raise HostError("broken plugin capabilities: " + ", ".join(problems))
    if not caps:
        raise HostError("plugin does not implement any capability")
    if source == "syscall":
        raise HostError("plugin can't implement the reserved event source 'syscall'")
    fields: list[FieldInfo] = []
    if "extraction" in caps:
        text = sym["get_fields"]()
        fields = parse_fields_json(name, None if text == ffi.NULL else text_of(text))
    # A sourcing plugin's own source always joins the lists it publishes.
    own = {source} if source else set()
    extract_sources: set[str] = set()
    if "extraction" in caps:
        extract_sources = set(_json_strlist(name, sym, "get_extract_event_sources")) | own
    parse_sources: set[str] = set()
    if "parsing" in caps:
        parse_sources = set(_json_strlist(name, sym, "get_parse_event_sources")) | own
    async_sources: set[str] = set()
    async_events: list[str] = []
    if "async" in caps:
        async_sources = set(_json_strlist(name, sym, "get_async_event_sources")) | own
        async_events = _json_strlist(name, sym, "get_async_events", allow_empty=False)
    schema_type, schema_text = SCHEMA_NONE, ""
    if "get_init_schema" in sym:
        st = ffi.new("ss_plugin_schema_type *", SCHEMA_NONE)
        schema_text = text_of(sym["get_init_schema"](st))
        schema_type = int(st[0])
    info = PluginInfo(
        name=name,
        version=version,
        description=text_of(sym["get_description"]()),
        contact=text_of(sym["get_contact"]()),
        required_api_version=required,
        capabilities=frozenset(caps),
        id=pid,
        event_source=source,
        fields=fields,
        init_schema=parse_init_schema(schema_type, schema_text),
        extract_event_sources=frozenset(extract_sources),
        symbols=frozenset("plugin_" + n for n in sym),
        parse_event_sources=frozenset(parse_sources),
        async_event_sources=frozenset(async_sources),
        async_events=tuple(async_events),
    )
    return info, (schema_type, schema_text)
