"""One small interface over the SDK's three hosts, so a test can run on each.

:class:`PythonHost` drives a library in this process through
:class:`~falco_plugin_tools.host.PluginLibrary` (libsinsp's checks: init schema,
field expressions, event checks); :class:`CHost` runs the C host program
(``chost.c``) in an empty environment, the way Falco starts a plugin;
:class:`SinspHost` runs the libsinsp host program (``sinsphost.cpp``), which
drives the library through real libsinsp's own API. All answer :meth:`Host.run`
with the same :class:`HostRun`: the events with their field values as text (as
the C host prints them), per-field extraction errors, and the failure that
ended the run, if any.

The fixture ``host`` in :mod:`falco_plugin_tools.testing` is parametrised over the three.
"""

from __future__ import annotations

import ipaddress
import json
import struct
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from falco_plugin_tools.host._ffi import Rc
from falco_plugin_tools.host.async_events import ASYNCEVENT_E, decode_async_event
from falco_plugin_tools.host.capture import Capture
from falco_plugin_tools.host.errors import ExtractionError, FieldExpressionError, HostError, LoadError
from falco_plugin_tools.host.events import HostEvent
from falco_plugin_tools.host.handle import PluginHandle, Value
from falco_plugin_tools.host.loader import PluginLibrary

__all__ = ["CHost", "Extracted", "Failure", "Host", "HostRun", "PythonHost", "SinspHost", "Stage", "value_text"]

Stage = Literal["load", "fields", "init", "open", "next_batch", "exit"]
"""Where a run failed: loading the library, resolving the fields, ``plugin_init``, ``plugin_open``, a
batch; ``exit`` is a C host that ended with a failing status and no message (a crash)."""

NO_VALUE_TEXT = "<none>"  # what the C host prints for a field without a value
NO_TIME = 2**64 - 1  # an event time the plugin leaves to the host
ASYNC_POLL_S = 0.002  # how long the Python host waits when neither the source nor async events have one
_INIT = "could not initialize plugin: "


@dataclass(frozen=True)
class Failure:
    """What ended a run early: the stage and the host's message (the plugin's last error where it has one)."""

    stage: Stage
    message: str


@dataclass
class Extracted:
    """One event of a run: its number, then per requested field either a value or an error."""

    num: int
    values: dict[str, str | None] = field(default_factory=dict)
    """Field expression -> value as text (lists joined by ``,``), ``None`` when the field has no value."""
    errors: dict[str, str] = field(default_factory=dict)
    """Field expression -> the extraction error, for fields that failed on this event."""


@dataclass
class HostRun:
    """What one :meth:`Host.run` saw."""

    host: str
    events: list[Extracted] = field(default_factory=list)
    failure: Failure | None = None

    def column(self, expression: str) -> list[str | None]:
        """The values of one field across the events (``None`` where it had none or failed)."""
        return [e.values.get(expression) for e in self.events]


class Host(Protocol):
    """A host that can run a plugin library: ``"python"``, ``"c"`` or ``"sinsp"``."""

    name: str

    def run(
        self,
        library: str | Path,
        *,
        init_config: str = "",
        open_params: str = "",
        fields: Sequence[str] = (),
        n: int | None = None,
    ) -> HostRun:
        """Load, init with ``init_config``, open with ``open_params``, read up to ``n`` events (all
        when ``None``) extracting ``fields`` from each (one field per call), then tear down."""
        ...


def value_text(value: Value | list[Value] | None) -> str | None:
    """A value as the C host prints it: lists joined by ``,``, bools as ``true``/``false``,
    addresses and networks as ``<N bytes>``; ``None`` (no value) stays ``None``."""
    if value is None or value == []:
        return None
    if isinstance(value, list):
        return ",".join(value_text(v) or "" for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        value = value.network_address
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return f"<{len(value.packed)} bytes>"
    return str(value)


def _async_name(event: HostEvent) -> str | None:
    return decode_async_event(event.raw).name if event.type == ASYNCEVENT_E else None


GENERIC_FIELDS: dict[str, Callable[[PluginHandle, HostEvent], str | None]] = {
    "evt.num": lambda plugin, event: str(event.num),
    "evt.source": lambda plugin, event: event.source,
    "evt.pluginname": lambda plugin, event: None if _async_name(event) else plugin.info.name,
    "evt.plugininfo": lambda plugin, event: None if _async_name(event) else plugin.event_to_string(event),
    "evt.rawtime": lambda plugin, event: str(event.ts),
    "evt.rawtime.s": lambda plugin, event: str(event.ts // 10**9),
    "evt.rawtime.ns": lambda plugin, event: str(event.ts % 10**9),
    "evt.is_async": lambda plugin, event: "false" if _async_name(event) is None else "true",
    "evt.asynctype": lambda plugin, event: _async_name(event),
}
"""The generic event fields (libsinsp's ``evt.*`` class that Falco gives a plugin source besides
the plugin's own fields; not ``evt.type``, ``evt.dir`` and the other syscall ones), as text, for
one of the plugin's own events: those that need no clock, time zone or host name."""


class PythonHost:
    """The in-process host (:class:`~falco_plugin_tools.host.PluginLibrary`); besides the
    plugin's fields it answers libsinsp's generic event fields (:data:`GENERIC_FIELDS`), and, as
    libsinsp does, puts an async plugin's events into the stream it reads."""

    name = "python"

    def run(
        self,
        library: str | Path,
        *,
        init_config: str = "",
        open_params: str = "",
        fields: Sequence[str] = (),
        n: int | None = None,
    ) -> HostRun:
        result = HostRun(self.name)
        try:
            lib = PluginLibrary.load(library)
        except LoadError as exc:
            result.failure = Failure("load", exc.reason)
            return result
        with lib:
            try:
                handle = lib.init(init_config)
            except HostError as exc:
                result.failure = Failure("init", str(exc).removeprefix(_INIT))
                return result
            with handle:
                if "sourcing" not in lib.info.capabilities:
                    return result  # nothing to read, as the C host says with "rc=no-source"
                # Libsinsp rejects a bad field expression when it compiles a rule; here it is
                # that field's error on every event, so the other fields still run.
                field_errors: dict[str, str] = {}
                for expression in fields:
                    if expression in GENERIC_FIELDS:
                        continue
                    try:
                        lib.field(expression)
                    except FieldExpressionError as exc:
                        field_errors[expression] = str(exc)
                try:
                    capture = handle.open(open_params)
                except HostError as exc:
                    result.failure = Failure("open", str(exc))
                    return result
                with capture:
                    try:
                        events = (
                            _with_async_events(handle, capture, n)
                            if "async" in lib.info.capabilities
                            else capture.events(limit=n)
                        )
                        for event in events:
                            got = Extracted(event.num, errors=dict(field_errors))
                            for expression in fields:
                                if expression in field_errors:
                                    continue
                                if expression in GENERIC_FIELDS:
                                    got.values[expression] = GENERIC_FIELDS[expression](handle, event)
                                    continue
                                try:
                                    got.values[expression] = value_text(handle.extract(event, expression))
                                except ExtractionError as exc:
                                    got.errors[expression] = str(exc)
                            result.events.append(got)
                    except HostError as exc:
                        result.failure = Failure("next_batch", str(exc))
        return result


def _with_async_events(handle: PluginHandle, capture: Capture, limit: int | None) -> Iterator[HostEvent]:
    """The event stream of a source that also emits async events, as libsinsp's ``next`` makes it:
    the handler set when the capture opens, queued async events first, then the source's; all
    numbered in one sequence, async events stamped with the host's clock when the plugin left
    their time to the host."""
    async_events = handle.async_events
    async_events.start()
    count = 0
    try:
        while limit is None or count < limit:
            for received in async_events.drain():
                raw = bytearray(received.raw)
                if received.ts == NO_TIME:
                    struct.pack_into("<Q", raw, 0, time.time_ns())
                count += 1
                yield HostEvent(bytes(raw), num=count, source=handle.info.event_source)
                if limit is not None and count >= limit:
                    return
            got = list(capture.events(limit=1, timeout_s=0))  # one source event, or none for now
            for event in got:
                count += 1
                event.num = count
                yield event
            if not got and capture.last_rc == Rc.EOF:
                return
            if not got:
                time.sleep(ASYNC_POLL_S)
    finally:
        async_events.stop()


class CHost:
    """The C host program, run in an empty environment (``chost`` is its compiled path)."""

    name = "c"

    def __init__(self, chost: str | Path, timeout: float = 120) -> None:
        self.chost = Path(chost)
        self.timeout = timeout

    def command(
        self,
        library: str | Path,
        *,
        init_config: str = "",
        open_params: str = "",
        fields: Sequence[str] = (),
        n: int | None = None,
    ) -> list[str]:
        args = [str(self.chost), str(library), "--config", init_config, "--open", open_params]
        if fields:
            args += ["--fields", ",".join(fields)]
        if n is not None:
            args += ["-n", str(n)]
        return args

    def run(
        self,
        library: str | Path,
        *,
        init_config: str = "",
        open_params: str = "",
        fields: Sequence[str] = (),
        n: int | None = None,
    ) -> HostRun:
        command = self.command(library, init_config=init_config, open_params=open_params, fields=fields, n=n)
        proc = subprocess.run(command, capture_output=True, text=True, env={}, timeout=self.timeout)
        return parse_chost_output(proc, fields)


_C_ERRORS: tuple[tuple[str, Stage], ...] = (
    ("could not initialize plugin: ", "init"),
    ("open: ", "open"),
    ("next_batch: ", "next_batch"),
    ("unknown field ", "fields"),
)


def parse_chost_output(proc: subprocess.CompletedProcess[str], fields: Sequence[str]) -> HostRun:
    """A single-library C host run as a :class:`HostRun` (``fields`` as passed to ``--fields``)."""
    result = HostRun(CHost.name)
    for line in proc.stdout.splitlines():
        if line.startswith("evt "):
            result.events.append(_parse_event_line(line, fields))
    for line in proc.stderr.splitlines():
        if not line.startswith("error: "):
            continue
        message = line.removeprefix("error: ")
        stage: Stage = "load"
        for prefix, where in _C_ERRORS:
            if message.startswith(prefix):
                stage = where
                message = message if where == "fields" else message.removeprefix(prefix)
                break
        result.failure = Failure(stage, message)
        break
    if result.failure is None and proc.returncode != 0:
        result.failure = Failure("exit", f"exit status {proc.returncode}: {proc.stderr.strip()}")
    return result


def _parse_event_line(line: str, fields: Sequence[str]) -> Extracted:
    head, _, rest = line.partition(" ")[2].partition(" ")
    got = Extracted(int(head))
    # Values may hold spaces: each one ends where the next field's " <expression>=" starts.
    for i, expression in enumerate(fields):
        rest = rest.removeprefix(f"{expression}=")
        end = rest.find(f" {fields[i + 1]}=") if i + 1 < len(fields) else len(rest)
        text, rest = rest[:end], rest[end + 1 :]
        if text.startswith("<error: ") and text.endswith(">"):
            got.errors[expression] = text[len("<error: ") : -1]
        else:
            got.values[expression] = None if text == NO_VALUE_TEXT else text
    return got


class SinspHost:
    """The libsinsp host program (``sinsphost`` is its compiled path, see
    :func:`~falco_plugin_tools.host.sinsp.compile_sinsphost`), run in an empty environment."""

    name = "sinsp"

    def __init__(self, sinsphost: str | Path, timeout: float = 120) -> None:
        self.sinsphost = Path(sinsphost)
        self.timeout = timeout

    def command(
        self,
        library: str | Path,
        *,
        init_config: str = "",
        open_params: str = "",
        fields: Sequence[str] = (),
        n: int | None = None,
        capture: str | Path | None = None,
        struct: str | None = None,
        plugins: Sequence[tuple[str | Path, str] | tuple[str | Path, str, str]] = (),
        condition: str | None = None,
        metrics: bool = False,
        tables: Sequence[str] = (),
    ) -> list[str]:
        """The command line; ``plugins`` are more plugins to register after ``library``, each
        ``(library, init_config)`` or ``(library, init_config, struct symbol)``; only the events
        that ``condition`` (a filter libsinsp compiles, as a rule's) accepts are read."""
        args = [str(self.sinsphost), str(library), "--config", init_config]
        if struct is not None:
            args += ["--struct", struct]
        for more in plugins:
            args += ["--plugin", str(more[0]), "--config", more[1]]
            if len(more) == 3:
                args += ["--struct", more[2]]
        args += ["--open", open_params]
        if condition is not None:
            args += ["--filter", condition]
        for expression in fields:
            args += ["--field", expression]
        if n is not None:
            args += ["-n", str(n)]
        if capture is not None:
            args += ["--capture", str(capture)]
        if metrics:
            args.append("--metrics")
        for table in tables:
            args += ["--table", table]
        return args

    def run(
        self,
        library: str | Path,
        *,
        init_config: str = "",
        open_params: str = "",
        fields: Sequence[str] = (),
        n: int | None = None,
        capture: str | Path | None = None,
        struct: str | None = None,
    ) -> HostRun:
        command = self.command(
            library,
            init_config=init_config,
            open_params=open_params,
            fields=fields,
            n=n,
            capture=capture,
            struct=struct,
        )
        return parse_sinsphost_output(self._execute(command))

    def records(self, library: str | Path, **options: Any) -> list[dict[str, Any]]:
        """Every JSON record of one run (``options`` as for :meth:`command`), for what
        :class:`HostRun` does not hold (tables, event sources, the plugin's identity)."""
        proc = self._execute(self.command(library, **options))
        return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]

    def _execute(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        # A plugin's string may hold bytes that are not UTF-8: shown escaped, never a decoding error.
        return subprocess.run(
            command, capture_output=True, text=True, errors="backslashreplace", env={}, timeout=self.timeout
        )


def parse_sinsphost_output(proc: subprocess.CompletedProcess[str]) -> HostRun:
    """A libsinsp host run (its JSON lines) as a :class:`HostRun`."""
    result = HostRun(SinspHost.name)
    for line in proc.stdout.splitlines():
        record = json.loads(line)
        kind = record["kind"]
        if kind == "event":
            result.events.append(Extracted(record["num"], values=record["values"], errors=record["errors"]))
        elif kind == "failure":
            result.failure = Failure(record["stage"], record["message"])
    if result.failure is None and proc.returncode != 0:
        result.failure = Failure("exit", f"exit status {proc.returncode}: {proc.stderr.strip()}")
    return result
