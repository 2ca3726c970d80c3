"""The host's side of async events, as libsinsp does it.

:meth:`AsyncEvents.start` sets the plugin's handler (``set_async_event_handler``);
every event the plugin pushes is checked like libsinsp checks it (type 402,
three parameters, a declared name) and lands in a queue, in arrival order.
:meth:`AsyncEvents.stop` sets a ``NULL`` handler, which the plugin must only
return from once its workers are done. :meth:`AsyncEvents.dump_state`
collects what ``plugin_dump_state`` emits, as a capture dump would.
"""

from __future__ import annotations

import queue
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from falco_plugin._internal.layout import ASYNC_EVENT, HEADER, LEN_OFFSET
from falco_plugin_tools.host._ffi import PLUGIN_MAX_ERRLEN, Rc, ffi
from falco_plugin_tools.host.errors import HostError

if TYPE_CHECKING:
    from falco_plugin_tools.host.views import HandleView

__all__ = ["ASYNCEVENT_E", "AsyncEvent", "AsyncEvents", "decode_async_event"]

ASYNCEVENT_E = ASYNC_EVENT
_HEADER = HEADER
_LENS = struct.Struct("<III")
_NAME_OFFSET = _HEADER.size + _LENS.size + 4  # 42: after the plugin id


class AsyncEvent(NamedTuple):
    """One async event, copied out of the plugin's memory."""

    name: str
    payload: bytes
    ts: int
    """As the plugin set it; ``2**64-1`` means "the host stamps it"."""
    tid: int
    plugin_id: int
    raw: bytes


def decode_async_event(raw: bytes) -> AsyncEvent:
    """Parse a 402 event; raise ``ValueError`` naming what is malformed."""
    if len(raw) < _NAME_OFFSET:
        raise ValueError(f"{len(raw)} bytes is too short for an async event")
    ts, tid, length, etype, nparams = _HEADER.unpack_from(raw)
    if etype != ASYNCEVENT_E or nparams != 3:
        raise ValueError(f"type {etype} with {nparams} params, not an async event")
    l0, l1, l2 = _LENS.unpack_from(raw, _HEADER.size)
    if l0 != 4 or l1 == 0 or length != _HEADER.size + _LENS.size + l0 + l1 + l2 or length > len(raw):
        raise ValueError(f"parameter lengths {l0}, {l1}, {l2} do not add up to the event length {length}")
    (pid,) = struct.unpack_from("<I", raw, _HEADER.size + _LENS.size)
    name = raw[_NAME_OFFSET : _NAME_OFFSET + l1]
    if name[-1:] != b"\0" or b"\0" in name[:-1]:
        raise ValueError("the event name is not a NUL-terminated string")
    payload = raw[_NAME_OFFSET + l1 : _NAME_OFFSET + l1 + l2]
    return AsyncEvent(name[:-1].decode("utf-8", "replace"), payload, ts, tid, pid, raw[:length])


def _ignore_callback_error(*_: object) -> None:
    """A host callback must never raise into plugin code."""


def _refuse(err: Any, message: str) -> int:
    if err != ffi.NULL:
        data = message.encode("utf-8", "replace")[: PLUGIN_MAX_ERRLEN - 1] + b"\0"
        ffi.memmove(err, data, len(data))
    return int(Rc.FAILURE)


def _on_event(owner: Any, evt: Any, err: Any) -> int:
    sink: _Sink = ffi.from_handle(owner)
    return sink.receive(evt, err)


# One callback for the whole process: the owner pointer leads back to the sink.
_handler = ffi.callback(
    "ss_plugin_rc(ss_plugin_owner_t *, const ss_plugin_event *, char *)",
    _on_event,
    error=int(Rc.FAILURE),
    onerror=_ignore_callback_error,
)


class _Sink:
    """Where one handler's events go; libsinsp's checks, then ``put``."""

    def __init__(
        self, plugin: str, names: frozenset[str], put: Callable[[AsyncEvent], None], late: Callable[[], None]
    ) -> None:
        self.plugin = plugin
        self.names = names
        self.put = put
        self.late = late
        self.owner = ffi.new_handle(self)
        self.live = True

    def receive(self, evt: Any, err: Any) -> int:
        if not self.live:
            self.late()
            return _refuse(err, f"async event sent with NULL handler: {self.plugin}")
        length = int(ffi.cast("uint32_t *", ffi.cast("char *", evt) + LEN_OFFSET)[0])
        raw = bytes(ffi.buffer(evt, max(length, _HEADER.size)))
        try:
            event = decode_async_event(raw)
        except ValueError:
            return _refuse(err, f"malformed async event produced by plugin: {self.plugin}")
        if event.name not in self.names:
            return _refuse(err, f"incompatible async event '{event.name}' produced by plugin: {self.plugin}")
        self.put(event)
        return int(Rc.SUCCESS)


class AsyncEvents:
    """Async events of one plugin state (``PluginHandle.async_events``)."""

    def __init__(self, handle: HandleView, state: Callable[[], Any]) -> None:
        self._handle = handle
        self._state = state
        info = handle.info
        if "async" not in info.capabilities:
            raise HostError(f"plugin {info.name} has no async events capability")
        self.names = frozenset(info.async_events)
        self.queue: queue.Queue[AsyncEvent] = queue.Queue()
        """Every event the plugin pushed while the handler was set, in order."""
        self._sink: _Sink | None = None
        self.late_calls = 0
        """Handler calls after the plugin was told to stop (or after dump_state returned): a plugin bug."""

    def _late(self) -> None:
        self.late_calls += 1

    @property
    def running(self) -> bool:
        return self._sink is not None

    def _call(self, symbol: str, owner: Any, handler: Any) -> int:
        fn = self._handle.library.symbol(symbol)
        if fn is None:
            raise HostError(f"plugin {self._handle.info.name} does not export plugin_{symbol}")
        return int(fn(self._state(), owner, handler))

    def start(self) -> None:
        """Set the handler, as libsinsp does when a live capture opens."""
        if self._sink is not None:
            raise HostError("must reset the async event handler before setting a new one")
        sink = _Sink(self._handle.info.name, self.names, self.queue.put, self._late)
        self._sink = sink
        if self._call("set_async_event_handler", sink.owner, _handler) != Rc.SUCCESS:
            self._sink = None
            sink.live = False
            raise HostError(
                f"can't set async event handler for plugin '{self._handle.info.name}' : {self._handle.last_error}"
            )

    def stop(self) -> None:
        """Set a ``NULL`` handler: the plugin returns once its workers are done."""
        sink, self._sink = self._sink, None
        if sink is None:
            return
        rc = self._call("set_async_event_handler", sink.owner, ffi.NULL)
        # Anything arriving later is refused: the plugin was told to stop.
        sink.live = False
        if rc != Rc.SUCCESS:
            raise HostError(
                f"can't reset async event handler for plugin '{self._handle.info.name}' : {self._handle.last_error}"
            )

    def get(self, timeout: float = 5.0) -> AsyncEvent:
        """The next event (``queue.Empty`` after ``timeout`` seconds)."""
        return self.queue.get(timeout=timeout)

    def drain(self) -> list[AsyncEvent]:
        """Every event received and not read yet."""
        out = []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                return out

    def dump_state(self) -> list[AsyncEvent]:
        """``plugin_dump_state``: the events it emitted, in order."""
        got: list[AsyncEvent] = []
        sink = _Sink(self._handle.info.name, self.names, got.append, self._late)
        try:
            rc = self._call("dump_state", sink.owner, _handler)
        finally:
            sink.live = False
        if rc != Rc.SUCCESS:
            raise HostError(f"dump error for plugin '{self._handle.info.name}' : {self._handle.last_error}")
        return got

    def close(self) -> None:
        """:meth:`stop` if running (the handle does it before destroy, as sinsp does at close)."""
        self.stop()
