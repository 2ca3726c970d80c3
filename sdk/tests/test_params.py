"""Syscall event parameters: the schema table and the lazy decoder."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest
from falco_plugin._internal import syscall_table as tbl
from falco_plugin.errors import PluginError
from falco_plugin.params import (
    MalformedEventError,
    MalformedParamError,
    ParamError,
    Params,
    SockAddr,
    SockTuple,
    UnknownEventError,
    UnknownParamError,
    decode_params,
    event_layout,
)
from scapwriter import Dyn, build_event

PPME_SYSCALL_OPEN_X = 3
PPME_SYSCALL_EXECVE_19_X = 293
PPME_PLUGINEVENT_E = 322
PPME_GENERIC_X = 1
PPME_ASYNCEVENT_E = 402


def sample(pt: int, extra: str, i: int) -> tuple[Any, Any]:
    """(value to encode, value decoding must give) for a parameter of type ``pt``; ``i`` varies it."""
    v: Any
    choices: list[Any]
    signed = {tbl.PT_INT8: 8, tbl.PT_INT16: 16, tbl.PT_INT32: 32, tbl.PT_INT64: 64, tbl.PT_ERRNO: 64}
    signed |= {tbl.PT_FD: 64, tbl.PT_PID: 64, tbl.PT_FD32: 32, tbl.PT_PID32: 32}
    unsigned = {tbl.PT_UINT8: 8, tbl.PT_UINT16: 16, tbl.PT_UINT32: 32, tbl.PT_UINT64: 64}
    unsigned |= {tbl.PT_FLAGS8: 8, tbl.PT_FLAGS16: 16, tbl.PT_FLAGS32: 32, tbl.PT_ENUMFLAGS8: 8}
    unsigned |= {tbl.PT_ENUMFLAGS16: 16, tbl.PT_ENUMFLAGS32: 32, tbl.PT_UID: 32, tbl.PT_GID: 32}
    unsigned |= {tbl.PT_MODE: 32, tbl.PT_SIGSET: 32, tbl.PT_SYSCALLID: 16, tbl.PT_SIGTYPE: 8, tbl.PT_PORT: 16}
    unsigned |= {tbl.PT_L4PROTO: 8, tbl.PT_SOCKFAMILY: 8, tbl.PT_RELTIME: 64, tbl.PT_ABSTIME: 64}
    if pt in signed:
        v = -(1 << (signed[pt] - 1)) + i  # near the minimum: sign and width both matter
        return v, v
    if pt in unsigned:
        v = (1 << unsigned[pt]) - 1 - i  # near the maximum
        return v, v
    if pt == tbl.PT_DYN:
        alternatives = tbl.DYNAMIC[extra]
        k = i % len(alternatives)
        v, expected = sample(alternatives[k], "", i)
        return Dyn(k, v), expected
    strings = {
        tbl.PT_CHARBUF: f"comm-{i} é",
        tbl.PT_FSPATH: f"/tmp/ü/{i}",
        tbl.PT_FSRELPATH: f"rel/{i}",
        tbl.PT_BOOL: i % 2 == 0,
        tbl.PT_DOUBLE: i + 0.25,
        tbl.PT_CHARBUFARRAY: ["tag", f"t{i}"],
        tbl.PT_CHARBUF_PAIR_ARRAY: [("k", f"v{i}"), ("k2", "")],
        tbl.PT_FDLIST: [(3, 1), (-1, 0xFFFF), (i, 4)],
        tbl.PT_IPV4ADDR: f"10.0.0.{i % 256}",
        tbl.PT_IPV6ADDR: f"fe80::{i:x}",
        tbl.PT_IPADDR: "192.168.1.1" if i % 2 else "2001:db8::1",
        tbl.PT_IPV4NET: ("10.1.0.0", "255.255.0.0"),
        tbl.PT_IPV6NET: ("2001:db8::", "ffff:ffff::"),
        tbl.PT_IPNET: ("10.1.0.0", "255.255.0.0"),
        tbl.PT_NONE: b"\x01\x02",
    }
    if pt in strings:
        v = strings[pt]
        return v, v
    if pt == tbl.PT_BYTEBUF:
        if extra == "nul-list":
            v = [f"a{i}", "b c", "", "x=y"]
            return v, v
        b = bytes([i % 256, 0, 255, 10])
        return b, b
    if pt == tbl.PT_SOCKADDR:
        choices = [SockAddr(2, "127.0.0.1", 8080), SockAddr(10, "::1", 443), SockAddr(1, "/run/x.sock", None)]
        v = choices[i % 3]
        return v, v
    if pt == tbl.PT_SOCKTUPLE:
        choices = [
            SockTuple(2, "10.0.0.1", 40000, "10.0.0.2", 80),
            SockTuple(10, "2001:db8::1", 1, "2001:db8::2", 65535),
            SockTuple(1, "ffff8880aa", None, "0", None, "/var/run/nscd/socket"),
        ]
        v = choices[i % 3]
        return v, v
    raise AssertionError(f"no sample for type {pt}")


def test_table_covers_every_type_code() -> None:
    assert tbl.SCHEMA_VERSION.startswith("4.")
    assert sorted(tbl.EVENTS) == list(range(tbl.PPM_EVENT_MAX))
    for code, (name, _cat, _flags, params) in tbl.EVENTS.items():
        assert name, code
        names = [p[0] for p in params]
        assert len(set(names)) == len(names), (code, names)
        for _pname, pt, extra in params:
            assert pt in tbl.PT_NAMES
            assert (pt == tbl.PT_DYN) == (extra in tbl.DYNAMIC)


def test_known_layouts() -> None:
    execve = event_layout(PPME_SYSCALL_EXECVE_19_X)
    assert (execve.name, execve.is_enter, execve.len_size) == ("execve", False, 2)
    assert execve.names[:3] == ("res", "exe", "args")
    assert execve.types[:3] == (tbl.PT_ERRNO, tbl.PT_CHARBUF, tbl.PT_BYTEBUF)
    plugin = event_layout(PPME_PLUGINEVENT_E)
    assert (plugin.name, plugin.is_enter, plugin.len_size) == ("pluginevent", True, 4)
    assert plugin.names == ("plugin_id", "event_data")
    assert event_layout(2).is_enter and not event_layout(3).is_enter


@pytest.mark.parametrize("code", sorted(tbl.EVENTS))
def test_every_event_type_round_trips(code: int) -> None:
    params = tbl.EVENTS[code][3]
    encoded, expected = {}, {}
    for i, (pname, pt, extra) in enumerate(params):
        encoded[pname], expected[pname] = sample(pt, extra, (i + code) % 100)
    raw = build_event(code, encoded, ts=123, tid=456)
    p = decode_params(memoryview(raw))
    assert (p.evt_type, p.evt_ts, p.evt_tid, p.evt_num_params) == (code, 123, 456, len(params))
    assert p.is_enter == (code % 2 == 0)
    assert p.to_dict() == expected
    for pname, value in expected.items():
        assert type(p[pname]) is type(value), pname


def test_values_are_typed() -> None:
    raw = build_event(
        PPME_SYSCALL_EXECVE_19_X,
        {"res": -2, "exe": "/usr/bin/curl", "args": ["-6", "http://x"], "tid": 7, "fdlimit": 1 << 63},
    )
    p = decode_params(raw)
    assert p["res"] == -2 and p.res == -2
    assert p.exe == "/usr/bin/curl"
    assert p.args == ["-6", "http://x"]
    assert p.fdlimit == 1 << 63  # u64 stays unsigned
    assert p.pid is None  # an empty parameter
    assert bytes(p.raw("exe") or b"") == b"/usr/bin/curl\0"
    assert "exe" in p and "nope" not in p
    assert list(p)[:3] == ["res", "exe", "args"]
    assert len(p) == len(tbl.EVENTS[PPME_SYSCALL_EXECVE_19_X][3])


def test_older_layout_with_fewer_params_reads_missing_as_none() -> None:
    raw = build_event(PPME_SYSCALL_OPEN_X, [3, "/etc/passwd", 0, 0])
    p = decode_params(raw)
    assert p.evt_num_params == 4
    assert (p.fd, p["name"], p.dev, p.ino) == (3, "/etc/passwd", None, None)
    assert p.raw("ino") is None


def test_decodes_only_what_is_read() -> None:
    # fd has 3 bytes instead of 8: reading name works, reading fd names the parameter.
    raw = build_event(PPME_SYSCALL_OPEN_X, raw_params=[b"\1\2\3", b"/x\0"])
    p = decode_params(raw)
    assert p["name"] == "/x"
    with pytest.raises(MalformedParamError, match=r"open exit \(3\): parameter 'fd' \(FD, 3 bytes\)"):
        p["fd"]


def test_generic_and_async_type_names() -> None:
    mprotect = next(c for c, n in tbl.SYSCALLS.items() if n == "mprotect")
    assert decode_params(build_event(PPME_GENERIC_X, [mprotect, 10])).evt_type_name == "mprotect"
    assert decode_params(build_event(PPME_ASYNCEVENT_E, [999, "my_event", b"x"])).evt_type_name == "my_event"
    assert decode_params(build_event(PPME_SYSCALL_OPEN_X, [3])).evt_type_name == "open"


def test_large_payload_events_have_u32_lengths() -> None:
    payload = bytes(range(256)) * 300  # more than a u16 length can say
    raw = build_event(PPME_PLUGINEVENT_E, {"plugin_id": 999, "event_data": payload})
    assert struct.unpack_from("<II", raw, 26) == (4, len(payload))
    p = decode_params(raw)
    assert (p.plugin_id, p.event_data) == (999, payload)


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        (b"\0" * 10, MalformedEventError, "shorter than the 26-byte header"),
        (struct.pack("<QQIHI", 0, 0, 26, 9999, 0), UnknownEventError, "event type 9999: not in the event schema"),
        (struct.pack("<QQIHI", 0, 0, 40, 3, 0), MalformedEventError, r"open exit \(3\): header length 40"),
        (struct.pack("<QQIHI", 0, 0, 26, 3, 40), MalformedEventError, "40 parameters, the schema has 6"),
        (struct.pack("<QQIHIH", 0, 0, 28, 3, 2, 0), MalformedEventError, "2 parameter lengths do not fit in 28"),
        (struct.pack("<QQIHIH", 0, 0, 28, 3, 1, 8), MalformedEventError, "add up to 8 bytes, the event has 0"),
        (
            struct.pack("<QQIHIH", 0, 0, 40, 3, 1, 1) + bytes(12),
            MalformedEventError,
            "add up to 1 bytes, the event has 12",
        ),
    ],
)
def test_malformed_events(raw: bytes, error: type[ParamError], message: str) -> None:
    with pytest.raises(error, match=message):
        decode_params(raw)


@pytest.mark.parametrize(
    ("code", "param", "data", "message"),
    [
        (PPME_SYSCALL_OPEN_X, "fd", b"\0" * 9, "FD needs 8 bytes"),
        (PPME_SYSCALL_OPEN_X, "flags", b"\0" * 2, "FLAGS32 needs 4 bytes"),
        (23, "tuple", b"\x02" + b"\0" * 5, "an INET SOCKTUPLE needs 13 bytes"),  # connect exit
        (23, "tuple", b"\x01" + b"\0" * 5, "a UNIX SOCKTUPLE needs at least 17 bytes"),
        (21, "addr", b"\x0a" + b"\0" * 5, "an INET6 SOCKADDR needs 19 bytes"),  # bind exit
    ],
)
def test_malformed_params(code: int, param: str, data: bytes, message: str) -> None:
    params = tbl.EVENTS[code][3]
    idx = [p[0] for p in params].index(param)
    raw = build_event(code, raw_params=[b""] * idx + [data])
    with pytest.raises(MalformedParamError, match=message) as info:
        decode_params(raw)[param]
    assert repr(param) in str(info.value) and tbl.EVENTS[code][0] in str(info.value)


def test_unknown_parameter_name() -> None:
    p = decode_params(build_event(PPME_SYSCALL_OPEN_X, [3]))
    with pytest.raises(UnknownParamError, match=r"open exit \(3\): no parameter 'nope'"):
        p["nope"]
    with pytest.raises(AttributeError, match="no parameter 'nope'"):
        p.nope  # noqa: B018
    with pytest.raises(UnknownParamError):
        p.raw("nope")
    assert p.get("nope", 5) == 5  # a Mapping: unknown keys are KeyErrors
    assert not hasattr(p, "nope")
    assert issubclass(UnknownParamError, KeyError) and issubclass(ParamError, PluginError)
    assert str(UnknownParamError("x: no parameter 'y'")) == "x: no parameter 'y'"


def test_dynamic_index_out_of_range() -> None:
    ptrace_x = next(c for c, e in tbl.EVENTS.items() if e[0] == "ptrace" and c % 2 == 1)
    raw = build_event(ptrace_x, raw_params=[b"\0" * 8, b"\x07" + b"\0" * 8])
    with pytest.raises(MalformedParamError, match="dynamic type index 7, only 2 alternatives"):
        decode_params(raw)["addr"]


def test_params_is_read_only() -> None:
    p = decode_params(build_event(PPME_SYSCALL_OPEN_X, [3]))
    with pytest.raises(TypeError):
        p["fd"] = 4  # type: ignore[index, unused-ignore]
    with pytest.raises(AttributeError):
        p.fd = 4  # type: ignore[attr-defined]
    assert isinstance(p, Params) and "open exit" in repr(p)


def test_random_bytes_raise_param_errors_only() -> None:
    rng = random.Random(1234)
    codes = sorted(tbl.EVENTS)
    for _ in range(3000):
        code = rng.choice(codes)
        nparams = len(tbl.EVENTS[code][3])
        lsize = 4 if tbl.EVENTS[code][2] & tbl.EF_LARGE_PAYLOAD else 2
        lens = [rng.choice([0, 1, 2, 4, 8, 13, 19, 37]) for _ in range(nparams)]
        body = b"".join(struct.pack("<I" if lsize == 4 else "<H", n) for n in lens)
        body += bytes(rng.randrange(256) for _ in range(sum(lens)))
        raw = struct.pack("<QQIHI", 0, 0, 26 + len(body), code, nparams) + body
        if rng.random() < 0.2:
            raw = raw[: rng.randrange(len(raw) + 1)]
        try:
            p = decode_params(raw)
            for name in p:
                try:
                    p[name]
                except ParamError:
                    pass
        except ParamError:
            pass
