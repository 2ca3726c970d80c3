"""``falco-plugin replay-check``: do a plugin's fields survive a capture and its replay?

Falco's plugin developers' guide asks of every field: if its events were
written to a ``.scap`` capture and replayed, would the plugin return the same
values as when they were first generated? A field that reads the plugin's
internal state instead of the event fails that, unless the plugin rebuilds the
state from the capture (its own async events, and what ``dump_state`` writes at
the start of a capture).

The check runs it:

1. a first instance produces events: a source plugin's own stream (``open``
   params), or a given capture replayed through a parse/extract plugin; every
   event is parsed (when the plugin parses it) and every field that needs no
   argument is extracted, as libsinsp does live. Async events the plugin
   pushes meanwhile join the stream, parsed and extracted too;
2. those events are written to a ``.scap`` file the way Falco's capture writes
   one: the plugin's ``dump_state`` events first (for a plugin with async
   state), then the events, in event blocks of the current layout (for a given
   capture, its own header blocks, process list included, are kept);
3. a fresh instance of the plugin replays that file (``host/replay.py``: the
   same code as ``falco-plugin run --capture``), and every field whose value
   differs is reported with the event number and both values.

With ``--skip K`` a source plugin's first K events are produced but not
written, as when Falco starts a capture mid-stream: then ``dump_state`` has
state to write. ``--wait-async N`` lets a plugin learn state before the
capture starts (its first N async events, parsed live, not written: only
``dump_state`` can carry them over). ``--replay-init-config`` gives the fresh
instance its own config: one that talks to a live service must replay from
the capture alone, as Falco replaying a file offline would.
"""

from __future__ import annotations

import argparse
import gzip
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from falco_plugin._internal import syscall_table as tbl

if TYPE_CHECKING:
    from falco_plugin_tools.host import PluginHandle, PluginLibrary
    from falco_plugin_tools.host.fields import FieldRequest

__all__ = ["Difference", "ReplayCheck", "ScapFile", "replay_check"]

SHB_BLOCK_TYPE = 0x0A0D0D0A
SHB_MAGIC = 0x1A2B3C4D
EV_BLOCK_V2, EV_BLOCK_V2_LARGE = 0x216, 0x221  # what libscap's dumper writes (no flags)
EVF_BLOCK_V2, EVF_BLOCK_V2_LARGE = 0x217, 0x222
NO_VALUE = (1 << 64) - 1
_HEADER = struct.Struct("<QQIHI")


class ScapFile:
    """A capture written block by block: a section header (or a given capture's head), then events."""

    def __init__(self, out: BinaryIO, head: bytes | None = None) -> None:
        self.out = out
        if head is None:
            body = struct.pack("<IHHq", SHB_MAGIC, 1, 2, -1)  # format 1.2, section length unknown
            self._block(SHB_BLOCK_TYPE, body)
        else:
            out.write(head)
        self.events = 0

    def _block(self, btype: int, body: bytes) -> None:
        body += b"\0" * (-len(body) % 4)
        total = 12 + len(body)
        self.out.write(struct.pack("<II", btype, total) + body + struct.pack("<I", total))

    def event(self, raw: bytes, cpu: int = 0, flags: int = 0) -> None:
        """One event (its header in the current layout); a large-payload type goes in a large block."""
        etype = _HEADER.unpack_from(raw)[3]
        large = bool(tbl.EVENTS[etype][2] & tbl.EF_LARGE_PAYLOAD) if etype < len(tbl.EVENTS) else False
        if flags:
            self._block(EVF_BLOCK_V2_LARGE if large else EVF_BLOCK_V2, struct.pack("<HI", cpu, flags) + raw)
        else:
            self._block(EV_BLOCK_V2_LARGE if large else EV_BLOCK_V2, struct.pack("<H", cpu) + raw)
        self.events += 1


_ASYNC_PLUGIN_ID = _HEADER.size + 12  # after the three u32 parameter lengths


def _as_live(raw: bytes, ts: int, plugin_id: int) -> bytes:
    """An async event as libsinsp takes it in live: the open source plugin's id written in it (0 when
    no source plugin is open: the syscall source), and a timestamp if it asks to be stamped."""
    if _HEADER.unpack_from(raw)[0] == NO_VALUE:
        raw = struct.pack("<Q", ts) + raw[8:]
    return raw[:_ASYNC_PLUGIN_ID] + struct.pack("<I", plugin_id) + raw[_ASYNC_PLUGIN_ID + 4 :]


Values = dict[str, Any]


@dataclass(frozen=True)
class Difference:
    field: str
    event: int
    """The event's number in the written capture (``evt.num`` when replayed)."""
    recorded: Any
    replayed: Any


@dataclass
class ReplayCheck:
    plugin: str
    capture: Path
    events: int
    """Events written (dump_state's included)."""
    state_events: int
    """Of which ``dump_state`` wrote these, first."""
    fields: list[str]
    unchecked: list[str]
    """Fields that need an argument: the check cannot guess one."""
    differences: list[Difference] = field(default_factory=list)
    recorded: dict[int, Values] = field(default_factory=dict)
    """The first instance's values, by the event's number in the written capture (dump_state's
    events, which it never saw, are not among them: libsinsp does not show them either)."""

    @property
    def ok(self) -> bool:
        return not self.differences

    def report(self, most: int = 50) -> str:
        lines = [
            f"replay check: {self.plugin}: {self.events} events written to {self.capture}"
            f" ({self.state_events} from dump_state), {len(self.fields)} fields compared"
        ]
        if self.unchecked:
            lines.append(f"not checked (they need an argument): {', '.join(self.unchecked)}")
        if self.differences:
            rows = [("field", "event", "recorded", "replayed")]
            rows += [(d.field, str(d.event), _show(d.recorded), _show(d.replayed)) for d in self.differences[:most]]
            widths = [max(len(r[i]) for r in rows) for i in range(4)]
            lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
            if len(self.differences) > most:
                lines.append(f"  ... {len(self.differences) - most} more")
            fields = sorted({d.field for d in self.differences})
            lines.append(f"FAIL: {len(fields)} field(s) do not survive the replay: {', '.join(fields)}")
        else:
            lines.append("OK: every field has the same values after the replay")
        return "\n".join(lines)


def _show(value: Any) -> str:
    from falco_plugin_tools.host.cli import format_value

    return str(format_value(value))


def _requests(lib: PluginLibrary) -> tuple[dict[str, FieldRequest], list[str]]:
    fields = lib.info.fields
    return (
        {f.name: lib.field(f.name) for f in fields if not f.arg_required},
        [f.name for f in fields if f.arg_required],
    )


def _values(handle: PluginHandle, event: Any, requests: dict[str, FieldRequest]) -> Values:
    return {name: handle.extract(event, req, strict=False) for name, req in requests.items()}


def _seen(handle: PluginHandle, event: Any, requests: dict[str, FieldRequest]) -> Values:
    """What libsinsp does with an event live: the plugin parses it, then its fields are extracted."""
    handle.parse(event)
    return _values(handle, event, requests)


def _async(handle: PluginHandle, plugin_id: int, ts: int) -> Iterator[bytes]:
    """The async events pushed since the last call; one asking to be stamped gets ``ts``, the time of
    the event they follow (not the clock: a capture's own time may be years back)."""
    if "async" in handle.info.capabilities and handle.async_events.running:
        for e in handle.async_events.drain():
            yield _as_live(e.raw, ts, plugin_id)


def _dump_state(handle: PluginHandle, ts: int, enabled: bool, plugin_id: int) -> list[bytes]:
    if not enabled or "async" not in handle.info.capabilities or not handle.library.has("dump_state"):
        return []
    return [_as_live(e.raw, ts, plugin_id) for e in handle.async_events.dump_state()]


def _record_source(
    handle: PluginHandle,
    params: str,
    n: int,
    skip: int,
    requests: dict[str, FieldRequest],
    out: Path,
    dump_state: bool,
) -> tuple[list[Values], int]:
    """A source plugin's stream: the recorded values of each event the replay will show, and how many
    dump_state events lead the file (libsinsp takes them as initial state: parsed, never shown)."""
    from falco_plugin_tools.host.events import HostEvent

    recorded: list[Values] = []
    with handle.open(params) as capture, out.open("wb") as fh:
        writer: ScapFile | None = None
        state = 0
        for event in capture.events(limit=skip + n):
            if writer is None and event.num > skip:
                writer = ScapFile(fh)
                for raw in _dump_state(handle, event.ts, dump_state, handle.info.id):
                    writer.event(raw)
                    state += 1
            values = _seen(handle, event, requests)
            pushed = list(_async(handle, handle.info.id, event.ts))
            if writer is not None:
                writer.event(event.raw)
                recorded.append(values)
            for raw in pushed:
                async_values = _seen(handle, HostEvent(raw, num=event.num, source=_source_of(handle, raw)), requests)
                if writer is not None:
                    writer.event(raw)
                    recorded.append(async_values)
        if writer is None:
            ScapFile(fh)
    return recorded, state


def _source_of(handle: PluginHandle, raw: bytes) -> str | None:
    """An async event's source live: the plugin's own if it has one and set its id, else syscall."""
    from falco_plugin_tools.host.replay import event_source
    from falco_plugin_tools.host.scap import ScapEvent

    ev = ScapEvent(raw=raw, cpu=0, flags=0, num=0, shown=True, offset=0, stored=raw)
    info = handle.info
    return event_source(ev, {info.id: info.event_source} if "sourcing" in info.capabilities and info.id else {})


def _capture_head(path: Path) -> bytes:
    """The capture's head (decompressed): every block before the first event block."""
    from falco_plugin_tools.host.scap import EV_BLOCK_TYPES

    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    pos = 0
    while pos + 8 <= len(data):
        btype, total = struct.unpack_from("<II", data, pos)
        if btype in EV_BLOCK_TYPES or total < 12:
            break
        if btype == SHB_BLOCK_TYPE and pos:
            break  # a second section: this check writes the first one's events only
        pos += total
    return data[:pos]


def _record_capture(
    handle: PluginHandle, source: Path, n: int, requests: dict[str, FieldRequest], out: Path, dump_state: bool
) -> tuple[list[Values], int]:
    """A given capture replayed through the first instance; its first ``n`` shown events are written."""
    from falco_plugin_tools.host.events import HostEvent
    from falco_plugin_tools.host.replay import Replay
    from falco_plugin_tools.host.scap import ScapReader

    table = handle.tables["threads"] if handle.tables is not None else None
    live: dict[int, tuple[Values, list[tuple[bytes, Values]]]] = {}
    for r in Replay(source, [handle], table).events(limit=n):
        values = _values(handle, r.event, requests)  # Replay has parsed it already
        pushed = [(raw, _seen(handle, HostEvent(raw, num=r.event.num, source=_source_of(handle, raw)), requests))
                  for raw in _async(handle, 0, r.event.ts)]  # fmt: skip
        live[r.event.num] = (values, pushed)
    last = max(live, default=0)
    head = _capture_head(source)
    recorded: list[Values] = []
    state = 0
    with out.open("wb") as fh:
        writer = ScapFile(fh, head)
        with ScapReader(source) as reader:
            for ev in reader.events(include_dropped=True):
                if ev.num is not None and ev.num > last:
                    break
                if writer.events == 0 and state == 0:
                    for raw in _dump_state(handle, ev.ts, dump_state, 0):
                        writer.event(raw)
                        state += 1
                writer.event(ev.stored, ev.cpu, ev.flags)
                if ev.num is None or not ev.shown:
                    continue  # the replay does not show it either
                values, pushed = live.get(ev.num, ({}, []))
                recorded.append(values)
                for raw, async_values in pushed:
                    writer.event(raw)
                    recorded.append(async_values)
    return recorded, state


def _wait_async(
    handle: PluginHandle, count: int, requests: dict[str, FieldRequest], timeout_s: float, plugin_id: int
) -> None:
    """The plugin's first ``count`` async events, parsed as libsinsp parses them live (not written)."""
    import queue

    from falco_plugin_tools.host.events import HostEvent

    deadline = time.monotonic() + timeout_s
    for got in range(count):
        try:
            e = handle.async_events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise ReplayCheckError(
                f"{handle.info.name} pushed {got} async events in {timeout_s:g}s, not {count}"
            ) from None
        raw = _as_live(e.raw, time.time_ns(), plugin_id)
        _seen(handle, HostEvent(raw, num=0, source=_source_of(handle, raw)), requests)


def replay_check(
    library: str | Path,
    out: str | Path,
    *,
    init_config: str = "",
    open_params: str = "",
    capture: str | Path | None = None,
    n: int = 100,
    skip: int = 0,
    wait_async: int = 0,
    replay_init_config: str | None = None,
    dump_state: bool = True,
    timeout_s: float = 30.0,
) -> ReplayCheck:
    """Record, write, replay and compare (see the module docs); ``out`` is the capture written."""
    from falco_plugin_tools.host import PluginLibrary
    from falco_plugin_tools.host.replay import Replay
    from falco_plugin_tools.host.tables import TableRegistry, threads_table

    path = Path(out)
    with PluginLibrary.load(library) as lib:
        requests, unchecked = _requests(lib)
        with lib.init(init_config, forward_logs=True, tables=TableRegistry(threads_table())) as first:
            if "async" in first.info.capabilities:
                first.async_events.start()
            elif wait_async:
                raise ReplayCheckError(f"{first.info.name} has no async events to wait for")
            try:
                # live, async events belong to the open source plugin's source (syscall for a capture)
                live_id = first.info.id if capture is None else 0
                _wait_async(first, wait_async, requests, timeout_s, live_id)
                if capture is not None:
                    recorded, state = _record_capture(first, Path(capture), n, requests, path, dump_state)
                else:
                    recorded, state = _record_source(first, open_params, n, skip, requests, path, dump_state)
            finally:
                if "async" in first.info.capabilities:
                    first.async_events.stop()
        check = ReplayCheck(lib.info.name, path, len(recorded) + state, state, list(requests), unchecked)
        registry = TableRegistry(threads_table())
        fresh_config = init_config if replay_init_config is None else replay_init_config
        with lib.init(fresh_config, forward_logs=True, tables=registry) as fresh:
            replay = Replay(path, [fresh], registry["threads"])
            replayed = [(r.event.num, _values(fresh, r.event, requests)) for r in replay.events()]
    if len(replayed) != len(recorded):
        raise ReplayCheckError(f"{path}: {len(recorded)} events to compare but {len(replayed)} replayed")
    for before, (num, after) in zip(recorded, replayed, strict=True):
        check.recorded[num] = before
        for name in requests:
            if before.get(name) != after.get(name):
                check.differences.append(Difference(name, num, before.get(name), after.get(name)))
    return check


class ReplayCheckError(Exception):
    """The check could not run: the message says why."""


# -- command line ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("library", type=Path, help="the plugin library (lib<name>.so)")
    parser.add_argument("--init-config", default="", help="init config (JSON)")
    parser.add_argument("--open-params", default="", help="open params of a source plugin")
    parser.add_argument("--capture", type=Path, help="replay this capture through the plugin instead of opening it")
    parser.add_argument("-n", "--events", type=int, default=100, help="events to record (default 100)")
    parser.add_argument("--skip", type=int, default=0, help="source events produced before the capture starts")
    parser.add_argument(
        "--wait-async",
        type=int,
        default=0,
        metavar="N",
        help="async events to let the plugin learn first (not written)",
    )
    parser.add_argument("--replay-init-config", help="init config of the replaying instance (default: --init-config)")
    parser.add_argument(
        "--no-dump-state", action="store_true", help="leave dump_state's events out, to see which fields need them"
    )
    parser.add_argument("--out", type=Path, help="where to write the capture (default: a temporary file, removed)")


def main(args: argparse.Namespace) -> int:
    import tempfile

    from falco_plugin_tools.host.errors import HostError

    if args.events < 1 or args.skip < 0 or args.wait_async < 0:
        print("falco-plugin replay-check: --events must be >= 1, --skip and --wait-async >= 0", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="replay-check-") as tmp:
        out = args.out or Path(tmp) / "replay-check.scap"
        try:
            check = replay_check(
                args.library,
                out,
                init_config=args.init_config,
                open_params=args.open_params,
                capture=args.capture,
                n=args.events,
                skip=args.skip,
                wait_async=args.wait_async,
                replay_init_config=args.replay_init_config,
                dump_state=not args.no_dump_state,
            )
        except (HostError, ReplayCheckError, OSError) as e:
            print(f"falco-plugin replay-check: {e}", file=sys.stderr)
            return 2
        print(check.report())
    return 0 if check.ok else 1
