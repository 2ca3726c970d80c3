"""The built library in the SDK's Python host and in the C host: async samples, fields, dump_state,
metrics, set_config, stop."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeproc import advance, write_proc
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.host import HostError, PluginHandle, PluginLibrary
from falco_plugin_tools.host.async_events import AsyncEvent
from falco_plugin_tools.host.events import HostEvent

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def metrics_lib(build_plugin_project: Callable[[Path], BuildResult]) -> BuildResult:
    return build_plugin_project(PROJECT)


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    return write_proc(tmp_path / "proc")


def config(proc: Path, **extra: Any) -> str:
    return json.dumps({"proc_root": str(proc), "interval": 0.02, **extra})


@pytest.fixture
def plugin(metrics_lib: BuildResult, proc: Path) -> Iterator[PluginHandle]:
    with PluginLibrary.load(metrics_lib.library) as lib, lib.init(config(proc, top_n=2)) as handle:
        yield handle


def samples(handle: PluginHandle, n: int) -> list[AsyncEvent]:
    got = [handle.async_events.get(timeout=10) for _ in range(n)]
    return got


def extract(handle: PluginHandle, event: AsyncEvent, *fields: str) -> dict[str, Any]:
    # Falco injects a plugin's async events into the syscall stream: that is the source extraction sees.
    host_event = HostEvent(event.raw, num=1, source="syscall")
    return {f: handle.extract(host_event, f) for f in fields}


def test_samples_are_async_events_in_order_with_every_field(metrics_lib: BuildResult, proc: Path) -> None:
    with PluginLibrary.load(metrics_lib.library) as lib, lib.init(config(proc, top_n=2, interval=3600)) as plugin:
        check_samples(plugin, proc)


def check_samples(plugin: PluginHandle, proc: Path) -> None:
    plugin.async_events.start()
    events = samples(plugin, 1)  # at once; the next one would come in an hour
    advance(proc, extra_ticks={42: 500})  # while the sampler waits: it sees every file change at once
    assert plugin.raw.set_config(config(proc, top_n=2)) == 0, plugin.last_error  # a shorter interval applies now
    events += samples(plugin, 3)
    plugin.async_events.stop()
    events += plugin.async_events.drain()
    assert {e.name for e in events} == {"metrics_sample"}
    values = [extract(plugin, e, "metrics.mem.used_pct", "metrics.cpu.usage_pct") for e in events]
    assert values[0] == {"metrics.mem.used_pct": 75, "metrics.cpu.usage_pct": None}  # the first has no delta
    # In order: the second sample sees the change (40%), the next ones no CPU time passing (no value).
    usage = [v["metrics.cpu.usage_pct"] for v in values]
    assert usage[:2] == [None, 40] and set(usage[2:]) == {None}, usage
    got = extract(
        plugin,
        events[0],
        "metrics.load1",
        "metrics.load1_per_cpu_pct",
        "metrics.mem.available_bytes",
        "metrics.psi.memory.some_avg10",
        "metrics.files.used_pct",
        "metrics.threads.count",
        "metrics.top.rss.name[1]",
        "metrics.top.rss.pid[2]",
        "metrics.top.rss.name[3]",
        "metrics.over",
    )
    assert got == {
        "metrics.load1": 150,
        "metrics.load1_per_cpu_pct": 75,
        "metrics.mem.available_bytes": 4_000_000 * 1024,
        "metrics.psi.memory.some_avg10": 12,
        "metrics.files.used_pct": 90,
        "metrics.threads.count": 412,
        "metrics.top.rss.name[1]": "java (app) x",
        "metrics.top.rss.pid[2]": 77,
        "metrics.top.rss.name[3]": None,  # top_n is 2
        "metrics.over": None,  # no threshold crossed: an empty list is no value
    }
    with_cpu = events[1]
    assert extract(plugin, with_cpu, "metrics.top.cpu.name[1]", "metrics.top.cpu.pct[1]") == {
        "metrics.top.cpu.name[1]": "java (app) x",
        "metrics.top.cpu.pct[1]": 50,
    }


def test_field_types(metrics_lib: BuildResult) -> None:
    with PluginLibrary.load(metrics_lib.library) as lib:
        types = {f.name: (f.type, f.is_list) for f in lib.info.fields}
    assert types["metrics.mem.used_pct"] == ("uint64", False)
    assert types["metrics.psi.memory.some_avg10"] == ("uint64", False)
    assert types["metrics.top.rss.name"] == ("string", False)
    assert types["metrics.over"] == ("string", True)


def test_fields_ignore_other_events(plugin: PluginHandle) -> None:
    other = HostEvent.plugin_event(b"{}", 999, source="syscall")
    assert plugin.extract(other, "metrics.mem.used_pct") is None


def test_dump_state_re_emits_the_latest_sample(plugin: PluginHandle) -> None:
    assert plugin.async_events.dump_state() == []  # nothing sampled yet
    plugin.async_events.start()
    seen = samples(plugin, 3)
    plugin.async_events.stop()
    seen += plugin.async_events.drain()
    dumped = plugin.async_events.dump_state()
    assert [e.name for e in dumped] == ["metrics_sample"]
    assert dumped[0].payload == seen[-1].payload
    assert extract(plugin, dumped[0], "metrics.mem.used_pct") == {"metrics.mem.used_pct": 75}


def test_metrics_count_samples_failures_and_events(metrics_lib: BuildResult, proc: Path) -> None:
    (proc / "meminfo").unlink()
    with PluginLibrary.load(metrics_lib.library) as lib, lib.init(config(proc)) as handle:
        handle.async_events.start()
        samples(handle, 3)
        handle.async_events.stop()
        got = {m.name: m for m in handle.metrics()}
        delivered = len(handle.async_events.drain()) + 3
        logs = [r.message for r in handle.logs]
    assert set(got) == {
        "samples",
        "sample_failures",
        "last_sample_duration_us",
        "async_emitted",
        "async_dropped",
        "events_seen",
        "events_seen_syscall",
        "events_seen_other",
        "sdk.async.delivered",  # the SDK's rows, after the plugin's
        "sdk.async.dropped",
        "sdk.async.refused",
        "sdk.errors",
    }
    # a sample taken while the host cleared the handler is dropped: counted, not delivered
    assert got["async_emitted"].value == delivered
    assert got["samples"].value == delivered + got["async_dropped"].value
    assert got["async_dropped"].value <= 1
    assert got["sample_failures"].value == got["samples"].value  # one missing file per sample
    assert (got["samples"].type, got["samples"].value_type) == ("monotonic", "u64")
    assert (got["last_sample_duration_us"].type, got["last_sample_duration_us"].value_type) == ("non_monotonic", "u64")
    assert got["last_sample_duration_us"].value > 0
    assert sum("cannot read" in m and "meminfo" in m for m in logs) == 1, logs  # warned once


def test_set_config_applies_at_run_time_and_a_bad_one_keeps_the_old(plugin: PluginHandle, proc: Path) -> None:
    plugin.async_events.start()
    samples(plugin, 1)
    ok = config(proc, thresholds={"mem.used_pct": 70, "files.used_pct": 89})
    assert plugin.raw.set_config(ok) == 0, plugin.last_error
    plugin.async_events.drain()
    after = samples(plugin, 2)[-1]
    assert extract(plugin, after, "metrics.over") == {"metrics.over": ["files.used_pct", "mem.used_pct"]}
    for bad, why in [
        (config(proc, interval=0), "interval"),
        (config(proc, thresholds={"mem.usage": 1}), "thresholds.mem.usage: not a sampled value"),
        (config(proc, thresholds={"mem.used_pct": 101}), "thresholds.mem.used_pct: must be a percentage"),
        ("{not json", "not valid JSON"),
    ]:
        assert plugin.raw.set_config(bad) != 0
        assert why in plugin.last_error, (why, plugin.last_error)
    plugin.async_events.drain()
    still = samples(plugin, 2)[-1]
    assert extract(plugin, still, "metrics.over") == {"metrics.over": ["files.used_pct", "mem.used_pct"]}
    plugin.async_events.stop()


def test_invalid_init_config_is_refused(metrics_lib: BuildResult) -> None:
    with PluginLibrary.load(metrics_lib.library) as lib, pytest.raises(HostError, match="top_n"):
        lib.init('{"top_n": -1}')


def test_stop_ends_the_worker_within_its_timeout_even_with_a_long_interval(
    metrics_lib: BuildResult, proc: Path
) -> None:
    # async_stop_timeout is 1 s: a worker still running then is named in a warning, and emits late.
    with PluginLibrary.load(metrics_lib.library) as lib, lib.init(config(proc, interval=3600)) as handle:
        handle.async_events.start()
        samples(handle, 1)  # the first sample comes at once, the next in an hour
        handle.async_events.stop()
        assert handle.async_events.late_calls == 0
        logs = [r.message for r in handle.logs]
    assert not [m for m in logs if "still running" in m], logs


def test_a_proc_root_that_does_not_exist_gives_empty_samples(metrics_lib: BuildResult, tmp_path: Path) -> None:
    with PluginLibrary.load(metrics_lib.library) as lib, lib.init(config(tmp_path / "nope")) as handle:
        handle.async_events.start()
        event = samples(handle, 2)[-1]
        handle.async_events.stop()
        assert extract(handle, event, "metrics.mem.used_pct") == {"metrics.mem.used_pct": None}
        assert {m.name: m.value for m in handle.metrics()}["sample_failures"] >= 10


def test_the_c_host_takes_the_samples_dump_and_metrics(
    metrics_lib: BuildResult, run_chost: Callable[..., Any], proc: Path
) -> None:
    # The C host checks async events as libsinsp does and prints them.
    run = run_chost(metrics_lib.library, "--config", config(proc, interval=0.05), "--async-seconds", "0.5",
                    "--dump-state", "--metrics")  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    samples_seen = [json.loads(line.split(" ", 2)[2]) for line in lines if line.startswith("async metrics_sample ")]
    assert samples_seen and all(s["mem.used_pct"] == 75 for s in samples_seen)
    (summary,) = [line for line in lines if line.startswith("async events=")]
    assert summary.startswith(f"async events={len(samples_seen)} late=0 ")
    metrics = {p[1]: (p[2], p[3], int(p[4])) for p in (line.split() for line in lines) if p[0] == "metric"}
    assert metrics["async_emitted"] == ("monotonic", "u64", len(samples_seen))
    dropped = metrics["async_dropped"][2]  # at most the sample taken while the handler was cleared
    assert metrics["samples"] == ("monotonic", "u64", len(samples_seen) + dropped) and dropped <= 1
    assert metrics["last_sample_duration_us"][:2] == ("non_monotonic", "u64")


def test_the_c_host_extracts_the_fields_of_each_sample(
    metrics_lib: BuildResult, run_chost: Callable[..., Any], proc: Path
) -> None:
    fields = "metrics.mem.used_pct,metrics.mem.total_bytes,metrics.psi.memory.some_avg10,metrics.over"
    run = run_chost(metrics_lib.library, "--config", config(proc, interval=0.05), "--async-seconds", "0.5",
                    "--fields", fields)  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    samples_seen = [line for line in lines if line.startswith("async metrics_sample ")]
    events = [line for line in lines if line.startswith("evt ")]
    assert samples_seen and len(events) == len(samples_seen)
    for n, line in enumerate(events, start=1):
        assert line.startswith(f"evt {n} metrics.mem.used_pct=75 metrics.mem.total_bytes="), line
        assert " metrics.psi.memory.some_avg10=12 " in line and line.endswith(" metrics.over=<none>"), (
            line
        )  # an empty list: no value


def syscall_event(code: int, num: int) -> HostEvent:
    # A header with no parameters is enough: the parser counts events, it does not decode them.
    return HostEvent(struct.pack("<QQIHI", 1_000 + num, 7, 26, code, 0), num=num, source="syscall")


def test_parsing_counts_events_per_source_and_type_into_the_samples(plugin: PluginHandle) -> None:
    events = [syscall_event(code, n) for n, code in enumerate([293, 293, 292, 307, 293], start=1)]  # execve x/e, openat
    events += [HostEvent.plugin_event(b"x", 999, num=6 + i, source="dummy") for i in range(3)]
    for event in events:
        assert plugin.parse(event)
    plugin.async_events.start()
    first = plugin.async_events.get(timeout=10)
    second = plugin.async_events.get(timeout=10)
    plugin.async_events.stop()
    fields = (
        "metrics.events.total",
        "metrics.events.source[syscall]",
        "metrics.events.source[dummy]",
        "metrics.events.source[k8s_audit]",
        "metrics.events.type[execve]",
        "metrics.events.type[pluginevent]",
    )
    assert extract(plugin, first, *fields) == dict(zip(fields, [8, 5, 3, 0, 4, 3], strict=True))
    # the next sample counts what came since the first: nothing, and the total stays
    assert extract(plugin, second, *fields) == dict(zip(fields, [8, 0, 0, 0, 0, 0], strict=True))
    assert extract(plugin, first, "metrics.events.rate")["metrics.events.rate"] > 0
    assert extract(plugin, second, "metrics.events.rate") == {"metrics.events.rate": 0}
    seen = {m.name: (m.type, m.value) for m in plugin.metrics() if m.name.startswith("events_")}
    assert seen == {
        "events_seen": ("monotonic", 8),
        "events_seen_syscall": ("monotonic", 5),
        "events_seen_other": ("monotonic", 3),
    }


def test_another_plugins_async_event_of_the_same_name_has_no_values(plugin: PluginHandle) -> None:
    name = b"metrics_sample\0"
    for payload in (b"not json", b"[1, 2]"):
        lens = struct.pack("<III", 4, len(name), len(payload))
        size = 26 + len(lens) + 4 + len(name) + len(payload)
        raw = struct.pack("<QQIHI", 1, 2, size, 402, 3) + lens + struct.pack("<I", 0) + name + payload
        assert extract(plugin, AsyncEvent("metrics_sample", payload, 1, 2, 0, raw), "metrics.mem.used_pct") == {
            "metrics.mem.used_pct": None
        }
