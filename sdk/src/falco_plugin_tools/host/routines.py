"""Capture listening in the Python host: capture open/close and a routine pool.

libsinsp calls ``plugin_capture_open`` when a capture starts and
``plugin_capture_close`` when it ends, each with the table reader and writer
vtables and the routine vtable of its thread pool. A subscribed routine is
called over and over on the pool's threads until it returns false or is
unsubscribed. :class:`RoutinePool` runs each routine on a thread of its own.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from falco_plugin_tools.host._ffi import Rc, ffi
from falco_plugin_tools.host.errors import HostError

if TYPE_CHECKING:
    from falco_plugin_tools.host.raw import State
    from falco_plugin_tools.host.views import HandleView

__all__ = ["RoutinePool", "capture_call"]


class _Routine:
    def __init__(self, owner: State, fn: Any, state: Any) -> None:
        self.owner = owner
        self.fn = fn
        self.state = state
        self.stop = threading.Event()
        self.calls = 0
        self.thread = threading.Thread(target=self._run, name=f"routine-{owner.library.name}", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            st = self.owner.state
            if st == ffi.NULL:
                return
            self.calls += 1
            if not self.fn(st, self.state):  # cffi releases the GIL during the call
                return
            self.stop.wait(0.001)  # never spin a core: libsinsp's pool also yields between calls


class RoutinePool:
    """The host's thread pool for routines (pass it to ``init`` as ``routines``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.routines: dict[int, _Routine] = {}
        self.subscribed = 0
        self._subscribe = ffi.callback(
            "ss_plugin_routine_t *(ss_plugin_owner_t *, ss_plugin_routine_fn_t, ss_plugin_routine_state_t *)",
            self._on_subscribe,
        )
        self._unsubscribe = ffi.callback(
            "ss_plugin_rc(ss_plugin_owner_t *, ss_plugin_routine_t *)", self._on_unsubscribe, error=Rc.FAILURE
        )
        self.vtable = ffi.new("ss_plugin_routine_vtable *")
        self.vtable.subscribe = self._subscribe
        self.vtable.unsubscribe = self._unsubscribe

    def _on_subscribe(self, owner: Any, fn: Any, state: Any) -> Any:
        routine = _Routine(ffi.from_handle(owner), fn, state)
        with self._lock:
            self.subscribed += 1
            key = self.subscribed
            self.routines[key] = routine
        routine.thread.start()
        return ffi.cast("ss_plugin_routine_t *", key)

    def _on_unsubscribe(self, owner: Any, r: Any) -> int:
        key = int(ffi.cast("uintptr_t", r))
        with self._lock:
            routine = self.routines.pop(key, None)
        if routine is None:
            ffi.from_handle(owner).set_owner_error(f"no routine {key} is subscribed")
            return Rc.FAILURE
        routine.stop.set()
        return Rc.SUCCESS

    def active(self, owner: HandleView | None = None) -> list[_Routine]:
        """The routines still subscribed and running (of ``owner``'s state)."""
        state = owner.raw if owner is not None else None
        with self._lock:
            return [r for r in self.routines.values() if r.thread.is_alive() and (state is None or r.owner is state)]

    def forget(self, owner: State) -> None:
        """Stop ``owner``'s routines and wait for them (before its destroy)."""
        with self._lock:
            mine = [k for k, r in self.routines.items() if r.owner is owner]
            routines = [self.routines.pop(k) for k in mine]
        for r in routines:
            r.stop.set()
        for r in routines:
            if r.thread is not threading.current_thread():
                r.thread.join(timeout=10)


def capture_call(handle: HandleView, name: str) -> None:
    """``plugin_capture_open``/``plugin_capture_close`` with libsinsp's input."""
    from falco_plugin_tools.host.raw import _owner_last_error

    state = handle._state
    if "capture_listening" not in handle.info.capabilities:
        raise HostError(f"plugin {handle.info.name} has no capture listening capability")
    inp = ffi.new("ss_plugin_capture_listen_input *")
    inp.owner = state._owner
    inp.get_owner_last_error = _owner_last_error
    pool = handle.routines
    inp.routine = pool.vtable if pool is not None else _NO_POOL
    tables = handle.tables
    inp.table_reader_ext = tables.reader_ext if tables is not None else ffi.NULL
    inp.table_writer_ext = tables.writer_ext if tables is not None else ffi.NULL
    rc = state.library.call(name, state.state, inp)
    if tables is not None:
        tables.check_released(state, name)
    if rc != Rc.SUCCESS:
        raise HostError(f"{name} failed for plugin {handle.info.name}: {handle.last_error}")


# Without a pool libsinsp's subscribe returns NULL: so does this vtable.
_no_subscribe = ffi.callback(
    "ss_plugin_routine_t *(ss_plugin_owner_t *, ss_plugin_routine_fn_t, ss_plugin_routine_state_t *)",
    lambda o, f, s: ffi.NULL,
)
_no_unsubscribe = ffi.callback(
    "ss_plugin_rc(ss_plugin_owner_t *, ss_plugin_routine_t *)", lambda o, r: Rc.FAILURE, error=Rc.FAILURE
)
_NO_POOL = ffi.new("ss_plugin_routine_vtable *")
_NO_POOL.subscribe = _no_subscribe
_NO_POOL.unsubscribe = _no_unsubscribe
