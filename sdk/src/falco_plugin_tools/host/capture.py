"""An open event source (``plugin_open`` .. ``plugin_close``) read like libscap
and libsinsp read it: batches copied out, events checked and numbered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from falco_plugin_tools.host._ffi import Rc, ffi, rc_of
from falco_plugin_tools.host.errors import HostError
from falco_plugin_tools.host.events import HostEvent, check_source_event
from falco_plugin_tools.host.raw import Instance

if TYPE_CHECKING:
    from falco_plugin_tools.host.views import HandleView

__all__ = ["Capture"]

# Between two TIMEOUTs: short enough not to add latency, long enough not to spin.
RETRY_SLEEP_S = 0.002


class Capture:
    """One open instance of a source plugin; use as a context manager or call :meth:`close`."""

    def __init__(self, handle: HandleView, params: str = "") -> None:
        self.handle = handle
        self.params = params
        self.count = 0
        """Events delivered so far (the ``num`` of the latest one)."""
        self.last_rc: Rc | int = Rc.SUCCESS
        info = handle.info
        self._name, self._id = info.name, info.id
        self._source = info.event_source or "syscall"
        self._pending: tuple[Rc | int, list[HostEvent]] | None = None
        self._instance: Instance | None = None
        rc, instance = handle._state.open(params)
        if rc != Rc.SUCCESS or instance is None:
            raise HostError(handle.last_error)
        self._instance = instance

    @property
    def is_open(self) -> bool:
        return self._instance is not None

    def next_batch(self) -> tuple[Rc | int, list[HostEvent]]:
        """One ``plugin_next_batch``: its return code and its events, copied, checked and numbered.

        If :meth:`events` stopped in the middle of a batch, the rest of that
        batch (and its return code) comes first, without calling the plugin.
        """
        pending, self._pending = self._pending, None
        if pending is not None and (pending[1] or pending[0] != Rc.SUCCESS):
            return pending
        instance = self._require_open()
        code, n, array = instance.call_next_batch()
        rc = rc_of(code)
        events = []
        for i in range(n):
            ptr = array[i]
            raw = bytearray(ffi.buffer(ptr, ptr.len))
            check_source_event(raw, self._name, self._id)
            self.count += 1
            events.append(HostEvent(bytes(raw), num=self.count, source=self._source))
        return rc, events

    def events(self, limit: int | None = None, timeout_s: float | None = None) -> Iterator[HostEvent]:
        """Events until end of stream, like libsinsp's ``next`` loop.

        Events returned together with a non-success code are delivered first.
        TIMEOUT is retried after a short sleep; with ``timeout_s`` the iterator
        stops when the source has been idle that long. EOF stops it; FAILURE
        raises :class:`HostError` with the plugin's last error. ``limit`` stops
        after that many events; what is left of the batch (and its return
        code) is kept for the next call, also when the caller stops early.
        """
        yielded = 0
        idle_since = time.monotonic()
        while limit is None or yielded < limit:
            rc, batch = self.next_batch()
            self.last_rc = rc
            if rc == Rc.SUCCESS and not batch:
                raise HostError(f"unexpected 0 size event returned by plugin {self._name}")
            for i, event in enumerate(batch):
                if limit is not None and yielded >= limit:
                    return
                # What the next call must start from if the consumer stops at this event.
                self._pending = (rc, batch[i + 1 :])
                yielded += 1
                yield event
            if batch:
                idle_since = time.monotonic()
            if limit is not None and yielded >= limit:
                return  # a non-success code stays pending for the next call
            self._pending = None
            if rc == Rc.SUCCESS:
                continue
            if rc == Rc.EOF:
                return
            if rc == Rc.TIMEOUT:
                if timeout_s is not None and time.monotonic() - idle_since >= timeout_s:
                    return
                time.sleep(RETRY_SLEEP_S)
                continue
            raise HostError(self.handle.last_error if rc == Rc.FAILURE else f"next_batch returned {rc}")

    def progress(self) -> tuple[float, str]:
        """``plugin_get_progress`` as (percent 0..100, text); (0.0, "") when the plugin has none."""
        if self._instance is None or not self.handle.library.has("get_progress"):
            return 0.0, ""
        pct, text = self._instance.progress()
        return pct / 100.0, text

    def _require_open(self) -> Instance:
        if self._instance is None:
            raise HostError(f"the capture of plugin {self._name} is closed")
        return self._instance

    def close(self) -> None:
        """``plugin_close`` (idempotent)."""
        if self._instance is not None:
            instance, self._instance = self._instance, None
            self._pending = None
            instance.close()
        self.handle._forget(self)

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Capture({self._name!r}, params={self.params!r}, open={self.is_open}, count={self.count})"
