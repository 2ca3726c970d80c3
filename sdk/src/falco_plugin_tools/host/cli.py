"""``falco-plugin info`` and ``falco-plugin run``: the host from the shell.

``info LIB`` prints what ``falco --list-plugins`` and ``falco --list`` would
show for the library (metadata, capabilities, exported symbols, fields, init
schema). ``run LIB`` initialises and opens the plugin and prints one line per
event, like libsinsp's example program::

    #1 ts=1712345678901234567 dummy.value=3 dummy.divisible[2]=0

then a summary line (``-- events=10 stop=eof``). ``--async`` sets the async
event handler for the run and prints each async event as it is seen
(``@async sample payload=b'...'``); ``--metrics`` prints the plugin's metrics
at the end (``-- metric seen monotonic u64 4``). ``--json`` prints JSON
instead (one object per event, then ``{"summary": ...}``). Errors go to
stderr and the exit status is 1. A field whose extraction failed prints its
error in place of its value (``dummy.value=<error: extracting dummy.value:
ValueError: ...>``; in JSON, ``null`` and the message under ``"errors"``),
the summary counts them (``errors=N``), and the exit status is 1: Falco would
show ``<NA>`` and say nothing.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from falco_plugin_tools.abi import ENTRY_POINTS
from falco_plugin_tools.host._ffi import Rc
from falco_plugin_tools.host.async_events import AsyncEvent
from falco_plugin_tools.host.errors import ExtractionError, HostError
from falco_plugin_tools.host.fields import FieldInfo
from falco_plugin_tools.host.handle import PluginHandle, Value
from falco_plugin_tools.host.loader import CAPABILITIES, PluginInfo, PluginLibrary

__all__ = ["add_arguments", "main", "split_fields", "format_value"]

NO_VALUE = "<NA>"  # what Falco prints for a field without a value


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("library", help="the plugin library (lib<name>.so)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    if command != "run":
        return
    parser.add_argument(
        "--init-config", default="", metavar="S", help="init configuration (JSON when the plugin has a schema)"
    )
    parser.add_argument("--open-params", default="", metavar="S", help="open parameters, passed to the plugin as is")
    parser.add_argument(
        "--fields",
        default=None,
        metavar="F1,F2",
        help="fields to extract, e.g. dummy.value,dummy.divisible[2] (default: every field that needs no argument)",
    )
    parser.add_argument("-n", "--max-events", type=int, default=None, metavar="N", help="stop after N events")
    parser.add_argument(
        "--capture",
        type=Path,
        default=None,
        metavar="FILE.scap",
        help="replay a capture (gzip or not) through the plugin's parser and extractors instead of opening its "
        "source; --fields may also name libsinsp core fields (evt.num, evt.type, proc.name, proc.pid, "
        "thread.tid, evt.arg.NAME...)",
    )
    parser.add_argument(
        "--idle-timeout", type=float, default=None, metavar="S", help="stop when the source sends nothing for S seconds"
    )
    parser.add_argument("--async", dest="async_events", action="store_true", help="set the async event handler")
    parser.add_argument("--metrics", action="store_true", help="print the plugin's metrics at the end")
    parser.add_argument("-v", "--verbose", action="store_true", help="show every plugin log message, not just warnings")


def main(args: argparse.Namespace) -> int:
    try:
        if args.command == "info":
            return _info(args, sys.stdout)
        return _run(args, sys.stdout)
    except HostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file named on the command line (--capture) that cannot be read
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1


# -- info --------------------------------------------------------------------------


def _info(args: argparse.Namespace, out: TextIO) -> int:
    with PluginLibrary.load(args.library) as lib:
        info = lib.info
        if args.json:
            json.dump({"path": str(lib.path), **info.to_json()}, out, indent=2)
            out.write("\n")
        else:
            out.write(describe(info))
    return 0


def describe(info: PluginInfo) -> str:
    """The text ``falco-plugin info`` prints."""
    lines = [
        f"Name: {info.name}",
        f"Description: {info.description}",
        f"Contact: {info.contact}",
        f"Version: {info.version}",
        f"Required API version: {info.required_api_version}",
        "Capabilities:",
    ]
    for cap, title in CAPABILITIES.items():
        if cap in info.capabilities:
            extra = f" (ID={info.id}, source='{info.event_source}')" if cap == "sourcing" and info.id else ""
            lines.append(f"  - {title}{extra}")
    for label, sources in (
        ("Extract event sources", info.extract_event_sources),
        ("Parse event sources", info.parse_event_sources),
        ("Async event sources", info.async_event_sources),
    ):
        if sources:
            lines.append(f"{label}: {', '.join(sorted(sources))}")
    if info.async_events:
        lines.append(f"Async events: {', '.join(info.async_events)}")
    lines.append("Exported symbols:")
    lines += [f"  {'plugin_' + n}" for n in ENTRY_POINTS if "plugin_" + n in info.symbols]
    if info.fields:
        lines += ["", f"Fields ({len(info.fields)}):", *_field_table(info.fields)]
    lines += ["", "Init config schema:" + ("" if info.init_schema else " none")]
    if info.init_schema:
        lines.append(json.dumps(info.init_schema, indent=2))
    return "\n".join(lines) + "\n"


def _field_table(fields: list[FieldInfo]) -> list[str]:
    rows = [("NAME", "TYPE", "ARG", "DESCRIPTION")]
    for f in fields:
        ftype = f"list[{f.type}]" if f.is_list else f.type
        rows.append((f.name, ftype, f.arg_summary(), f.desc))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3] for r in rows]


# -- run ---------------------------------------------------------------------------


def split_fields(text: str) -> list[str]:
    """Split ``a,b[x,y],c`` at the commas outside brackets."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
        current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def format_value(value: Value | list[Value] | None) -> str:
    """A value as Falco prints it: ``<NA>`` when missing, ``(a,b)`` for lists."""
    if value is None:
        return NO_VALUE
    if isinstance(value, list):
        return "(" + ",".join(format_value(v) for v in value) + ")"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _extract_all(
    plugin: PluginHandle, event: Any, requests: dict[str, Any]
) -> tuple[dict[str, Value | list[Value] | None], dict[str, str]]:
    """Each requested field's value (``None`` when it failed) and, apart, the errors of those that failed."""
    values: dict[str, Value | list[Value] | None] = {}
    errors: dict[str, str] = {}
    for text, request in requests.items():
        try:
            values[text] = plugin.extract(event, request)
        except ExtractionError as exc:
            values[text], errors[text] = None, str(exc)
    return values, errors


def _pairs(values: dict[str, Value | list[Value] | None], errors: dict[str, str]) -> str:
    return "".join(
        f" {k}=<error: {errors[k]}>" if k in errors else f" {k}={format_value(v)}" for k, v in values.items()
    )


def _jsonable(value: Value | list[Value] | None) -> Any:
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    return value


def _run(args: argparse.Namespace, out: TextIO) -> int:
    # Plugin log messages go to stderr: warnings and worse, everything with --verbose.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("falco_plugin_tools.host")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        return _run_plugin(args, out)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _print_async(events: list[AsyncEvent], as_json: bool, out: TextIO) -> None:
    for e in events:
        if as_json:
            record = {"name": e.name, "payload": e.payload.decode("utf-8", "replace"), "ts": e.ts, "tid": e.tid}
            out.write(json.dumps({"async": record}) + "\n")
        else:
            out.write(f"@async {e.name} payload={e.payload!r}\n")


def _replay(args: argparse.Namespace, out: TextIO) -> int:
    """``run --capture``: every event libsinsp would show, with core and plugin fields."""
    from falco_plugin_tools.host.replay import Replay, is_core_field
    from falco_plugin_tools.host.tables import TableRegistry, threads_table

    with PluginLibrary.load(args.library) as lib:
        names = split_fields(args.fields) if args.fields is not None else ["evt.num", "evt.type", "proc.name"]
        requests = {n: None if is_core_field(n) else lib.field(n) for n in names}
        registry = TableRegistry(threads_table())
        count = failed = 0
        with lib.init(args.init_config, forward_logs=True, tables=registry) as plugin:
            for r in Replay(args.capture, [plugin], registry["threads"]).events(limit=args.max_events):
                count += 1
                values, errors = _extract_all(plugin, r.event, {n: q for n, q in requests.items() if q is not None})
                values = {n: r.core(n) if req is None else values[n] for n, req in requests.items()}
                failed += len(errors)
                if args.json:
                    record: dict[str, Any] = {
                        "num": r.event.num,
                        "fields": {k: _jsonable(v) for k, v in values.items()},
                    }
                    if errors:
                        record["errors"] = errors
                    out.write(json.dumps(record) + "\n")
                else:
                    out.write(f"#{r.event.num}{_pairs(values, errors)}\n")
            failed += plugin.parse_failures  # each logged by the plugin (the first at warning)
        if not args.json:
            out.write(f"-- events={count} capture={args.capture}" + (f" errors={failed}" if failed else "") + "\n")
    return 1 if failed else 0


def _run_plugin(args: argparse.Namespace, out: TextIO) -> int:
    if args.capture is not None:
        return _replay(args, out)
    with PluginLibrary.load(args.library) as lib:
        info = lib.info
        if "sourcing" not in info.capabilities:
            # Without a source there is nothing to open: its events come from a capture (or another plugin).
            caps = ", ".join(c for c in CAPABILITIES if c in info.capabilities)
            raise HostError(
                f"{info.name} has no event source of its own ({caps}): run it over a capture with "
                f"--capture FILE.scap, e.g. falco-plugin run {args.library} --capture FILE.scap "
                "--fields evt.num,evt.type,proc.name"
            )
        if args.fields is not None:
            requests = [lib.field(f) for f in split_fields(args.fields)]
        else:
            requests = [lib.field(f.name) for f in info.fields if not f.arg_required]
        show_info = "extraction" not in info.capabilities and info.id != 0
        count, failed, stop = 0, 0, "eof"
        with lib.init(args.init_config, forward_logs=True) as plugin, plugin.open(args.open_params) as capture:
            if args.async_events:
                plugin.async_events.start()
            try:
                for event in capture.events(limit=args.max_events, timeout_s=args.idle_timeout):
                    count += 1
                    if args.async_events:
                        _print_async(plugin.async_events.drain(), args.json, out)
                    values, errors = _extract_all(plugin, event, {r.text: r for r in requests})
                    failed += len(errors)
                    text = plugin.event_to_string(event) if show_info else None
                    if args.json:
                        record: dict[str, Any] = {"num": event.num, "ts": event.ts, "source": event.source}
                        record["fields"] = {k: _jsonable(v) for k, v in values.items()}
                        if errors:
                            record["errors"] = errors
                        if text is not None:
                            record["info"] = text
                        out.write(json.dumps(record) + "\n")
                    else:
                        pairs = _pairs(values, errors)
                        if text is not None:
                            pairs += f" info={text}"
                        out.write(f"#{event.num} ts={event.ts}{pairs}\n")
            except KeyboardInterrupt:
                stop = "interrupted"
            if stop != "interrupted":
                if args.max_events is not None and count >= args.max_events:
                    stop = "limit"
                elif capture.last_rc != Rc.EOF:  # the idle timeout ended it
                    stop = "idle"
            pct, _ = capture.progress()
            if args.async_events:
                plugin.async_events.stop()
                _print_async(plugin.async_events.drain(), args.json, out)
            if args.metrics:
                for m in plugin.metrics():
                    if args.json:
                        out.write(json.dumps({"metric": m._asdict()}) + "\n")
                    else:
                        out.write(f"-- metric {m.name} {m.type} {m.value_type} {m.value}\n")
        if args.json:
            summary: dict[str, Any] = {"events": count, "stop": stop, "progress": pct}
            if failed:
                summary["errors"] = failed
            out.write(json.dumps({"summary": summary}) + "\n")
        else:
            out.write(
                f"-- events={count} stop={stop} progress={pct:.2f}%" + (f" errors={failed}" if failed else "") + "\n"
            )
        out.flush()
    return 130 if stop == "interrupted" else 1 if failed else 0
