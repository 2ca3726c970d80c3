"""The Python half of a plugin library: what the C glue calls.

The C glue (``build/glue/common.c`` and one file per capability) owns every
pointer the host sees and calls into this module for the cold paths (init,
open, close...). For the hot paths it calls plugin methods directly with
CPython's vectorcall, using objects prepared here and by each capability's
runtime mixin (:mod:`.capabilities`): ``State.event`` (the one
:class:`Event` the glue re-targets per event), ``State.fields`` (bound
extractors), the instance's bound ``next_batch``.

The glue checks :data:`.version.GLUE_CONTRACT` before it creates a
:class:`Binding`, so everything it calls here may change only together with
that number.

Pointers arrive as integers and are cast with the library's own cffi ``ffi``.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
import traceback
from typing import Any

from ..errors import ConfigError, EndOfStream, PluginError, Timeout
from ..event import Event
from ..extract import Located
from ..plugin import Plugin
from ..tables import Tables
from . import spec as _spec
from .capabilities import selectable, selectable_features
from .tables import NoTables, TablesRuntime

# Referenced by the C glue (fetched once at load).
END_OF_STREAM = EndOfStream
TIMEOUT = Timeout
LOCATED = Located

_SEVERITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def _severity(levelno: int) -> int:
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return _SEVERITY[level]
    return 8 if levelno < logging.DEBUG else 7


class HostLogHandler(logging.Handler):
    """Sends log records to the host's ``log_fn`` (Falco's logger)."""

    def __init__(self, log_fn: Any, owner: Any, component: str) -> None:
        super().__init__(logging.NOTSET)
        self._log_fn = log_fn
        self._owner = owner
        self._component = component.encode()
        self.live = True

    def emit(self, record: logging.LogRecord) -> None:
        if not self.live:  # the owner may be gone: a late thread must not call into a dead host
            return
        try:
            msg = self.format(record).encode("utf-8", "replace").replace(b"\0", b" ")
            self._log_fn(self._owner, self._component, msg, _severity(record.levelno))
        except Exception:  # noqa: BLE001 - logging must never take the plugin down
            pass


# Python-wide diagnostics (uncaught thread exceptions, warnings, unraisable
# exceptions, the records of libraries' own loggers) belong to no plugin
# state: they go to every live state's host log, and nowhere when there is
# none. Never to the host's stderr. A leaf logger of its own, so that no other
# record (a Python host's own, under "falco_plugin_tools.host") reaches them.
PROCESS_LOG = logging.getLogger(f"{__name__}.process")
PROCESS_LOG.propagate = False
PROCESS_LOG.addHandler(logging.NullHandler())


class _ToHostLogs(logging.Handler):
    """On the root logger of an interpreter a plugin started: records of any
    library's logger (urllib3, the plugin's modules...) go to the host logs,
    where Python would otherwise print them on stderr (logging.lastResort)."""

    def emit(self, record: logging.LogRecord) -> None:
        PROCESS_LOG.handle(record)


def _route_python_diagnostics() -> None:
    """Send what the interpreter would print on stderr to the host's log instead."""
    import threading
    import warnings

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        exc = (args.exc_type, args.exc_value, args.exc_traceback)
        PROCESS_LOG.error("uncaught exception in plugin thread %s", name, exc_info=exc)  # type: ignore[arg-type]

    def unraisable_hook(args: Any) -> None:
        exc = (args.exc_type, args.exc_value, args.exc_traceback)
        PROCESS_LOG.error("%s: %r", args.err_msg or "exception ignored", args.object, exc_info=exc)

    def show_warning(message: Any, category: type[Warning], filename: str, lineno: int, *_: Any, **__: Any) -> None:
        PROCESS_LOG.warning("%s:%s: %s: %s", filename, lineno, category.__name__, message)

    threading.excepthook = thread_hook
    sys.unraisablehook = unraisable_hook
    warnings.showwarning = show_warning
    logging.getLogger().addHandler(_ToHostLogs())


def describe(context: str, exc: BaseException) -> str:
    """The ``get_last_error`` text for an exception raised in ``context``."""
    if isinstance(exc, PluginError):
        text = str(exc)
    else:
        detail = str(exc)
        text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return f"{context}: {text}" if context else text


class Binding:
    """One loaded plugin library: its class, its cffi module, its spec."""

    def __init__(self, module_name: str, target: str, baked: str, own_interpreter: bool = False) -> None:
        if own_interpreter:  # a Python host keeps its own hooks
            _route_python_diagnostics()
        module = sys.modules[module_name]
        self.ffi = module.ffi  # type: ignore[attr-defined]
        self.lib = module.lib  # type: ignore[attr-defined]
        mod_name, _, cls_name = target.partition(":")
        cls = getattr(importlib.import_module(mod_name), cls_name)
        self.spec = _spec.resolve(cls)
        if self.spec.baked() != baked:
            raise PluginError(
                f"the declarations of {target} differ from those this library was built with; rebuild the plugin"
            )
        self.cls: type[Plugin] = cls
        impls = {impl.capability.name: impl for impl in (*selectable(), *selectable_features())}
        self._setup = [(impls[name], cap) for name, cap in self.spec.units.items()]
        # One State class per library, made of the mixins of its capabilities.
        self.state_type = type("State", (*(impl.state_mixin for impl, _ in self._setup), State), {})

    def init(self, input_addr: int, event_ref_addr: int) -> State:
        state: State = self.state_type(self, input_addr, event_ref_addr)
        for impl, cap in self._setup:
            impl.setup(state, cap)
        return state

    def describe_error(self, context: str, exc: BaseException, state: State | None) -> str:
        text = describe(context, exc)
        if state is not None and not isinstance(exc, (EndOfStream, Timeout)):
            # Hosts may drop a failure silently (libsinsp ignores a failed parse_event and shows a failed
            # field as <NA>): the plugin's log and metrics say it instead.
            state.note_failure(context, text)
            if not isinstance(exc, PluginError):
                # A traceback is for whoever turned debug logging on, never stderr.
                tb = "".join(traceback.format_exception(exc)).rstrip()
                state.log.debug("%s\n%s", text, tb)
        return text


class FailureLog:
    """Failures made visible without flooding the log: the first of each kind (an entry point, a
    field, an async event name) is logged at warning with its message; later ones of that kind are
    counted, and a warning with the count and the latest message follows at most every
    :attr:`INTERVAL` seconds. Holds no reference to the plugin or its state."""

    INTERVAL = 10.0

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._kinds: dict[str, list[float]] = {}  # kind -> [failures not yet reported, time of the last report]

    def __call__(self, kind: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            seen = self._kinds.get(kind)
            if seen is None:
                self._kinds[kind] = [0, now]
                more = 0
            else:
                seen[0] += 1
                if now - seen[1] < self.INTERVAL:
                    return
                more, since = int(seen[0]), now - seen[1]
                seen[0], seen[1] = 0, now
        if more == 0:
            self._log.warning("%s", message)
        else:
            self._log.warning("%s (%d failures of %s in the last %.0f s)", message, more, kind, since)


class State:
    """One ``plugin_init``: the plugin object and what the hot paths need.

    The capabilities' mixins add what their glue calls (``open``,
    ``fields``...); this base holds what every plugin has.
    """

    def __init__(self, binding: Binding, input_addr: int, event_ref_addr: int) -> None:
        self.binding = binding
        spec = binding.spec
        ffi = binding.ffi
        inp = ffi.cast("ss_plugin_init_input *", input_addr)
        self.log = logging.Logger(f"falco_plugin.{spec.name}")
        self.log.propagate = False
        self._host_log: logging.Handler = logging.NullHandler()
        if inp != ffi.NULL and inp.log_fn != ffi.NULL:
            self._host_log = HostLogHandler(inp.log_fn, inp.owner, spec.name)
            PROCESS_LOG.addHandler(self._host_log)
        self.log.addHandler(self._host_log)
        raw = ffi.string(inp.config).decode("utf-8") if inp != ffi.NULL and inp.config != ffi.NULL else ""
        self.event = Event()
        # The glue re-targets this one Event at each new event by writing its
        # slots and the C struct behind _cur; nothing is allocated per event
        # beyond the number and the payload.
        self.event._cur = ffi.cast("fp_event_ref *", event_ref_addr)
        plugin = binding.cls()
        plugin.log = self.log
        plugin.tables = Tables(NoTables())  # replaced by attach_tables in a library with the table glue
        self.plugin = plugin
        self._raw_config = raw
        self._started = False
        self.failures = FailureLog(self.log)

    def note_failure(self, context: str, text: str) -> None:
        """A call into the plugin failed with ``text`` (``context``: the entry point or field): log it
        (see :class:`FailureLog`; the glue counts it, the ``sdk.errors`` metric)."""
        self.failures(context, text)

    def attach_tables(self, glue: Any, state_addr: int) -> None:
        """Called by the table glue (``build/glue/tables.c``) before ``start``."""
        self.tables = TablesRuntime(glue, state_addr, self.log)
        self.plugin.tables = Tables(self.tables)

    def start(self) -> None:
        """Run the plugin's own ``init`` (separate so its failures can be logged)."""
        self.plugin.init(self._config(self._raw_config, "init config"))
        self._started = True

    def _config(self, raw: str, what: str) -> Any:
        ctype = self.binding.spec.config_type
        if ctype is None:
            return raw
        try:
            return ctype.parse(raw)
        except ConfigError as exc:
            raise PluginError(f"invalid {what}: {exc}") from None

    def destroy(self) -> None:
        """End the state: the plugin's ``destroy`` if its ``init`` succeeded, then
        cut every path from Python back to this owner (its log)."""
        try:
            if self._started:
                self.plugin.destroy()
        except BaseException as exc:
            self.binding.describe_error("destroy", exc, self)  # logged while the log still works
            raise
        finally:
            PROCESS_LOG.removeHandler(self._host_log)
            if isinstance(self._host_log, HostLogHandler):
                self._host_log.live = False

    def set_config(self, raw: str) -> None:
        """Apply a new configuration at run time (``plugin_set_config``)."""
        self.plugin.set_config(self._config(raw, "config"))


__all__ = ["Binding", "FailureLog", "State", "describe"]
