"""Three defects of the C glue (issue 13), each pinned by a test that fails while it is there.

1. Two different SDK-built libraries doing their first ``plugin_init`` at the
   same time (two host threads) must both start: one starts the interpreter,
   the other joins it, and nothing is printed on stderr.
4. A string value with an embedded NUL cannot travel as a C string: the host
   would see it cut at the NUL. The field must fail, with a message naming
   the field and the embedded NUL.
5. The text ``get_last_error`` returns stays valid until the next call on the
   same state: a host holding it across a second failing call must still read
   a string there, not freed memory.

The C programs live in ``tests/c/``; each runs in a fresh process, in an
empty environment, as Falco would load the libraries.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools.abi import HEADER
from falco_plugin_tools.host import Rc
from falco_plugin_tools.host.raw import Event, Library, plugin_event
from harness import TESTS, Built, RunChost

PROCESSES = 30
"""Fresh processes per pair of libraries: the race is won or lost once per process, at its first init."""


@pytest.fixture(scope="module")
def c_program(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``c_program(name)``: ``tests/c/<name>.c`` compiled once for this module."""
    out_dir = tmp_path_factory.mktemp("cprog")
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            cc = shutil.which("cc") or "gcc"
            out = out_dir / name
            source = TESTS / "c" / f"{name}.c"
            cmd = [cc, "-O1", "-g", "-Wall", "-Werror", "-I", str(HEADER.parent), str(source), "-o", str(out)]
            subprocess.run([*cmd, "-ldl", "-pthread"], check=True)
            cache[name] = out
        return cache[name]

    return get


# -- (1) concurrent first init of two libraries -------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [(("dummy", '{"jitter": 0}'), ("full", "")), (("full", ""), ("extract_only", '{"name": "x"}'))],
    ids=["dummy+full", "full+extract_only"],
)
def test_two_libraries_starting_python_on_two_threads_at_once_both_init(
    built: Built, c_program: Callable[[str], Path], first: tuple[str, str], second: tuple[str, str]
) -> None:
    program = c_program("concurrent_init")
    argv = [str(program), str(built(first[0]).library), first[1], str(built(second[0]).library), second[1]]
    outcomes: collections.Counter[str] = collections.Counter()
    example = ""
    for _ in range(PROCESSES):
        out = subprocess.run(argv, capture_output=True, text=True, env={}, timeout=60, errors="replace")
        ok = out.returncode == 0 and out.stderr == "" and out.stdout.count(" rc=0\n") == 2
        if ok:
            outcomes["ok"] += 1
            continue
        kind = f"signal {-out.returncode}" if out.returncode < 0 else f"exit {out.returncode}"
        outcomes[kind + (" with stderr" if out.stderr else "")] += 1
        example = example or f"stdout={out.stdout!r}\nstderr={out.stderr[:500]!r}"
    assert outcomes == {"ok": PROCESSES}, f"{dict(outcomes)} in {PROCESSES} processes; first failure:\n{example}"


# -- (4) embedded NUL in a string value ------------------------------------------------------------------


# The message says what is wrong in its own words; it must at least name the NUL.
NUL_MESSAGE = re.compile(r"\bNUL\b")


def _events_file(tmp_path: Path, payloads: list[bytes]) -> Path:
    path = tmp_path / "events.bin"
    path.write_bytes(b"".join(len(e).to_bytes(4, "little") + e for e in map(plugin_event, payloads)))
    return path


def _chost_values(run_chost: RunChost, library: Path, events: Path, fields: list[str]) -> list[str]:
    out = run_chost(library, "--events", str(events), "--fields", ",".join(fields))
    assert (out.returncode, out.stderr) == (0, ""), out
    line = next(ln for ln in out.stdout.split("\n") if ln.startswith("evt 1 "))
    values = []
    rest = line[len("evt 1 ") :]
    for i, name in enumerate(fields):
        assert rest.startswith(name + "="), line
        rest = rest[len(name) + 1 :]
        end = rest.find(f" {fields[i + 1]}=") if i + 1 < len(fields) else len(rest)
        values.append(rest[:end])
        rest = rest[end + 1 :]
    return values


def test_a_plain_string_field_reaches_the_c_host_whole(built: Built, run_chost: RunChost, tmp_path: Path) -> None:
    """The control for the tests below: the same fixture, without a NUL."""
    assert _chost_values(run_chost, built("nul").library, _events_file(tmp_path, [b"x"]), ["nul.clean"]) == ["root"]


@pytest.mark.parametrize(
    ("field", "payload"),
    [("nul.embedded", b"x"), ("nul.list", b"x"), ("nul.payload", b"root\x00-not-really")],
)
def test_a_string_with_an_embedded_nul_fails_its_field_in_the_c_host(
    built: Built, run_chost: RunChost, tmp_path: Path, field: str, payload: bytes
) -> None:
    events = _events_file(tmp_path, [payload])
    [got] = _chost_values(run_chost, built("nul").library, events, [field])
    assert got.startswith("<error: ") and field in got and NUL_MESSAGE.search(got), (
        f"{field}: the host got {got!r} instead of a failure naming the field and the embedded NUL"
    )


@pytest.mark.parametrize(("payload", "value"), [(b"root", "root"), ("caf\u00e9 \u2713".encode(), "caf\u00e9 \u2713")])
def test_bytes_for_a_string_field_reach_the_host_as_that_text(
    loaded: Callable[[str], Library], payload: bytes, value: str
) -> None:
    st = loaded("nul").init("")
    got = st.extract(Event.from_bytes(plugin_event(payload), num=1), "nul.raw")
    assert (got.rc, got.values) == (Rc.SUCCESS, [[value]]), st.last_error


@pytest.mark.parametrize(("payload", "at"), [(b"\xff\xfe", "byte 0xff at offset 0"), (b"ok \xe2\x9c", "offset 3")])
def test_bytes_that_are_not_utf8_fail_a_string_field_naming_the_byte(
    loaded: Callable[[str], Library], payload: bytes, at: str
) -> None:
    st = loaded("nul").init("")
    got = st.extract(Event.from_bytes(plugin_event(payload), num=1), "nul.raw")
    assert got.rc == Rc.FAILURE, f"the host read {got.values!r}"
    assert "extracting nul.raw" in st.last_error and "not valid UTF-8" in st.last_error, st.last_error
    assert at in st.last_error, st.last_error


def test_bytes_with_a_nul_fail_a_string_field(loaded: Callable[[str], Library]) -> None:
    st = loaded("nul").init("")
    got = st.extract(Event.from_bytes(plugin_event(b"root\x00-not-really"), num=1), "nul.raw")
    assert got.rc == Rc.FAILURE and NUL_MESSAGE.search(st.last_error), st.last_error


def test_an_embedded_nul_fails_only_its_own_field(built: Built, run_chost: RunChost, tmp_path: Path) -> None:
    events = _events_file(tmp_path, [b"x"])
    clean, embedded, clean_again = _chost_values(
        run_chost, built("nul").library, events, ["nul.clean", "nul.embedded", "nul.clean"]
    )
    assert (clean, clean_again) == ("root", "root")
    assert embedded.startswith("<error: "), embedded


def test_a_string_with_an_embedded_nul_fails_its_field_in_process(loaded: Callable[[str], Library]) -> None:
    st = loaded("nul").init("")
    assert st.rc == Rc.SUCCESS, st.last_error
    got = st.extract(Event.from_bytes(plugin_event(b"x"), num=1), "nul.embedded")
    assert got.rc == Rc.FAILURE, f"rc={got.rc}: the host read {got.values!r}"
    assert "nul.embedded" in st.last_error and NUL_MESSAGE.search(st.last_error), st.last_error


# -- (5) get_last_error across a second failure ----------------------------------------------------------

FAULTY_CONFIG = '{"fail": ["open", "extract:faulty.text"]}'


def _steps(loaded: Callable[[str], Library]) -> dict[str, str]:
    text_id = loaded("faulty").field_id("faulty.text")
    return {"open": "open:", "extract": f"extract:{text_id}"}


@pytest.mark.parametrize(
    ("first", "second"), [("open", "open"), ("open", "extract"), ("extract", "extract"), ("extract", "open")]
)
def test_the_last_error_text_survives_the_next_failure(
    built: Built, loaded: Callable[[str], Library], c_program: Callable[[str], Path], first: str, second: str
) -> None:
    """Without valgrind: glibc reuses the start of a freed block at once, so a freed message reads as junk."""
    steps = _steps(loaded)
    argv = [str(c_program("last_error")), str(built("faulty").library), FAULTY_CONFIG, steps[first], steps[second]]
    out = subprocess.run(argv, capture_output=True, text=True, env={}, timeout=60, errors="replace")
    assert out.stderr == "", out.stderr
    assert out.returncode == 0, f"the kept pointer no longer holds a message:\n{out.stdout}"


def test_the_last_error_text_survives_the_next_failure_under_valgrind(
    built: Built, loaded: Callable[[str], Library], c_program: Callable[[str], Path]
) -> None:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.skip("valgrind is not installed (apt-get install valgrind)")
    steps = _steps(loaded)
    argv = [str(c_program("last_error")), str(built("faulty").library), FAULTY_CONFIG, steps["open"], steps["extract"]]
    out = subprocess.run(
        [valgrind, "-q", "--error-exitcode=99", *argv],
        capture_output=True,
        text=True,
        env={},
        timeout=240,
        errors="replace",
    )
    report = "\n".join(out.stderr.split("\n")[:25])
    assert "Invalid read" not in out.stderr, f"the host read freed memory through the kept pointer:\n{report}"
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{report}"


# -- decided behaviours (issue 13) ----------------------------------------------------------------


def test_a_plugin_event_of_another_plugin_id_is_extracted_like_any_event_of_the_source(
    loaded: Callable[[str], Library],
) -> None:
    """Several plugins may share one event source (k8saudit and its cloud variants do), and the host
    routes events by source, so the SDK does not refuse an event whose plugin id is not the plugin's."""
    st = loaded("dummy").init('{"jitter": 0}')
    assert st.rc == Rc.SUCCESS, st.last_error
    ours = Event.from_bytes(plugin_event(b"41", plugin_id=29), num=1, source="dummy_py")
    other = Event.from_bytes(plugin_event(b"41", plugin_id=4242), num=2, source="dummy_py")
    assert st.values(ours, "dummy.value") == st.values(other, "dummy.value") == [[41]]
