"""Metrics (an optional feature, not a capability): ``plugin_get_metrics``.

A plugin has it when its class declares :class:`~falco_plugin.Counter` or
:class:`~falco_plugin.Gauge` attributes. The glue (``build/glue/metrics.c``) keeps
one atomic 64-bit cell per metric and per state, gives Python an object per
cell (``self.<metric>``: ``inc``/``dec``/``set`` are single atomic C
operations, no lock), and fills the host's array from the cells without the
GIL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import SpecError
from ...metrics import NAME_MAX, NAME_RE, SDK_PREFIX, Metric, SdkCounter, metrics_of
from ...plugin import Plugin
from . import METRICS, CapabilitySpec, FeatureImplementation, c_string

if TYPE_CHECKING:
    from ..runtime import State as _StateBase
else:
    _StateBase = object

_VALUE_TYPES = {"u64": 2, "s64": 3, "double": 4}  # ss_plugin_metric_value_type

ERRORS = SdkCounter("errors", "Failed calls into the plugin (each also logged; see the SDK README)", source=4)
"""Every failed call, counted by the glue (a plugin without metrics reports it alone)."""


class MetricsSpec(CapabilitySpec):
    capability = METRICS

    def __init__(self, metrics: list[Metric], sdk: list[Metric] | None = None) -> None:
        self.metrics = metrics
        """The plugin's own, in declaration order."""
        self.sdk = sdk if sdk is not None else [ERRORS]
        """The SDK's rows, after the plugin's: its async counts, its error count."""

    @property
    def rows(self) -> list[Metric]:
        return [*self.metrics, *self.sdk]

    def c_defines(self) -> list[str]:
        rows = [
            f"{{{c_string(m.name)}, {0 if m.monotonic else 1}, {_VALUE_TYPES[m.value_type]}, {m.source}}}"
            for m in self.rows
        ]
        return [f"#define FP_NMETRICS {len(rows)}u", f"#define FP_METRIC_ROWS {', '.join(rows)}"]

    def baked(self) -> Any:
        return [[m.name, m.monotonic, m.value_type] for m in self.rows]


class MetricsImplementation(FeatureImplementation):
    capability = METRICS
    base = Plugin

    def selects(self, cls: type[Plugin]) -> bool:
        return bool(metrics_of(cls))

    def resolve(self, cls: type[Plugin], where: str) -> MetricsSpec:
        declared = metrics_of(cls)
        metrics = [m for m in declared if not isinstance(m, SdkCounter)]
        for m in metrics:
            if not isinstance(m.name, str) or not NAME_RE.match(m.name) or len(m.name) > NAME_MAX:
                raise SpecError(
                    f"{where}.{m.attr}: metric name {m.name!r} must match {NAME_RE.pattern} "
                    f"(at most {NAME_MAX} characters)"
                )
            if m.name.startswith(SDK_PREFIX):
                raise SpecError(f"{where}.{m.attr}: metric names starting with {SDK_PREFIX!r} are the SDK's")
        names = [m.name for m in metrics]
        if len(set(names)) != len(names):
            raise SpecError(f"{where}: duplicate metric names")
        return MetricsSpec(metrics=metrics, sdk=[*(m for m in declared if isinstance(m, SdkCounter)), ERRORS])

    def setup(self, state: Any, spec: CapabilitySpec) -> None:
        state.metrics_spec = spec


class MetricsState(_StateBase):
    """What ``build/glue/metrics.c`` calls on a runtime state."""

    metrics_spec: MetricsSpec

    def metrics_attach(self, cells: tuple[Any, ...]) -> None:
        """The C cells, the plugin's metrics then the SDK's: the plugin's shadow the class's
        declarations on this plugin object (the SDK's rows are read from the glue's own counts)."""
        for metric, cell in zip(self.metrics_spec.rows, cells, strict=True):
            if not isinstance(metric, SdkCounter):
                self.plugin.__dict__[metric.attr] = cell


MetricsImplementation.state_mixin = MetricsState
METRICS_IMPL = MetricsImplementation()
