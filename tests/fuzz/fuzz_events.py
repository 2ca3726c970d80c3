"""Coverage-guided fuzzing of event decoding: raw event bytes and field arguments into ``extract_fields``.

    python tests/fuzz/fuzz_events.py LIBRARY [libFuzzer options] [CORPUS_DIR ...]

One plugin library is loaded into this process through the SDK's Python host
(``falco_plugin_tools.host``), initialised with its defaults, and every fuzz input
becomes one event plus one field expression per field. atheris (libFuzzer for
Python) steers by the coverage of the Python code on that path: the SDK
runtime and the plugin's own decoding. The C glue is exercised on every input
but not instrumented (it is built by gcc), so a crash there is caught -- the
process dies and libFuzzer writes the input as ``crash-<sha1>`` -- without
steering towards it.

Checked on every input: a failing extraction comes with a non-empty
``get_last_error`` message; a value has the field's declared type. A hang is
reported by libFuzzer's ``-timeout``. Run it through ``nox -s fuzz`` (see
tests/fuzz/README.md).
"""

from __future__ import annotations

import struct
import sys

import atheris

with atheris.instrument_imports():
    from falco_plugin_tools.host import ExtractionError, FieldExpressionError, HostEvent, PluginLibrary
    from falco_plugin_tools.host.fields import parse_field_expression

HEADER = struct.Struct("=QQIHI")  # ts, tid, len, type, nparams (26 bytes)
PLUGIN_EVENT = 322
VALUE_TYPES: dict[str, tuple[type, ...]] = {
    "uint64": (int,),
    "reltime": (int,),
    "abstime": (int,),
    "bool": (bool,),
    "string": (str,),
}


def split_input(data: bytes, plugin_id: int) -> tuple[bytes, list[str]]:
    """(event bytes, field arguments) of one fuzz input; the format is in tests/fuzz/README.md.

    Byte 0 is the kind of event, byte 1 the length N of the arguments that
    follow (UTF-8, one per line, for the fields that take one, in order); the
    rest is the payload (kinds 0, 1) or the event itself (kinds 2, 3).
    """
    kind = data[0] % 4 if data else 0
    n = data[1] if len(data) > 1 else 0
    args = data[2 : 2 + n].decode("utf-8", "replace").split("\n") if n else []
    rest = data[2 + n :]
    if kind <= 1:
        pid = plugin_id if kind == 0 else 0
        size = HEADER.size + 12 + len(rest)
        return HEADER.pack(0, 2**64 - 1, size, PLUGIN_EVENT, 2) + struct.pack("=III", 4, len(rest), pid) + rest, args
    raw = rest.ljust(HEADER.size, b"\0")
    ts, tid, _len, etype, nparams = HEADER.unpack_from(raw)
    # The header's len is always the true size: libsinsp guarantees it, so it is not fuzzed.
    header = HEADER.pack(ts, tid, len(raw), PLUGIN_EVENT if kind == 3 else etype, nparams)
    return header + raw[HEADER.size :], args


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)
    library = PluginLibrary.load(sys.argv[1])
    info = library.info
    handle = library.init("{}" if info.init_schema else "")
    source = info.event_source or next(iter(sorted(info.extract_event_sources)), "")
    plugin_id = info.id or 0

    def one_input(data: bytes) -> None:
        raw, args = split_input(data, plugin_id)
        event = HostEvent(raw, num=1, source=source)
        for f in info.fields:
            expr = f.name
            if f.is_index or f.is_key:
                if args:
                    expr = f"{f.name}[{args.pop(0)}]"
                elif f.arg_required:
                    expr = f"{f.name}[1]" if f.is_index else f"{f.name}[/id]"
            try:
                request = parse_field_expression(expr, info.fields)
            except FieldExpressionError:
                continue  # the host refuses it before the plugin sees it
            try:
                value = handle.extract(event, request)
            except ExtractionError as exc:
                if not str(exc).strip():
                    raise AssertionError(f"{expr}: failed without a message") from None
                continue
            for item in value if isinstance(value, list) else [value]:
                if item is not None and f.type in VALUE_TYPES and not isinstance(item, VALUE_TYPES[f.type]):
                    raise AssertionError(f"{expr}: {item!r} is not a {f.type}")

    # The plugin's modules are imported by init above: instrument them now that they are loaded.
    atheris.instrument_all()
    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
