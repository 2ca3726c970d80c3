"""What the fuzz tests share: the plugins under test, input strategies, the C host runner and the invariant.

Every plugin project under ``plugins/`` is a target, found by globbing, so a
new reference plugin is fuzzed with no change here. What is learnt from the
library itself (fields, init schema, suggested open params) drives the
strategies; :data:`PROFILES` adds, per plugin name, only what cannot be
learnt: which settings must be kept inside the sandbox, how many events to
read after ``open``, and oracles for the exact value of a field.

The invariant, for any input: the C host exits 0, or 1 with one
``error: <call>: <message>`` line naming the failing call; it is never killed
by a signal, never times out, and nothing else appears on stderr. Every value
the plugin returns is of the field's declared type and, where an oracle
exists, equal to what the oracle computes from the payload.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = [
    *sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml")),
    ROOT / "tests" / "plugins" / "json_fields",
]
"""Every plugin of ``plugins/``, and the fixture whose fields are declared by JSON pointer (extracted by
the glue in C, checked against an oracle of the rules documented in ``falco_plugin/jsonfields.py``)."""
CORPUS = Path(__file__).with_name("corpus")
TIMEOUT = 60.0

HEADER = struct.Struct("<QQIHI")  # ts, tid, len, type, nparams: 26 bytes, packed
PLUGIN_EVENT = 322
PAYLOAD_OFFSET = HEADER.size + 12
ASYNC_EVENT = 402
ASYNC_NAME_OFFSET = HEADER.size + 12 + 4  # three lengths, then the plugin id (u32), then the name
NO_VALUE = 2**64 - 1

NUL_CUT_TOLERATED = False
"""Whether a string value with an embedded NUL may reach the host cut at the NUL (defect 4 of issue 13,
fixed in the glue: such a field fails). Only for bisecting across older SDK versions."""


# -- what the host sees -------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    is_list: bool
    is_index: bool
    is_key: bool
    arg_required: bool


@dataclass
class Target:
    """One plugin under fuzz: its library, as the C host will load it, and what it declares."""

    project: Path
    library: Path
    name: str
    fields: list[Field]
    init_schema: dict[str, Any] | None
    open_suggestions: list[str]
    has_source: bool

    @property
    def profile(self) -> Profile:
        return PROFILES.get(self.name, Profile())


def describe(project: Path, library: Path) -> Target:
    """Read a built library's declarations through the SDK's Python host (init with defaults for open params)."""
    from falco_plugin_tools.host import PluginLibrary

    lib = PluginLibrary.load(library)
    info = lib.info
    suggestions: list[str] = []
    has_source = "sourcing" in info.capabilities
    if has_source and lib.has("plugin_list_open_params"):
        with lib.init("{}" if info.init_schema else "") as handle:
            suggestions = [p["value"] for p in handle.list_open_params()]
    fields = [Field(f.name, f.type, f.is_list, f.is_index, f.is_key, f.arg_required) for f in info.fields]
    return Target(project, library, info.name, fields, info.init_schema, suggestions, has_source)


# -- the sandbox ---------------------------------------------------------------------------------


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released): connecting there is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Sandbox:
    """Where fuzzed settings may point: a scratch directory and a refused loopback port."""

    scratch: Path
    port: int

    def url(self, text: str) -> str:
        """``text`` with its scheme kept (http/https only) and its host forced to the refused loopback port."""
        scheme = "https" if text.lower().startswith("https") else "http"
        rest = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*", "", text)
        return f"{scheme}://127.0.0.1:{self.port}{rest if rest[:1] in ('/', '?', '#') else '/' + rest}"

    def path(self, text: str) -> str:
        """A path under the scratch directory named after ``text``."""
        name = re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".") or "empty"
        return str(self.scratch / name[:80])

    def confine(self, value: Any, kinds: dict[str, str], key: str = "") -> Any:
        """Rewrite every string a setting of kind ``url`` or ``path`` holds, at any depth; any text with a
        scheme is kept on loopback too, whatever its key."""
        if isinstance(value, dict):
            return {k: self.confine(v, kinds, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.confine(v, kinds, key) for v in value]
        if isinstance(value, str):
            kind = kinds.get(key)
            if kind == "url" or "://" in value:
                return self.url(value)
            if kind == "path":
                return self.path(value)
        return value


# -- per-plugin knowledge that the library cannot tell ------------------------------------------------


Oracle = Callable[[bytes, str], tuple[str, Any]]
"""(payload, field expression) -> ("value", expected text as chost prints it) | ("error", None) | ("any", None)."""


@dataclass(frozen=True)
class Profile:
    confined: dict[str, str] = field(default_factory=dict)
    """Setting names (init config or open params, at any depth) whose strings must stay in the sandbox."""
    read_after_open: int = 0
    """Events to read after a successful open (0: open and close only, for sources that would wait)."""
    payloads: st.SearchStrategy[bytes] = field(default_factory=lambda: st.binary(max_size=64))
    """Payloads the plugin's own source could produce, to reach past its first parse."""
    args: dict[str, st.SearchStrategy[str]] = field(default_factory=dict)
    """Arguments worth trying per field, besides random ones."""
    oracle: Oracle | None = None


def _u64(value: Any) -> tuple[str, Any]:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64:
        return "value", str(value)
    return "error", None


def _text(value: Any) -> tuple[str, Any]:
    if isinstance(value, str):
        if "\x00" in value:
            return "nul", value
        return "value", escape(value)
    if value is None:
        return "value", "<none>"
    return "error", None


def _dummy_oracle(payload: bytes, expr: str) -> tuple[str, Any]:
    try:
        number: int | None = int(payload)
    except ValueError:
        number = None
    if expr == "dummy.value":
        return _u64(number)
    if expr == "dummy.strvalue":
        try:
            return _text(payload.decode())
        except UnicodeDecodeError:
            return "error", None
    m = re.fullmatch(r"dummy\.divisible\[(\d+)\]", expr)
    if m:
        divisor = int(m.group(1))
        if divisor == 0 or number is None:
            return "error", None
        return _u64(1 if number % divisor == 0 else 0)
    return "any", None


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _http_poll_oracle(payload: bytes, expr: str) -> tuple[str, Any]:
    if expr.startswith("http_poll.value["):  # a JSON field (issue 19): the SDK's rules, whatever the JSON
        return _json_rule(payload, "string", "/record", None, expr[len("http_poll.value[") : -1])
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return "error", None
    if not isinstance(doc, dict) or not {"url", "status", "record"} <= doc.keys():
        return "error", None
    if doc.get("id") is not None and not isinstance(doc["id"], str):
        return "error", None  # an id is text or null in every envelope http_poll writes
    status = doc["status"]
    if not isinstance(status, int) or isinstance(status, bool):
        return "any", None  # int() of floats and digit strings: the plugin's business, not the glue's
    record = doc["record"]
    if expr == "http_poll.url":
        return _text(doc["url"]) if isinstance(doc["url"], str) else ("any", None)
    if expr == "http_poll.status":
        return _u64(status)
    if expr == "http_poll.id":
        return _text(doc.get("id"))
    if expr == "http_poll.raw":
        return _text(_compact(record))
    return "any", None


class _UnsureError(Exception):
    """The oracle does not predict this case (where Python's json and RFC 8259 parsers may differ)."""


def _strict_json(payload: bytes) -> Any:
    """The payload as RFC 8259 JSON, or ValueError; _UnsureError where Python's json is laxer or stricter than RFC."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in items}) != len(items):
            raise _UnsureError("duplicate keys")  # which one a pointer finds is the parser's choice
        return dict(items)

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    # The glue writes numbers as spelled in the payload; the oracle, as Python spells them.
    def exact_float(text: str) -> float:
        if repr(float(text)) != text:
            raise _UnsureError("a number Python spells otherwise")
        return float(text)

    def exact_int(text: str) -> int:
        if text == "-0" or len(text) > 4000:  # Python converts at most 4300 digits
            raise _UnsureError("a number Python spells otherwise, or refuses")
        return int(text)

    text = payload.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if text.startswith("\ufeff") or re.search(r"\\u[dD][89a-fA-F]", text):
        raise _UnsureError("a byte order mark or an escaped surrogate")
    try:
        return json.loads(
            text, object_pairs_hook=pairs, parse_constant=no_constant, parse_float=exact_float, parse_int=exact_int
        )
    except RecursionError:
        raise _UnsureError("deeper than Python's json goes") from None


def _json_text(value: Any) -> str:
    """The compact JSON text the glue writes for a non-string value."""
    # The glue's writer spells a \\u escape (a control character) with upper-case hex digits.
    return re.sub(r"\\(u[0-9a-f]{4}|.)", _upper_hex, _compact(value))


def _upper_hex(m: re.Match[str]) -> str:
    escaped = m.group(1)
    return "\\u" + escaped[1:].upper() if len(escaped) == 5 else m.group(0)


def _pointer_get(doc: Any, pointer: str) -> tuple[bool, Any]:
    """RFC 6901: (found, value); ValueError for a pointer that is not one."""
    if pointer == "":
        return True, doc
    if not pointer.startswith("/") or re.search(r"~(?![01])", pointer):
        raise ValueError(f"not a JSON pointer: {pointer!r}")
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, dict):
            if token not in doc:
                return False, None
            doc = doc[token]
        elif isinstance(doc, list):
            if not re.fullmatch(r"0|[1-9][0-9]*", token):
                raise _UnsureError("an array index with a sign, a leading zero or '-'")
            if int(token) >= len(doc):
                return False, None
            doc = doc[int(token)]
        else:
            return False, None
    return True, doc


def _as_string(value: Any) -> str:
    return value if isinstance(value, str) else _json_text(value)


# The fixture's JSON fields: name -> (type, base, pointer; None: the argument)
_JX_FIELDS: dict[str, tuple[str, str, str | None]] = {
    "jx.str": ("string", "", "/s"),
    "jx.int": ("uint64", "", "/n"),
    "jx.bool": ("bool", "", "/b"),
    "jx.list": ("list", "", "/l"),
    "jx.escaped": ("string", "", "/a~1b/m~0n"),
    "jx.first": ("string", "", "/l/0"),
    "jx.rec.name": ("string", "/record", "/name"),
    "jx.value": ("string", "", None),
    "jx.rec.value": ("string", "/record", None),
}


def _json_fields_oracle(payload: bytes, expr: str) -> tuple[str, Any]:
    name, _, arg = expr.partition("[")
    if name not in _JX_FIELDS:
        return "any", None  # jx.size is Python's
    ftype, base, pointer = _JX_FIELDS[name]
    return _json_rule(payload, ftype, base, pointer, arg[:-1])


def _json_rule(payload: bytes, ftype: str, base: str, pointer: str | None, arg: str) -> tuple[str, Any]:
    """What a field declared by falco_plugin.json_field gives (``pointer`` None: the argument ``arg``)."""
    if not payload:
        return "any", None  # not a plugin event (no value), or an empty payload (an error)
    try:
        try:
            doc = _strict_json(payload)
        except ValueError:
            return "error", None
        if pointer is None:
            try:
                _pointer_get({}, arg)
            except ValueError:
                return "error", None
            pointer = arg
        found, value = _pointer_get(doc, base)
        if found:
            found, value = _pointer_get(value, pointer)
        if not found or value is None:
            return "value", "<none>"
        if ftype == "uint64":
            ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64
            return ("value", str(value)) if ok else ("value", "<none>")
        if ftype == "bool":
            return ("value", "true" if value else "false") if isinstance(value, bool) else ("value", "<none>")
        items = [v for v in value if v is not None] if ftype == "list" and isinstance(value, list) else [value]
        texts = [_as_string(v) for v in items]
        if any("\x00" in t for t in texts):
            return "error", None  # a Falco string cannot carry NUL
        return "value", ",".join(escape(t) for t in texts) if texts else "<none>"
    except _UnsureError:
        return "any", None


_JSON_SCALAR = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
_JSON = st.recursive(
    _JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_ENVELOPE = st.fixed_dictionaries(
    {
        "url": st.text(max_size=20),
        "status": st.integers(min_value=-1, max_value=2**64) | st.sampled_from([200, 404]),
        "record": st.dictionaries(st.sampled_from(["id", "actor", "n", "", "x_1"]), _JSON, max_size=4) | _JSON,
    },
    optional={"id": st.none() | st.text(max_size=12) | st.integers()},
).map(lambda d: json.dumps(d, ensure_ascii=False).encode())

_JX_VALUE = st.none() | st.booleans() | st.integers(min_value=-5, max_value=2**64 + 5) | st.text(max_size=6)
_JX_JSON = st.recursive(
    _JX_VALUE,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["name", "a", "m~n", ""]), inner, max_size=3)
    ),
    max_leaves=6,
)
_JX_PAYLOAD = st.dictionaries(st.sampled_from(["s", "n", "b", "l", "a/b", "record", "x"]), _JX_JSON, max_size=5).map(
    lambda d: json.dumps(d, ensure_ascii=False).encode()
) | st.sampled_from([b"[]", b"null", b"{", b'{"s":"\\u0000"}', b'{"s":1e400}', b"[" * 3000 + b"]" * 3000])

PROFILES: dict[str, Profile] = {
    "fxt-json-fields": Profile(
        payloads=_JX_PAYLOAD,
        args={
            name: st.sampled_from(
                ["/s", "/l/0", "/l/1", "/a~1b/m~0n", "", "/", "/name", "/missing", "s", "/a~2", "/n/0"]
            )
            for name in ("jx.value", "jx.rec.value")
        },
        oracle=_json_fields_oracle,
    ),
    "dummy_py": Profile(
        read_after_open=5,
        payloads=st.integers(min_value=-(2**70), max_value=2**70).map(lambda n: str(n).encode())
        | st.from_regex(rb"\A[ \t]*-?[0-9_]{1,22}[ \t\n]*\Z"),
        args={"dummy.divisible": st.integers(min_value=0, max_value=2**64 - 1).map(str)},
        oracle=_dummy_oracle,
    ),
    "http_poll": Profile(
        confined={
            "url": "url",
            "proxy": "url",
            "checkpoint": "path",
            "ca_bundle": "path",
            "client_cert": "path",
            "client_key": "path",
            "value_from_file": "path",
        },
        payloads=_ENVELOPE,
        args={"http_poll.value": st.sampled_from(["/id", "/actor", "/n", "/", "/x_1", "", "/missing", "/0", "/a~1b"])},
        oracle=_http_poll_oracle,
    ),
}


# -- strategies ------------------------------------------------------------------------------------

# What an argv string can hold: no NUL, no lone surrogates.
ARGV_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


def _drop_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_drop_nul(k): _drop_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_drop_nul(v) for v in value]
    return value


def _json_for(schema: dict[str, Any] | None, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values around what ``schema`` accepts: the right type with edge values, or anything else."""
    if not schema or depth > 3:
        return _JSON
    options: list[st.SearchStrategy[Any]] = [_JSON]
    if "enum" in schema:
        options.append(st.sampled_from(schema["enum"]))
    types = schema.get("type", [])
    for t in [types] if isinstance(types, str) else types:
        if t == "integer":
            edges = [schema[k] + d for k in ("minimum", "maximum") if k in schema for d in (-1, 0, 1)]
            options.append(st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from(edges or [0]))
        elif t == "number":
            options.append(st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0, 1e-9, 1e308]))
        elif t == "boolean":
            options.append(st.booleans())
        elif t == "string":
            options.append(st.text(max_size=30))
        elif t == "null":
            options.append(st.none())
        elif t == "array":
            options.append(st.lists(_json_for(schema.get("items"), depth + 1), max_size=3))
        elif t == "object":
            options.append(_object_for(schema, depth + 1))
    return st.one_of(options)


def _object_for(schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with some of the schema's keys (values from :func:`_json_for`) and maybe an unknown key."""
    props: dict[str, Any] = schema.get("properties", {})
    keys = sorted(props)
    known = st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)) if keys else st.just([])
    shaped = known.flatmap(lambda chosen: st.fixed_dictionaries({k: _json_for(props[k], depth) for k in chosen}))
    unknown = st.dictionaries(st.text(max_size=8), _JSON, max_size=1)
    return st.builds(lambda a, b: {**b, **a}, shaped, st.just({}) | unknown)


def _as_text(doc: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    """JSON text of ``doc``, sometimes cut short or with a stray byte, as a hand-edited file might be."""

    def render(value: Any, cut: int | None) -> str:
        text = json.dumps(_drop_nul(value), ensure_ascii=False)
        return text if cut is None else text[: cut % (len(text) + 1)]

    return st.builds(render, doc, st.none() | st.none() | st.integers(min_value=0))


def settings_text(target: Target, sandbox: Sandbox, schema: dict[str, Any] | None) -> st.SearchStrategy[str]:
    """Config or open-params text: schema-shaped objects, any JSON, or any text."""
    shaped = _object_for(schema) if schema else _JSON
    confined = shaped.map(lambda doc: sandbox.confine(doc, target.profile.confined))
    return st.one_of(_as_text(confined), _as_text(_JSON.map(lambda d: sandbox.confine(d, {}))), ARGV_TEXT)


def open_params_text(target: Target, sandbox: Sandbox) -> st.SearchStrategy[str]:
    """Open params: mutations of the plugin's own suggestions (their keys, other values), or anything."""
    suggested = [json.loads(s) for s in target.open_suggestions if _is_json_object(s)]
    schema = {"type": "object", "properties": {k: {} for doc in suggested for k in doc}} if suggested else None
    options = [settings_text(target, sandbox, schema)]
    if suggested:
        options.append(
            st.sampled_from(suggested).flatmap(
                lambda doc: st.dictionaries(st.sampled_from(sorted(doc)), _JSON, max_size=2).map(
                    lambda changes: json.dumps(
                        _drop_nul(sandbox.confine({**doc, **changes}, target.profile.confined)), ensure_ascii=False
                    )
                )
            )
        )
    return st.one_of(options).filter(lambda s: "\x00" not in s)


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def plugin_event(payload: bytes, *, plugin_id: int = 0, ts: int = NO_VALUE, tid: int = NO_VALUE) -> bytes:
    size = PAYLOAD_OFFSET + len(payload)
    return HEADER.pack(ts, tid, size, PLUGIN_EVENT, 2) + struct.pack("<III", 4, len(payload), plugin_id) + payload


def raw_event(etype: int, nparams: int, body: bytes, *, ts: int = 0, tid: int = NO_VALUE) -> bytes:
    """Any header over ``body``; the header's len is always the true size (the host's promise)."""
    return HEADER.pack(ts, tid, HEADER.size + len(body), etype, nparams) + body


def _params_body(params: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(p)) for p in params) + b"".join(params)


U64 = st.integers(min_value=0, max_value=2**64 - 1)
U32 = st.integers(min_value=0, max_value=2**32 - 1)


def events(payloads: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Raw events: well-formed plugin events, plugin events with lying parameter lengths, other event types."""
    good = st.builds(
        lambda p, pid, ts: plugin_event(p, plugin_id=pid, ts=ts), payloads | st.binary(max_size=64), U32, U64
    )
    lying = st.builds(
        lambda l0, l1, pid, tail: raw_event(PLUGIN_EVENT, 2, struct.pack("<III", l0, l1, pid) + tail),
        st.sampled_from([0, 3, 4, 5, 8, 2**32 - 1]) | U32,
        st.integers(min_value=0, max_value=80) | st.sampled_from([2**31, 2**32 - 38, 2**32 - 1]),
        U32,
        st.binary(max_size=48),
    )
    other_nparams = st.builds(
        lambda n, body: raw_event(PLUGIN_EVENT, n, body),
        st.sampled_from([0, 1, 3, 2**32 - 1]) | U32,
        st.binary(max_size=48),
    )
    other_types = st.builds(
        lambda t, params: raw_event(t, len(params), _params_body(params)),
        st.integers(min_value=0, max_value=2**16 - 1),
        st.lists(st.binary(max_size=12), max_size=4),
    )
    garbage = st.builds(
        lambda t, n, body: raw_event(t, n, body), st.integers(0, 2**16 - 1), U32, st.binary(max_size=64)
    )
    return st.one_of(good, good, lying, other_nparams, other_types, garbage)


def field_exprs(target: Target, *, random_args: bool) -> st.SearchStrategy[list[str]]:
    """A non-empty selection of the plugin's fields as ``--fields`` expressions (``name`` or ``name[arg]``)."""

    def expr(f: Field) -> st.SearchStrategy[str]:
        if not (f.is_index or f.is_key):
            return st.just(f.name)
        known = target.profile.args.get(f.name)
        if f.is_index:
            arg: st.SearchStrategy[str] = U64.map(str) | st.sampled_from(["0", "1", "2", "7"])
        else:
            # chost's --fields syntax: an argument cannot hold ',' '[' or ']'; it is capped at 127 bytes.
            arg = st.text(
                alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=",[]"), max_size=30
            ).filter(lambda a: len(a.encode()) < 128)
        if not random_args and known is not None:
            arg = known
        elif known is not None:
            arg = known | arg
        bare = [] if f.arg_required else [st.just(f.name)]
        return st.one_of(*bare, arg.map(lambda a: f"{f.name}[{a}]"))

    return st.lists(st.sampled_from(target.fields), min_size=1, max_size=4).flatmap(
        lambda fs: st.tuples(*(expr(f) for f in fs)).map(list)
    )


# -- running the C host ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    argv: list[str]
    rc: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"argv={self.argv!r}\nrc={self.rc}\nstdout={self.stdout[-2000:]!r}\nstderr={self.stderr[-2000:]!r}"


def run_chost(chost: Path, target: Target, *args: str, cwd: Path) -> Run:
    """One C host process, in an empty environment, in a scratch directory; a hang is a failure."""
    argv = [str(chost), str(target.library), *args]
    try:
        out = subprocess.run(argv, capture_output=True, env={}, cwd=cwd, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"no answer within {TIMEOUT:.0f} s (a hang): {argv!r}") from exc
    decode: Callable[[bytes], str] = lambda b: b.decode("utf-8", "backslashreplace")  # noqa: E731
    return Run(argv, out.returncode, decode(out.stdout), decode(out.stderr))


# A message may span lines: it quotes what it rejects (e.g. a config key holding a newline) as it is.
_HOST_ERROR = re.compile(r"\Aerror: (could not initialize plugin|open|next_batch): (?P<msg>.*\S.*)\n\Z", re.DOTALL)


def check_process(run: Run) -> str | None:
    """The process-level invariant; returns the plugin's error message if the run failed cleanly."""
    assert run.rc >= 0, f"killed by signal {-run.rc}\n{run}"
    assert run.rc in (0, 1), f"unexpected exit status\n{run}"
    lines = run.stdout.split("\n")
    assert lines[:1] and lines[0].startswith("plugin "), f"no plugin line\n{run}"
    if run.rc == 0:
        assert run.stderr == "", f"output on stderr\n{run}"
        assert "signals: unchanged" in lines, f"the plugin changed the host's signal handlers\n{run}"
        return None
    m = _HOST_ERROR.match(run.stderr)
    assert m, f"a failure must be 'error: <call>: <message>' on stderr, and nothing else\n{run}"
    return m.group("msg")


def check_values(run: Run, target: Target, exprs: list[str], payloads: list[bytes | None]) -> None:
    """Every ``evt`` line of an ``--events`` run: one entry per field, each a clean error or a right value."""
    by_name = {f.name: f for f in target.fields}
    lines = [ln for ln in run.stdout.split("\n") if ln.startswith("evt ")]
    assert len(lines) == len(payloads), f"expected {len(payloads)} events\n{run}"
    oracle = target.profile.oracle
    for line, payload in zip(lines, payloads, strict=True):
        for expr, got in split_values(line, exprs):
            f = by_name[expr.split("[", 1)[0]]
            where = f"{expr} of {line.split(' ', 2)[1]} (payload {payload!r})\n{run}"
            if payload is None:
                assert got.startswith("<error: "), f"a malformed plugin event must fail every field: {where}"
            if got.startswith("<error: "):
                assert got.endswith(">") and len(got) > len("<error: >"), f"an error without a message: {where}"
                if oracle is not None and payload is not None:
                    kind, expected = oracle(payload, expr)
                    assert kind in ("error", "any", "nul"), f"failed, expected {expected!r}: {where}"
                continue
            check_type(f, got, where)
            if oracle is None or payload is None:
                continue
            kind, expected = oracle(payload, expr)
            if kind == "value":
                assert got == expected, f"got {got!r}, expected {expected!r}: {where}"
            elif kind == "error":
                raise AssertionError(f"got {got!r}, expected a failure: {where}")
            elif kind == "nul":
                cut = escape(expected.split("\x00", 1)[0])
                assert NUL_CUT_TOLERATED and got == cut, f"a value with a NUL must fail, got {got!r}: {where}"


def check_type(f: Field, got: str, where: str) -> None:
    if got == "<none>":
        return
    items = got.split(",") if f.is_list and f.type != "string" else [got]
    for item in items:
        if f.type in ("uint64", "reltime", "abstime"):
            assert re.fullmatch(r"[0-9]+", item) and int(item) < 2**64, f"not a u64: {where}"
        elif f.type == "bool":
            assert item in ("true", "false"), f"not a bool: {where}"
        elif f.type in ("ipaddr", "ipnet"):
            assert item in ("<4 bytes>", "<16 bytes>"), f"not an IP address: {where}"


def split_values(line: str, exprs: list[str]) -> Iterable[tuple[str, str]]:
    """(expression, printed value) pairs of one ``evt`` line; values are escaped, so only ' <label>=' can split."""
    rest = line.split(" ", 2)[2] if line.count(" ") >= 2 else ""
    for i, expr in enumerate(exprs):
        assert rest.startswith(expr + "="), (line, expr)
        rest = rest[len(expr) + 1 :]
        end = rest.find(f" {exprs[i + 1]}=") if i + 1 < len(exprs) else len(rest)
        yield expr, rest[:end]
        rest = rest[end + 1 :]


def escape(text: str) -> str:
    """A string as chost ``--events`` prints it: ``\\\\``, ``\\n``, ``\\t`` and ``\\xNN`` for other controls."""
    return "".join(_ESCAPES.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x20 or c == "\x7f" else c) for c in text)


_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t"}


def event_file(records: list[bytes], directory: Path) -> Path:
    """An ``--events`` file: each record a little-endian u32 size and the event bytes."""
    fd, name = tempfile.mkstemp(dir=directory, suffix=".evts")
    with open(fd, "wb") as out:
        for rec in records:
            out.write(struct.pack("<I", len(rec)) + rec)
    return Path(name)


def payload_of(record: bytes) -> bytes | None:
    """The payload an SDK plugin sees for this event, or None when it must not read one (malformed)."""
    _ts, _tid, size, etype, nparams = HEADER.unpack_from(record)
    if etype == ASYNC_EVENT:
        # an async event's payload is its data (after the plugin id and the name)
        if nparams != 3 or size < ASYNC_NAME_OFFSET or len(record) < ASYNC_NAME_OFFSET:
            return None
        a0, a1, a2 = struct.unpack_from("<III", record, HEADER.size)
        if a0 != 4 or a1 == 0 or ASYNC_NAME_OFFSET + a1 + a2 > size:
            return None
        return record[ASYNC_NAME_OFFSET + a1 : ASYNC_NAME_OFFSET + a1 + a2]
    if etype != PLUGIN_EVENT:
        return b""  # the SDK gives other non-plugin events an empty payload
    if nparams != 2 or size < PAYLOAD_OFFSET:
        return None
    l0, l1 = struct.unpack_from("<II", record, HEADER.size)
    if l0 != 4 or PAYLOAD_OFFSET + l1 > size:
        return None
    return record[PAYLOAD_OFFSET : PAYLOAD_OFFSET + l1]
