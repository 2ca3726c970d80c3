"""Plugin metrics as the host reads them (``plugin_get_metrics``), and their errors.

The ``metrics`` fixture applies one operation per extraction of
``metrics.op[<attr>.<method>:<arg>]`` (see its module docs).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from falco_plugin import Counter, ExtractPlugin, Gauge, SpecError, field
from falco_plugin._internal.spec import resolve
from falco_plugin_tools.host import ExtractionError, HostEvent, PluginHandle, PluginLibrary
from falco_plugin_tools.host._ffi import ffi
from falco_plugin_tools.host.metrics import MetricValue
from harness import Built, RunChost

EVENT = HostEvent.plugin_event(b"x", 999, num=1, source="fxt_metrics")


@pytest.fixture(scope="module")
def library_path(built: Built) -> Path:
    return built("metrics").library


@pytest.fixture
def lib(library_path: Path) -> Iterator[PluginLibrary]:
    with PluginLibrary.load(library_path) as lib:
        yield lib


@pytest.fixture
def handle(lib: PluginLibrary) -> Iterator[PluginHandle]:
    with lib.init("") as h:
        yield h


def apply(handle: PluginHandle, *ops: str) -> None:
    for op in ops:
        assert handle.extract(EVENT, f"metrics.op[{op}]") == 1


def values(handle: PluginHandle) -> dict[str, int | float]:
    return {m.name: m.value for m in handle.metrics()}


def test_metrics_are_an_optional_symbol_not_a_capability(lib: PluginLibrary) -> None:
    assert lib.info.capabilities == {"extraction"}
    assert "plugin_get_metrics" in lib.info.symbols
    assert lib.info.required_api_version == "3.5.0"  # get_metrics


def test_the_host_reads_every_metric_with_its_type_from_init_on(handle: PluginHandle) -> None:
    assert handle.metrics() == [
        MetricValue("seen", "monotonic", "u64", 0),
        MetricValue("total_seconds", "monotonic", "d", 0.0),
        MetricValue("depth", "non_monotonic", "s64", -1),  # set by init
        MetricValue("size", "non_monotonic", "u64", 0),
        MetricValue("lag", "non_monotonic", "d", 0.0),
        MetricValue("sdk.errors", "monotonic", "u64", 0),  # the SDK's, after the plugin's own
    ]


def test_updates_are_what_the_host_reads(handle: PluginHandle) -> None:
    apply(handle, "seen.inc:3", "seen.inc:1", "total.inc:0.5", "total.inc:1.25", "depth.set:-5", "depth.inc:2")
    apply(handle, "size.set:7", "size.dec:2", "lag.set:0.25", "lag.dec:1.0")
    got = values(handle)
    assert got == {"seen": 4, "total_seconds": 1.75, "depth": -3, "size": 5, "lag": -0.75, "sdk.errors": 0}
    assert isinstance(got["seen"], int) and isinstance(got["lag"], float)


def test_concurrent_increments_are_never_lost(handle: PluginHandle) -> None:
    apply(handle, "threads:8")
    assert values(handle)["seen"] == 8000


def test_two_states_of_one_library_count_separately(lib: PluginLibrary) -> None:
    with lib.init("") as a, lib.init("") as b:
        apply(a, "seen.inc:5")
        apply(b, "seen.inc:2")
        assert (values(a)["seen"], values(b)["seen"]) == (5, 2)


def test_the_array_stays_valid_until_the_next_call(handle: PluginHandle) -> None:
    fn = handle.library.symbol("get_metrics")
    n = ffi.new("uint32_t *")
    first = fn(handle._state_pointer(), n)
    apply(handle, "seen.inc:9")
    assert int(n[0]) == 6 and first[0].value.u64 == 0  # a snapshot: later updates are not in it
    second = fn(handle._state_pointer(), n)
    assert second[0].value.u64 == 9


def test_a_null_state_has_no_metrics(lib: PluginLibrary) -> None:
    n = ffi.new("uint32_t *", 7)
    assert lib.symbol("get_metrics")(ffi.NULL, n) == ffi.NULL
    assert n[0] == 0


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ("seen.set:1", "TypeError: counter seen only goes up: set() is for gauges"),
        ("seen.dec:1", "TypeError: counter seen only goes up: dec() is for gauges"),
        ("seen.inc:-1", "ValueError: metric seen: -1 is not between 0 and 2**64-1"),
        ("total.inc:-0.5", "ValueError: counter total_seconds only goes up, got inc(-0.5)"),
        ("depth.set:0.5", "TypeError: metric depth: expected an int, got float"),
        ("size.set:-1", "ValueError: metric size: -1 is not between 0 and 2**64-1"),
        (
            "depth.set:9223372036854775808",
            "ValueError: metric depth: 9223372036854775808 is not between -2**63 and 2**63-1",
        ),
    ],
)
def test_a_bad_update_raises_in_plugin_code_and_changes_nothing(handle: PluginHandle, op: str, message: str) -> None:
    before = values(handle)
    with pytest.raises(ExtractionError) as info:
        handle.extract(EVENT, f"metrics.op[{op}]")
    assert str(info.value) == f"extracting metrics.op[{op}]: {message}"
    assert values(handle) == {**before, "sdk.errors": before["sdk.errors"] + 1}  # the failure is counted


# -- declarations ------------------------------------------------------------------


class _Base(ExtractPlugin):
    name = "m"

    @field("m.x", "x")
    def x(self, event: object) -> int:
        return 1


def test_metric_names_are_checked_at_build_time() -> None:
    class Dup(_Base):
        a = Counter("same")
        b = Gauge("same")

    class Bad(_Base):
        a = Counter("has space")

    with pytest.raises(SpecError, match="duplicate metric names"):
        resolve(Dup)
    with pytest.raises(SpecError, match=r"Bad\.a: metric name 'has space'"):
        resolve(Bad)
    assert "plugin_get_metrics" in resolve(_Base).symbols()  # no metrics of its own: the glue's sdk.errors
    assert resolve(_Base).features == {}
    assert resolve(_Base).required_api_version == "3.4.0"  # which older hosts need not know


def test_outside_a_library_metrics_behave_the_same_in_pure_python() -> None:
    class P(_Base):
        hits = Counter("hits")
        level = Gauge("level", "", float)

    p = P()
    p.hits.inc()
    p.hits.inc(4)
    p.level.set(2)
    p.level.dec(0.5)
    assert (p.hits.value, p.level.value) == (5, 1.5)
    with pytest.raises(TypeError, match="only goes up"):
        p.hits.set(1)
    with pytest.raises(ValueError, match="only goes up"):
        p.hits.inc(-1)
    assert isinstance(P.hits, Counter) and P.hits.value_type == "u64"


def test_the_c_host_reads_the_metrics(library_path: Path, run_chost: RunChost) -> None:
    proc = run_chost(library_path, "--metrics")
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stdout.splitlines() if line.startswith("metric ")] == [
        "metric seen monotonic u64 0",
        "metric total_seconds monotonic d 0",
        "metric depth non_monotonic s64 -1",
        "metric size non_monotonic u64 0",
        "metric lag non_monotonic d 0",
        "metric sdk.errors monotonic u64 0",
    ]


def test_a_plugin_without_metrics_reports_its_failures_as_sdk_errors(built: Built) -> None:
    """Falco shows nothing of a failing field but <NA>: every plugin's metrics count its failures."""
    import json

    with PluginLibrary.load(built("faulty").library) as lib:
        assert lib.info.required_api_version == "3.4.0"  # unchanged by the symbol
        config = json.dumps({"fail": ["extract:faulty.number"], "exc": "ValueError", "count": 3})
        with lib.init(config) as handle:
            assert handle.metrics() == [MetricValue("sdk.errors", "monotonic", "u64", 0)]
            with handle.open("") as capture:
                events = list(capture.events(limit=2))
            for event in events:
                assert handle.extract(event, "faulty.number", strict=False) is None
            assert handle.metrics() == [MetricValue("sdk.errors", "monotonic", "u64", 2)]
