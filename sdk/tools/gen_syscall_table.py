"""Generate ``falco_plugin/_internal/syscall_table.py`` from a falcosecurity/libs checkout.

Usage::

    python sdk/tools/gen_syscall_table.py LIBS_DIR > sdk/src/falco_plugin/_internal/syscall_table.py

LIBS_DIR is a checkout of falcosecurity/libs (0.25.x). The script reads the
event schema as data: type codes and flag values from
``driver/ppm_events_public.h``, event layouts from ``driver/event_table.c``,
the PT_DYN alternatives from ``driver/dynamic_params_table.c`` and the
savefile converter's rules (which old events it drops or rewrites) from
``userspace/libscap/engine/savefile/converter/table.cpp``. Only names and
numbers are extracted; the output is a plain data module.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Parameters typed PT_BYTEBUF that the drivers fill with NUL-separated
# strings (argv, environment, cgroups); the decoder gives them as list[str].
NUL_LISTS = {"args", "env", "cgroups"}


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def enum_values(header: str) -> dict[str, int]:
    """Every ``NAME = value`` and ``#define NAME value`` with an integer value."""
    values: dict[str, int] = {}
    for name, expr in re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=\s*([^,\n}]+)", header):
        v = evaluate(expr.strip(), values)
        if v is not None:
            values.setdefault(name, v)
    for name, expr in re.findall(r"#define\s+([A-Z][A-Z0-9_]+)\s+(\(?[0-9x<\s()]+\)?)\s*$", header, flags=re.M):
        v = evaluate(expr.strip(), values)
        if v is not None:
            values.setdefault(name, v)
    return values


def evaluate(expr: str, names: dict[str, int]) -> int | None:
    """Evaluate ``A | B``, ``(1 << 3)`` and integers; None when not such an expression."""
    if not re.fullmatch(r"[A-Za-z0-9_|<()\sx]+", expr):
        return None
    total = 0
    for part in expr.split("|"):
        part = part.strip().strip("()").strip()
        m = re.fullmatch(r"(\d+)\s*<<\s*(\d+)", part)
        if m:
            total |= int(m.group(1)) << int(m.group(2))
        elif re.fullmatch(r"0x[0-9a-fA-F]+", part):
            total |= int(part, 16)
        elif re.fullmatch(r"\d+", part):
            total |= int(part, 8 if part.startswith("0") and len(part) > 1 else 10)
        elif part in names:
            total |= names[part]
        else:
            return None
    return total


def parse_events(table: str, names: dict[str, int]) -> dict[int, tuple[str, int, int, list[tuple[str, str, str]]]]:
    table = strip_comments(table)
    body = table[table.index("g_event_info[]") :]
    starts = [(m.start(), m.group(1)) for m in re.finditer(r"\[(PPME_[A-Z0-9_]+)\]\s*=", body)]
    events = {}
    for i, (pos, code) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else body.index("};", pos)
        entry = body[pos:end]
        m = re.search(r'=\s*\{\s*"([^"]*)"\s*,\s*([^,]+),\s*([^,]+),\s*(\d+)', entry)
        if not m:
            raise SystemExit(f"cannot parse entry {code}")
        name, cat, flags, nparams = m.group(1), m.group(2), m.group(3), int(m.group(4))
        params = []
        for pm in re.finditer(
            r'\{\s*"([^"]*)"\s*,\s*(PT_[A-Z0-9_]+)\s*,\s*(PF_[A-Z0-9_]+)\s*(?:,\s*([A-Za-z0-9_]+))?', entry
        ):
            params.append((pm.group(1), pm.group(2), pm.group(4) or ""))
        if len(params) < nparams:
            raise SystemExit(f"{code}: {nparams} params declared, {len(params)} parsed")
        c, f = evaluate(cat.strip(), names), evaluate(flags.strip(), names)
        if c is None or f is None:
            raise SystemExit(f"{code}: cannot evaluate {cat!r} / {flags!r}")
        events[names[code]] = (name, c, f, params[:nparams])
    return events


def parse_dynamic(text: str, names: dict[str, int]) -> dict[str, list[str]]:
    text = strip_comments(text)
    out: dict[str, list[str]] = {}
    for m in re.finditer(r"ppm_param_info\s+(\w+)\[\w+\]\s*=\s*\{(.*?)\};", text, flags=re.S):
        entries = re.findall(r"\[(\w+)\]\s*=\s*\{\{0\}\s*,\s*(PT_\w+)", m.group(2))
        types = [""] * len(entries)
        for idx, pt in entries:
            types[names[idx]] = pt
        out[m.group(1)] = types
    return out


def parse_conversions(
    text: str, names: dict[str, int]
) -> dict[tuple[int, int], tuple[str, int, tuple[tuple[str, int, bool], ...]]]:
    """(type, nparams) -> (action, desired type or -1, instructions (source, param, fallback to empty))."""
    text = strip_comments(text)
    body = text[text.index("g_conversion_table") :]
    out = {}
    keys = list(re.finditer(r"conversion_key\{(PPME_\w+),\s*(\d+)\}", body))
    for i, m in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(body)
        entry = body[m.end() : end]
        action = re.search(r"\.action\((C_ACTION_\w+)\)", entry)
        desired = re.search(r"\.desired_type\((PPME_\w+)\)", entry)
        if not action:
            raise SystemExit(f"no action for {m.group(0)}")
        instrs = tuple(
            (kind.removeprefix("C_INSTR_FROM_"), int(num or 0), flag == "CIF_FALLBACK_TO_EMPTY")
            for kind, num, flag in re.findall(r"\{(C_INSTR_\w+)\s*(?:,\s*(\d+))?\s*(?:,\s*(CIF_\w+))?", entry)
        )
        if len(instrs) != len(re.findall(r"\{C_INSTR_", entry)):
            raise SystemExit(f"cannot parse the instructions of {m.group(0)}")
        out[(names[m.group(1)], int(m.group(2)))] = (
            action.group(1).removeprefix("C_ACTION_"),
            names[desired.group(1)] if desired else -1,
            instrs,
        )
    return out


def main() -> None:
    libs = Path(sys.argv[1])
    header = strip_comments((libs / "driver/ppm_events_public.h").read_text())
    names = enum_values(header)
    # Type codes: the members of the ppm_event_code enum (other PPME_ macros are flags).
    enum_body = re.search(r"typedef enum \{([^}]*)\}\s*ppm_event_code;", header)
    assert enum_body, "no ppm_event_code enum"
    codes = {int(v): k for k, v in re.findall(r"\b(PPME_\w+)\s*=\s*(\d+)", enum_body.group(1))}
    events = parse_events((libs / "driver/event_table.c").read_text(), names)
    dynamic = parse_dynamic((libs / "driver/dynamic_params_table.c").read_text(), names)
    conversions = parse_conversions((libs / "userspace/libscap/engine/savefile/converter/table.cpp").read_text(), names)
    schema = (libs / "driver/SCHEMA_VERSION").read_text().strip()
    pts = sorted((v, k) for k, v in names.items() if k.startswith("PT_") and k != "PT_MAX")
    w = sys.stdout.write
    w('"""The syscall event schema of falcosecurity/libs, as data.\n\n')
    w("Generated by sdk/tools/gen_syscall_table.py from the libs sources; do not edit.\n")
    w(f"Schema {schema}. EVENTS maps a type code to (name, category, flags, params); each param is\n")
    w("(name, PT_ type code, extra), where extra names the PT_DYN alternatives (a key\n")
    w('of DYNAMIC) or is "nul-list" for byte buffers holding NUL-separated strings.\n')
    w("Even codes are enter events, odd codes exit events. CONVERSIONS holds the\n")
    w("savefile converter's rules: (type, nparams) -> (action, new type or -1,\n")
    w("instructions), an instruction being (where the parameter comes from: OLD event,\n")
    w("ENTER event, EMPTY, DEFAULT value or CALLBACK, its index there, whether a missing\n")
    w('one falls back to EMPTY rather than DEFAULT); ADD_PARAMS appends, CHANGE_TYPE rebuilds."""\n\n')
    w("# ruff: noqa: E501\n# fmt: off\n")
    w(f'SCHEMA_VERSION = "{schema}"\n\n')
    for v, k in pts:
        w(f"{k} = {v}\n")
    w(f"\nPT_NAMES: dict[int, str] = {{{', '.join(f'{v}: {k[3:]!r}' for v, k in pts)}}}\n\n")
    for k in ("EF_LARGE_PAYLOAD", "EF_OLD_VERSION", "EF_UNUSED", "EF_CONVERTER_MANAGED", "EF_MODIFIES_STATE"):
        w(f"{k} = {names[k]}\n")
    for k in ("EC_INTERNAL", "EC_PLUGIN", "EC_METAEVENT", "EC_SYSCALL", "EC_PROCESS"):
        w(f"{k} = {names[k]}\n")
    w(f"PPM_EVENT_MAX = {names['PPM_EVENT_MAX']}\n\n")
    w(f"CODES: dict[int, str] = {{{', '.join(f'{c}: {codes[c]!r}' for c in sorted(events))}}}\n\n")
    scs = {int(v): n.lower() for n, v in re.findall(r"PPM_SC_X\((\w+),\s*(\d+)\)", header)}
    w("# Syscall names by ppm_sc code: what evt.type shows for generic events (their ID parameter).\n")
    w(f"SYSCALLS: dict[int, str] = {{{', '.join(f'{c}: {scs[c]!r}' for c in sorted(scs))}}}\n\n")
    w("DYNAMIC: dict[str, tuple[int, ...]] = {\n")
    for dname, types in dynamic.items():
        w(f"    {dname!r}: ({''.join(f'{t}, ' for t in types)}),\n")
    w("}\n\n")
    w("EVENTS: dict[int, tuple[str, int, int, tuple[tuple[str, int, str], ...]]] = {\n")
    for code in sorted(events):
        name, cat, flags, params = events[code]
        ps = []
        for pname, pt, extra in params:
            if pt == "PT_DYN":
                assert extra in dynamic, (code, pname, extra)
            elif pt == "PT_BYTEBUF" and pname in NUL_LISTS and cat & 0xFF == names["EC_PROCESS"]:
                extra = "nul-list"
            else:
                extra = ""
            ps.append(f"({pname!r}, {pt}, {extra!r})")
        w(f"    {code}: ({name!r}, {cat}, {flags}, ({''.join(p + ', ' for p in ps)})),\n")
    w("}\n\n")
    w("CONVERSIONS: dict[tuple[int, int], tuple[str, int, tuple[tuple[str, int, bool], ...]]] = {\n")
    for key in sorted(conversions):
        w(f"    {key}: {conversions[key]!r},\n")
    w("}\n")
    w("# fmt: on\n")
    assert len(events) == names["PPM_EVENT_MAX"], (len(events), names["PPM_EVENT_MAX"])


if __name__ == "__main__":
    main()
