"""The two-host interface: values rendered the way the C host prints them, and the
C host's output read back into the same shape the Python host gives."""

from __future__ import annotations

import ipaddress
import subprocess

import pytest
from falco_plugin_tools.host import Value
from falco_plugin_tools.host.runners import Extracted, Failure, parse_chost_output, value_text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, None),
        ([], None),
        ("a b", "a b"),
        (0, "0"),
        (2**64 - 1, str(2**64 - 1)),
        (True, "true"),
        (False, "false"),
        (["x", "y"], "x,y"),
        ([1, 2], "1,2"),
        (ipaddress.ip_address("10.0.0.1"), "<4 bytes>"),
        (ipaddress.ip_address("::1"), "<16 bytes>"),
        (ipaddress.ip_network("10.0.0.0/32"), "<4 bytes>"),
    ],
)
def test_values_are_rendered_as_the_c_host_prints_them(value: Value | list[Value] | None, text: str | None) -> None:
    assert value_text(value) == text


def completed(stdout: str, stderr: str = "", code: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["chost"], code, stdout, stderr)


def test_event_lines_are_split_at_the_next_fields_label_so_values_may_hold_spaces() -> None:
    out = completed(
        "plugin p 1.0.0\nsignals: unchanged\n"
        "evt 1 a.text=x y=z a.n=<none> a.bad=<error: extracting a.bad: boom>\n"
        "evt 2 a.text= a.n=7 a.bad=1\n"
        "done events=2 rc=2\n"
    )
    run = parse_chost_output(out, ["a.text", "a.n", "a.bad"])
    assert run.failure is None
    assert run.events == [
        Extracted(1, {"a.text": "x y=z", "a.n": None}, {"a.bad": "extracting a.bad: boom"}),
        Extracted(2, {"a.text": "", "a.n": "7", "a.bad": "1"}),
    ]


@pytest.mark.parametrize(
    ("stderr", "failure"),
    [
        ("error: could not initialize plugin: init: no\n", Failure("init", "init: no")),
        ("error: open: open: bad params\n", Failure("open", "open: bad params")),
        ("error: next_batch: next_batch: ValueError: x\n", Failure("next_batch", "next_batch: ValueError: x")),
        ("error: unknown field a.nope\n", Failure("fields", "unknown field a.nope")),
        (
            "error: can't load plugin dynamic library: gone\n",
            Failure("load", "can't load plugin dynamic library: gone"),
        ),
    ],
)
def test_the_first_error_line_is_the_failure_and_its_stage(stderr: str, failure: Failure) -> None:
    assert parse_chost_output(completed("", stderr, 1), []).failure == failure


def test_a_failing_exit_without_an_error_line_is_still_a_failure() -> None:
    failure = parse_chost_output(completed("plugin p 1.0.0\n", "Segmentation fault\n", -11), []).failure
    assert failure == Failure("exit", "exit status -11: Segmentation fault")
