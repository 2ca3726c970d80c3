"""An open event source (``plugin_open`` .. ``plugin_close``) read like libscap
and libsinsp read it: batches copied out, events checked and numbered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._ffi import Rc, ffi, rc_of, text_of
from .errors import HostError
from .events import HostEvent, check_source_event

if TYPE_CHECKING:
    from .handle import PluginHandle

__all__ = ["Capture"]

# Between two TIMEOUTs: short enough not to add latency, long enough not to spin.
RETRY_SLEEP_S = 0.002


class Capture:
    """One open instance of a source plugin; use as a context manager or call :meth:`close`."""

    def __init__(self, handle: PluginHandle, params: str = "") -> None:
        self.handle = handle
        self.params = params
        self.count = 0
        """Events delivered so far (the ``num`` of the latest one)."""
        self.last_rc: Rc | int = Rc.SUCCESS
        info = handle.info
        self._name, self._id = info.name, info.id
        self._source = info.event_source or "syscall"
        self._pending: tuple[Rc | int, list[HostEvent]] | None = None
        self._nevts = ffi.new("uint32_t *")
        self._evts = ffi.new("ss_plugin_event ***")
        self._instance: Any = ffi.NULL
        self._open = False
        rc = ffi.new("ss_plugin_rc *", Rc.FAILURE)
        instance = handle._call("open", handle._state, params.encode(), rc)
        if rc[0] != Rc.SUCCESS:
            raise HostError(handle.last_error)
        self._instance = instance
        self._open = True

    @property
    def is_open(self) -> bool:
        return self._open

    def next_batch(self) -> tuple[Rc | int, list[HostEvent]]:
        """One ``plugin_next_batch``: its return code and its events, copied, checked and numbered.

        If :meth:`events` stopped in the middle of a batch, the rest of that
        batch (and its return code) comes first, without calling the plugin.
        """
        self._require_open()
        pending, self._pending = self._pending, None
        if pending is not None and (pending[1] or pending[0] != Rc.SUCCESS):
            return pending
        rc = rc_of(self.handle._call("next_batch", self.handle._state, self._instance, self._nevts, self._evts))
        events = []
        for i in range(self._nevts[0]):
            ptr = self._evts[0][i]
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
        fn = self.handle.library.symbol("get_progress")
        if fn is None or not self._open:
            return 0.0, ""
        pct = ffi.new("uint32_t *")
        text = text_of(fn(self.handle._state, self._instance, pct))
        return pct[0] / 100.0, text

    def _require_open(self) -> None:
        if not self._open:
            raise HostError(f"the capture of plugin {self._name} is closed")

    def close(self) -> None:
        """``plugin_close`` (idempotent)."""
        if self._open:
            self._open = False
            self._pending = None
            self.handle._call("close", self.handle._state, self._instance)
        self.handle._forget(self)

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Capture({self._name!r}, params={self.params!r}, open={self._open}, count={self.count})"
