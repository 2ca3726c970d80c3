"""Syscall event parameters: the schema table and the lazy decoder."""

from __future__ import annotations

import ctypes
import random
import struct

import pytest
from falco_plugin import Event
from falco_plugin._internal import syscall_table as tbl
from falco_plugin.errors import PluginError
from falco_plugin.params import (
    MalformedEventError,
    MalformedParamError,
    ParamError,
    Params,
    UnknownEventError,
    UnknownParamError,
    decode_params,
    event_layout,
)
from scapwriter import build_event, sample_event

PPME_SYSCALL_OPEN_X = 3
PPME_SYSCALL_EXECVE_19_X = 293
PPME_PLUGINEVENT_E = 322
PPME_GENERIC_X = 1
PPME_ASYNCEVENT_E = 402


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
    raw, expected = sample_event(code, ts=123, tid=456)
    p = decode_params(memoryview(raw))
    assert (p.evt_type, p.evt_ts, p.evt_tid, p.evt_num_params) == (code, 123, 456, len(expected))
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


def test_legacy_null_strings_read_as_none() -> None:
    p = decode_params(build_event(PPME_SYSCALL_OPEN_X, raw_params=[b"", b"(NULL)\0"]))
    assert (p.fd, p["name"]) == (None, None)
    assert bytes(p.raw("name") or b"") == b"(NULL)\0"


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


def test_an_events_params_are_those_of_its_bytes() -> None:
    execve_exit = 293  # PPME_SYSCALL_EXECVE_19_X
    raw, expected = sample_event(execve_exit)
    buf = ctypes.create_string_buffer(raw, len(raw))
    params = Event(num=7, addr=ctypes.addressof(buf)).params
    assert params.to_dict() == expected
