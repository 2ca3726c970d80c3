"""The libsinsp host (``sinsphost.cpp``): our plugins driven through real libsinsp's own API.

What the ``host`` fixture's common interface does not cover: replaying a capture through a parse
plugin with libsinsp's ``threads`` table, one plugin reading a table another exported, the
tables and the metrics read from the host side, and how the host is built (cached, or skipped
with the reason). The behaviour tests that take ``host`` run on it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from falco_plugin_tools.host.runners import SinspHost
from falco_plugin_tools.host.sinsp import ENV_DIR, SinspUnavailableError, compile_sinsphost, find_sinsp_dir
from harness import REPO, Built

CAPTURE = REPO.parent / "shared" / "captures" / "curl_google.scap"
CURL_EXECVE = "evt.type = execve and evt.dir = < and proc.name = curl"


@pytest.fixture
def sinsp(sinsphost: Path) -> SinspHost:
    return SinspHost(sinsphost)


@pytest.fixture
def capture() -> Path:
    if not CAPTURE.is_file():
        pytest.skip(f"{CAPTURE} not found")
    return CAPTURE


def by_kind(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r["kind"] == kind]


def test_a_parse_plugin_fills_the_threads_table_while_libsinsp_replays_a_capture(
    sinsp: SinspHost, built: Built, capture: Path
) -> None:
    records = sinsp.records(
        built("tables_parse").library,
        capture=capture,
        condition=CURL_EXECVE,
        fields=["proc.name", "fxt.tag", "fxt.count", "fxt.comm", "fd.name"],
        tables=["threads"],
    )
    assert by_kind(records, "failure") == []
    # What the real Falco printed for the same rule (tests/test_realhost_tables.py).
    assert [e["values"] for e in by_kind(records, "event")] == [
        {"proc.name": "curl", "fxt.tag": "curl#1", "fxt.count": "1", "fxt.comm": "curl", "fd.name": None}
    ]
    [threads] = by_kind(records, "table")
    assert threads["size"] == len(threads["entries"]) > 1
    # Read from the host side after the run (curl has exited by then): the columns the plugin added,
    # holding what it wrote, and their defaults in the threads it never saw.
    counted = [t for t in threads["entries"] if t["fxt.count"] > 0]
    assert counted and all(t["fxt.tag"] == f"{t['comm']}#{t['fxt.count']}" for t in counted)
    assert all((t["fxt.tag"], t["fxt.flag"]) == ("", False) for t in threads["entries"] if t["fxt.count"] == 0)


def test_a_plugin_reads_a_table_another_exported_and_the_host_reads_it_too(
    sinsp: SinspHost, built: Built, capture: Path
) -> None:
    records = sinsp.records(
        built("tables_export").library,
        plugins=[(built("tables_reader").library, "{}")],
        capture=capture,
        condition=CURL_EXECVE,
        fields=["reader.size", "reader.seven"],
        tables=["fxt_procs"],
    )
    assert by_kind(records, "failure") == []
    assert [p["name"] for p in by_kind(records, "plugin")] == ["fxt_export", "fxt_reader"]
    assert [e["values"] for e in by_kind(records, "event")] == [{"reader.size": "1", "reader.seven": "seven/1"}]
    [procs] = by_kind(records, "table")
    assert procs["size"] == len(procs["entries"]) >= 1


def test_libsinsp_names_a_plugins_metrics_after_the_plugin(sinsp: SinspHost, built: Built) -> None:
    records = sinsp.records(built("metrics").library, metrics=True)
    assert [(m["name"], m["type"], m["value"]) for m in by_kind(records, "metric")] == [
        ("fxt_metrics.seen", "monotonic", 0),
        ("fxt_metrics.total_seconds", "monotonic", 0.0),
        ("fxt_metrics.depth", "non_monotonic", -1),
        ("fxt_metrics.size", "non_monotonic", 0),
        ("fxt_metrics.lag", "non_monotonic", 0.0),
        ("fxt_metrics.sdk.errors", "monotonic", 0),  # the SDK's row, after the plugin's own
    ]


def test_a_filter_libsinsp_cannot_compile_fails_the_run_with_its_reason(sinsp: SinspHost, built: Built) -> None:
    records = sinsp.records(built("dummy").library, open_params='{"maxEvents": 2}', condition="dummy.nope = 1")
    [failure] = by_kind(records, "failure")
    assert failure["stage"] == "filter" and "dummy.nope" in failure["message"]


def test_a_library_that_is_not_a_plugin_fails_at_load(sinsp: SinspHost, tmp_path: Path) -> None:
    bogus = tmp_path / "libbogus.so"
    bogus.write_bytes(b"not an ELF file")
    run = sinsp.run(bogus)
    assert run.failure is not None and run.failure.stage == "load" and str(bogus) in run.failure.message


def test_without_libsinsp_the_host_is_unavailable_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    with pytest.raises(SinspUnavailableError, match=r"has no flags\.sh"):
        find_sinsp_dir(tmp_path)
    monkeypatch.delenv(ENV_DIR)
    if any((folder / "shared" / "realhost" / "libsinsp").exists() for folder in tmp_path.parents):
        pytest.skip(f"a shared/realhost/libsinsp sits above {tmp_path}: the search would find it")
    with pytest.raises(SinspUnavailableError, match="shared/realhost/libsinsp"):
        find_sinsp_dir(tmp_path)


def test_the_host_is_compiled_once_per_set_of_inputs(sinsphost: Path, tmp_path: Path) -> None:
    first = compile_sinsphost(cache_dir=tmp_path, sinsp_dir=find_sinsp_dir(REPO))
    built_at = first.stat().st_mtime_ns
    assert compile_sinsphost(cache_dir=tmp_path, sinsp_dir=find_sinsp_dir(REPO)) == first
    assert first.stat().st_mtime_ns == built_at  # reused, not rebuilt
    other = compile_sinsphost(cache_dir=tmp_path, sinsp_dir=find_sinsp_dir(REPO), extra_ldflags=["-Wl,-O1"])
    assert other != first and other.is_file()
