"""``falco-plugin info`` and ``falco-plugin run``: the host from the shell."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.cli import main
from falco_plugin_tools.host import Value
from falco_plugin_tools.host.cli import format_value, split_fields

CPlugin = Callable[..., Path]
EVENT_LINE = re.compile(r"^#(\d+) ts=(\d+)((?: \S+=\S+)*)$")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def events_of(out: str) -> list[dict[str, str]]:
    events = []
    for line in out.splitlines():
        m = EVENT_LINE.match(line)
        if m:
            pairs = dict(p.split("=", 1) for p in m.group(3).split())
            events.append({"num": m.group(1), **pairs})
    return events


# -- info ------------------------------------------------------------------------------------


def test_run_on_a_plugin_without_a_source_says_to_replay_a_capture(
    capsys: pytest.CaptureFixture[str], c_plugin: CPlugin
) -> None:
    """Issue 17: before, the host tried to init and open it and said it offers no state tables."""
    omit = ("OPEN", "CLOSE", "NEXT_BATCH", "GET_ID", "GET_EVENT_SOURCE")
    library = c_plugin(*(f"-DOMIT_{s}" for s in omit))
    code, out, err = run(capsys, "run", str(library), "-n", "1")
    assert code == 1 and out == ""
    assert err.startswith("error: ctest has no event source of its own (extraction): run it over a capture with ")
    assert f"--capture FILE.scap, e.g. falco-plugin run {library} --capture FILE.scap" in err


def test_run_on_a_parsing_plugin_says_to_replay_a_capture(
    capsys: pytest.CaptureFixture[str], build_plugin_project: Callable[[Path], BuildResult]
) -> None:
    """The case of the issue: k8s_parse (parsing + extraction) needs libsinsp's tables, which only a replay offers."""
    library = build_plugin_project(Path(__file__).resolve().parents[2] / "plugins" / "k8s_parse").library
    code, _, err = run(capsys, "run", str(library))
    assert code == 1 and "no state tables" not in err
    assert "k8s_parse has no event source of its own (extraction, parsing, async, capture_listening): run it" in err


def test_info_shows_metadata_capabilities_symbols_fields_and_schema(
    capsys: pytest.CaptureFixture[str], dummy_library: Path
) -> None:
    code, out, _ = run(capsys, "info", str(dummy_library))
    assert code == 0
    assert "Name: dummy_py\n" in out and "Version: 0.1.0\n" in out
    assert "  - Event Sourcing (ID=29, source='dummy_py')\n  - Field Extraction\n" in out
    assert "  plugin_next_batch\n" in out and "plugin_parse_event" not in out
    assert re.search(r"^  dummy\.divisible +uint64 +index, required +Return 1 if", out, re.M)
    assert '"jitter": {' in out


def test_info_json_is_the_plugin_info(capsys: pytest.CaptureFixture[str], c_plugin: CPlugin) -> None:
    code, out, _ = run(capsys, "info", str(c_plugin()), "--json")
    data = json.loads(out)
    assert code == 0
    assert (data["name"], data["id"], data["capabilities"]) == ("ctest", 999, ["sourcing", "extraction"])
    assert data["fields"][4]["arg"] == {"isRequired": True, "isIndex": True, "isKey": False}
    assert data["init_schema"]["properties"]["level"] == {"type": "integer", "minimum": 0}


def test_info_on_a_broken_library_prints_the_loader_error(
    capsys: pytest.CaptureFixture[str], c_plugin: CPlugin
) -> None:
    library = c_plugin(API_VERSION="4.0.0")
    code, out, err = run(capsys, "info", str(library))
    assert (code, out) == (1, "")
    assert err.startswith(f"error: cannot load plugin {library}: plugin required API version '4.0.0' not compatible")


# -- run ---------------------------------------------------------------------------------------


def test_run_prints_numbered_events_with_fields_then_a_summary(
    capsys: pytest.CaptureFixture[str], dummy_library: Path
) -> None:
    # What `nox -s build` runs.
    code, out, err = run(
        capsys,
        "run",
        str(dummy_library),
        "--init-config",
        '{"jitter": 5}',
        "--open-params",
        '{"start": 1, "maxEvents": 10}',
        "--fields",
        "dummy.value,dummy.strvalue,dummy.divisible[2]",
        "-n",
        "10",
    )
    assert code == 0, err
    events = events_of(out)
    assert [e["num"] for e in events] == [str(n) for n in range(1, 11)]
    for e in events:
        assert e["dummy.value"] == e["dummy.strvalue"]
        assert e["dummy.divisible[2]"] == str(int(int(e["dummy.value"]) % 2 == 0))
    assert out.splitlines()[-1] == "-- events=10 stop=limit progress=100.00%"


def test_run_without_fields_shows_every_field_that_needs_no_argument(
    capsys: pytest.CaptureFixture[str], dummy_library: Path
) -> None:
    code, out, _ = run(capsys, "run", str(dummy_library), "--open-params", '{"maxEvents": 2}')
    assert code == 0
    assert [sorted(e) for e in events_of(out)] == [["dummy.strvalue", "dummy.value", "num"]] * 2
    assert out.splitlines()[-1].startswith("-- events=2 stop=eof")


def test_run_shows_missing_values_and_lists_like_falco(capsys: pytest.CaptureFixture[str], c_plugin: CPlugin) -> None:
    code, out, _ = run(capsys, "run", str(c_plugin()), "--open-params", "1", "--fields", "ctest.none,ctest.meta")
    assert code == 0
    assert events_of(out) == [{"num": "1", "ctest.none": "<NA>", "ctest.meta": "(7,8,64,0)"}]


def test_run_shows_a_failed_field_with_its_error_and_exits_1(
    capsys: pytest.CaptureFixture[str], c_plugin: CPlugin
) -> None:
    """Where Falco would print <NA> for a failed field, and nothing else, the runner prints the error."""
    code, out, _ = run(capsys, "run", str(c_plugin()), "--open-params", "1", "--fields", "ctest.fail,ctest.none")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].endswith(" ctest.fail=<error: extraction of ctest.fail failed on purpose> ctest.none=<NA>")
    assert lines[-1].endswith(" errors=1")


def test_run_json_prints_one_object_per_event_and_a_summary(
    capsys: pytest.CaptureFixture[str], c_plugin: CPlugin
) -> None:
    argv = ["run", str(c_plugin()), "--json", "--open-params", "2", "--fields", "ctest.num,ctest.ip,ctest.even"]
    code, out, _ = run(capsys, *argv)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [ln["fields"] for ln in lines[:2]] == [
        {"ctest.num": 1, "ctest.ip": "192.168.0.1", "ctest.even": False},
        {"ctest.num": 2, "ctest.ip": "192.168.0.1", "ctest.even": True},
    ]
    assert lines[2] == {"summary": {"events": 2, "stop": "eof", "progress": 100.0}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--init-config", '{"level": -1}'],
            "error: error in plugin ctest init config: In <root>[level], Expected number greater than or equal to 0",
        ),
        (["--fields", "ctest.idx"], "error: filter 'ctest.idx': ctest.idx requires an argument but none provided"),
        (["--open-params", "x"], "error: open: bad params 'x'"),
        (["--open-params", "2 otherid"], "error: unexpected plugin ID in plugin event"),
    ],
)
def test_run_errors_go_to_stderr_with_exit_status_1(
    capsys: pytest.CaptureFixture[str], c_plugin: CPlugin, args: list[str], message: str
) -> None:
    code, _, err = run(capsys, "run", str(c_plugin()), *args)
    assert code == 1
    assert err.splitlines()[-1].startswith(message)  # after the plugin's own warnings


def test_field_lists_split_at_commas_outside_brackets() -> None:
    assert split_fields("a, b[x,y],c[1]") == ["a", "b[x,y]", "c[1]"]


def test_values_print_like_falco() -> None:
    values: list[Value | list[Value] | None] = [None, True, 3, "s", [1, 2]]
    assert [format_value(v) for v in values] == ["<NA>", "true", "3", "s", "(1,2)"]
