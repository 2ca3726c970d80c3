"""The fuzz invariant itself can fail: each way a plugin can misbehave is caught by the checks of fuzzkit."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzzkit import PROFILES, Field, Run, Target, check_process, check_values, escape, payload_of, plugin_event

HEAD = "plugin dummy_py 0.1.0\nsignals: unchanged\n"
DUMMY = Target(
    project=Path("plugins/dummy"),
    library=Path("libdummy_py.so"),
    name="dummy_py",
    fields=[
        Field("dummy.value", "uint64", False, False, False, False),
        Field("dummy.strvalue", "string", False, False, False, False),
    ],
    init_schema=None,
    open_suggestions=[],
    has_source=True,
)


def run(rc: int, stdout: str, stderr: str = "") -> Run:
    return Run(["chost"], rc, stdout, stderr)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (run(-11, ""), "killed by signal 11"),
        (run(3, HEAD), "unexpected exit status"),
        (run(0, HEAD, "Traceback (most recent call last):\n"), "output on stderr"),
        (run(0, "plugin dummy_py 0.1.0\nsignals: CHANGED\n"), "signal handlers"),
        (run(1, HEAD, "Traceback...\nerror: open: x\n"), "on stderr, and nothing else"),
        (run(1, HEAD, "error: open: \n"), "on stderr, and nothing else"),
    ],
)
def test_the_process_checks_catch_each_kind_of_misbehaviour(bad: Run, why: str) -> None:
    with pytest.raises(AssertionError, match=why):
        check_process(bad)


def test_a_clean_failure_passes_and_yields_its_message() -> None:
    assert check_process(run(1, HEAD, "error: could not initialize plugin: init: bad\nline\n")) == "init: bad\nline"


@pytest.mark.parametrize(
    ("line", "payload", "why"),
    [
        ("evt 1 dummy.value=41 dummy.strvalue=42", b"42", "expected '42'"),
        ("evt 1 dummy.value=<error: x> dummy.strvalue=42", b"42", "failed, expected"),
        ("evt 1 dummy.value=<error: > dummy.strvalue=42", b"42", "without a message"),
        ("evt 1 dummy.value=-1 dummy.strvalue=-1", b"-1", "not a u64"),
        ("evt 1 dummy.value=1 dummy.strvalue=x", None, "must fail every field"),
    ],
)
def test_the_value_checks_catch_wrong_values(line: str, payload: bytes | None, why: str) -> None:
    with pytest.raises(AssertionError, match=why):
        check_values(run(0, HEAD + line + "\n"), DUMMY, ["dummy.value", "dummy.strvalue"], [payload])


def test_right_values_pass() -> None:
    out = run(0, HEAD + "evt 1 dummy.value=42 dummy.strvalue=42\nevt 2 dummy.value=<error: no> dummy.strvalue=a\\nb\n")
    check_values(out, DUMMY, ["dummy.value", "dummy.strvalue"], [b"42", b"a\nb"])


def test_the_helpers_agree_with_chost() -> None:
    assert escape("a\\b\nc\td\x01é") == "a\\\\b\\nc\\td\\x01é"
    assert payload_of(plugin_event(b"xyz")) == b"xyz"
    assert "dummy_py" in PROFILES and "http_poll" in PROFILES
