"""``plugin_get_metrics`` as the host reads it: a typed value per metric.

libsinsp calls it with the plugin state (which may be ``NULL``), reads the
array right away (it is the plugin's until the next call) and names each
metric ``<plugin>.<name>``; :func:`read_metrics` keeps the plugin's own name
and decodes the value by its declared type.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from falco_plugin_tools.host._ffi import ffi, text_of

__all__ = ["METRIC_TYPES", "VALUE_TYPES", "MetricValue", "read_metrics"]

METRIC_TYPES = {0: "monotonic", 1: "non_monotonic"}
"""``ss_plugin_metric_type``."""
VALUE_TYPES = {0: "u32", 1: "s32", 2: "u64", 3: "s64", 4: "d", 5: "f", 6: "i"}
"""``ss_plugin_metric_value_type``, by the name of its union member."""


class MetricValue(NamedTuple):
    """One metric as the host read it."""

    name: str
    type: str
    """``"monotonic"`` or ``"non_monotonic"`` (or the raw number when undefined)."""
    value_type: str
    """The union member: ``u32``, ``s32``, ``u64``, ``s64``, ``d`` (double), ``f`` (float), ``i`` (int)."""
    value: int | float


def read_metrics(library: Any, state: Any) -> list[MetricValue]:
    """Call ``plugin_get_metrics(state, &n)`` of ``library`` and decode the array."""
    fn = library.symbol("get_metrics")
    if fn is None:
        return []
    count = ffi.new("uint32_t *", 0)
    arr = fn(state, count)
    n = int(count[0])
    if n == 0 or arr == ffi.NULL:
        return []
    out = []
    for i in range(n):
        m = arr[i]
        vtype = VALUE_TYPES.get(int(m.value_type), str(int(m.value_type)))
        value: int | float = getattr(m.value, vtype) if vtype in VALUE_TYPES.values() else int(m.value.u64)
        out.append(MetricValue(text_of(m.name), METRIC_TYPES.get(int(m.type), str(int(m.type))), vtype, value))
    return out
