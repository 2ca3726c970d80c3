"""Replay a ``.scap`` capture through loaded plugins, the way libsinsp does.

For each event of the file (``host/scap.py``), in order: the thread state is
updated first (``host/threads.py``, libsinsp's own parsers), the ``threads``
table the plugins see is brought up to date from it, every plugin that parses
the event's type and source parses it, and then, for the events libsinsp
hands to its consumers, fields are extracted.

Each event gets the source libsinsp gives it in a capture: a plugin event
(or an async event) carrying a plugin id belongs to the source of the loaded
source plugin with that id, and to no source at all when no loaded plugin
has that id (no parser or extractor sees it then); every other event,
async events with id 0 included, is a ``syscall`` event. One file can so
hold the events of several sources. Capture listeners get
``capture_open`` before the first event and ``capture_close`` after the last.

Next to the plugins' fields, a few of libsinsp's own core fields can be
shown (:data:`CORE_FIELDS` and ``evt.arg.<name>``), enough to tell which
event and which process a line is about, as ``sinsp-example -s FILE`` does.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from falco_plugin._internal.layout import HEADER_SIZE, PLUGIN_EVENT
from falco_plugin.event import ASYNC_EVENT
from falco_plugin_tools.host.errors import HostError
from falco_plugin_tools.host.events import HostEvent
from falco_plugin_tools.host.handle import PluginHandle, Value
from falco_plugin_tools.host.scap import ScapEvent, ScapReader
from falco_plugin_tools.host.tables import HostTable, feed_thread
from falco_plugin_tools.host.threads import ThreadInfo, ThreadTable

__all__ = ["CORE_FIELDS", "Replay", "ReplayedEvent", "event_source", "is_core_field"]

SYSCALL_SOURCE = "syscall"
_U32 = struct.Struct("<I")


def event_source(ev: ScapEvent, sources: Mapping[int, str]) -> str | None:
    """The source libsinsp gives ``ev`` in a capture, ``sources`` being the loaded source plugins by id.

    Plugin events and async events carry a plugin id as their first
    parameter (a u32; both types have 4-byte parameter lengths). A non-zero
    id names the source of the plugin with that id, or no source (None) when
    no loaded plugin has it; id 0, and every other event, is ``syscall``.
    """
    if ev.type not in (PLUGIN_EVENT, ASYNC_EVENT):
        return SYSCALL_SOURCE
    raw, nparams = ev.raw, ev.nparams
    values = HEADER_SIZE + 4 * nparams
    if nparams < 1 or len(raw) < values + 4 or _U32.unpack_from(raw, HEADER_SIZE)[0] != 4:
        # libsinsp fails on it too (its plugin id parameter is not a u32): say which event.
        raise HostError(f"event {ev.num} (offset {ev.offset}): {ev.name} event without a 4-byte plugin id")
    plugin_id = _U32.unpack_from(raw, values)[0]
    if plugin_id == 0:
        return SYSCALL_SOURCE
    return sources.get(plugin_id)


@dataclass(frozen=True)
class ReplayedEvent:
    """One event of the capture, after the plugins parsed it."""

    scap: ScapEvent
    event: HostEvent
    thread: ThreadInfo | None
    """The event's thread after libsinsp's parsers ran (None for events without one)."""
    threads: ThreadTable

    def core(self, name: str) -> Value | None:
        """The value of one of libsinsp's core fields (see :data:`CORE_FIELDS`)."""
        if name.startswith("evt.arg."):
            params = self.scap.params()
            arg = name[len("evt.arg.") :]
            return _value(params[arg]) if arg in params else None
        getter = CORE_FIELDS.get(name)
        if getter is None:
            raise HostError(f"{name} is not one of the core fields this host shows ({', '.join(CORE_FIELDS)})")
        return getter(self)


def _value(v: Any) -> Value | None:
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, list | tuple):
        return ",".join(str(x) for x in v)
    return str(v)


def _known(t: ThreadInfo | None) -> ThreadInfo | None:
    return t if t is not None and not t.is_invalid else None


def _thread(attr: str, unknown: object = object()) -> Callable[[ReplayedEvent], Value | None]:
    """A field read from the event's thread; no value for no thread, or for ``unknown``."""

    def get(r: ReplayedEvent) -> Value | None:
        t = _known(r.thread)
        value = getattr(t, attr) if t is not None else None
        return None if value == unknown else value

    return get


def _ppid(r: ReplayedEvent) -> Value | None:
    t = _known(r.thread)
    parent = r.threads.parent_process(t) if t is not None else None
    return parent.pid if parent is not None and parent.pid >= -1 else None


def _cwd(r: ReplayedEvent) -> Value | None:
    t = _known(r.thread)
    return r.threads.cwd(t) if t is not None else None


def _args(r: ReplayedEvent) -> Value | None:
    t = _known(r.thread)
    return " ".join(t.args) if t is not None else None


CORE_FIELDS: dict[str, Callable[[ReplayedEvent], Value | None]] = {
    "evt.num": lambda r: r.event.num,
    "evt.time": lambda r: r.scap.ts,
    "evt.type": lambda r: r.scap.type_name,
    "evt.source": lambda r: r.event.source,
    "evt.dir": lambda r: ">" if r.scap.is_enter else "<",
    "thread.tid": lambda r: r.scap.tid,
    "thread.vtid": _thread("vtid", unknown=-1),
    "proc.name": _thread("comm"),
    "proc.pid": _thread("pid"),
    "proc.vpid": _thread("vpid", unknown=-1),
    "proc.ppid": _ppid,
    "proc.exe": _thread("exe"),
    "proc.exepath": _thread("exe_path"),
    "proc.args": _args,
    "proc.cwd": _cwd,
    "user.uid": _thread("uid"),
}
"""libsinsp core fields this host computes itself, by name; ``evt.arg.<name>`` too."""


def is_core_field(name: str) -> bool:
    return name in CORE_FIELDS or name.startswith("evt.arg.")


class Replay:
    """One pass over a capture with ``plugins`` loaded (already initialised).

    ``threads`` is the ``threads`` table the plugins were given at init (from
    :func:`~falco_plugin_tools.host.tables.threads_table`), or None for plugins that
    use no tables.
    """

    def __init__(
        self, capture: str | Path | BinaryIO, plugins: Sequence[PluginHandle], threads: HostTable | None = None
    ) -> None:
        self.capture = capture
        self.plugins = list(plugins)
        self.table = threads
        # libsinsp's plugin manager: the source of each loaded source plugin, by plugin id.
        self.sources = {
            p.info.id: p.info.event_source for p in self.plugins if "sourcing" in p.info.capabilities and p.info.id
        }

    def events(self, limit: int | None = None) -> Iterator[ReplayedEvent]:
        """The events libsinsp shows, in order, each parsed by the plugins first (up to ``limit`` of them)."""
        listeners = [p for p in self.plugins if "capture_listening" in p.info.capabilities]
        with ScapReader(self.capture) as reader:
            state = ThreadTable(reader.processes)
            if self.table is not None:
                for t in state.threads.values():
                    feed_thread(self.table, t)
            for p in listeners:
                p.capture_open()
            shown = 0
            try:
                registries = {id(p.tables): p.tables for p in self.plugins if p.tables is not None}
                for ev in reader.events():
                    thread = state.process(ev)
                    if state.removed:
                        # libsinsp removes a thread (and its subtables) once it has exited: so does the
                        # table, and what the plugins were handed of it goes too.
                        for tid in state.removed:
                            entry = self.table.entries.pop(tid, None) if self.table is not None else None
                            for registry in registries.values():
                                if entry is not None:
                                    registry.forget_entry(entry)
                        state.removed.clear()
                    if thread is not None and self.table is not None:
                        feed_thread(self.table, thread)
                    if ev.num is None:
                        continue  # libscap's converter drops it: libsinsp never sees it
                    event = HostEvent(ev.raw, num=ev.num, source=event_source(ev, self.sources))
                    for p in self.plugins:
                        p.parse(event, strict=False)  # as libsinsp: a failed parse is not the end
                    if not ev.shown:
                        continue
                    yield ReplayedEvent(ev, event, thread, state)
                    shown += 1
                    if limit is not None and shown >= limit:
                        break
            finally:
                for p in listeners:
                    p.capture_close()
