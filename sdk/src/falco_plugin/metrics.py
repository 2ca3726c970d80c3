"""Plugin metrics: counters and gauges Falco reports with its own metrics.

Declare them on the plugin class; update them from any thread::

    class MyPlugin(SourcePlugin):
        events = Counter("events", "Events produced")
        backlog = Gauge("backlog", "Records waiting")
        lag = Gauge("lag_seconds", "How far behind the source", float)

        def ...(self):
            self.events.inc()
            self.backlog.set(len(queue))

Any plugin may declare metrics (it is not a capability): the SDK then
exports ``plugin_get_metrics``, and Falco reports each as
``<plugin name>.<metric name>`` when ``metrics.plugins_metrics_enabled`` is
on. In a built library each value is a C cell updated atomically, without a
lock or the host's involvement; the host reads them without running Python.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Literal, Protocol, overload

__all__ = ["Counter", "Gauge", "Metric", "MetricValue", "metrics_of"]

ValueType = Literal["u64", "s64", "double"]
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
NAME_MAX = 100
"""libsinsp prefixes the plugin name and keeps 512 bytes; shorter names read better anyway."""


class MetricValue(Protocol):
    """What ``self.<metric>`` is on a running plugin."""

    @property
    def value(self) -> int | float: ...

    def inc(self, n: int | float = 1) -> None:
        """Add ``n`` (never negative for a :class:`Counter`)."""

    def dec(self, n: int | float = 1) -> None:
        """Subtract ``n`` (gauges only)."""

    def set(self, v: int | float) -> None:
        """Set the value (gauges only)."""


class Metric:
    """A metric declaration (a class attribute of the plugin)."""

    monotonic = False
    source = 0
    """Where the host's reading comes from: 0, the metric's own cell; otherwise a counter the SDK keeps
    itself (1..3: the async gate's delivered, dropped and refused counts)."""

    def __init__(self, name: str, description: str, value_type: ValueType) -> None:
        self.name = name
        self.description = description
        self.value_type: ValueType = value_type
        self.attr = ""

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    @overload
    def __get__(self, obj: None, owner: type) -> Metric: ...
    @overload
    def __get__(self, obj: object, owner: type) -> MetricValue: ...
    def __get__(self, obj: object | None, owner: type) -> Metric | MetricValue:
        if obj is None:
            return self
        # Only reached outside a host (a unit test of the class): in a built
        # library the SDK puts a C cell in the instance's __dict__ first.
        cell = _LocalValue(self)
        obj.__dict__[self.attr] = cell
        return cell

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.value_type})"


class Counter(Metric):
    """A value that only goes up (``inc``); ``int`` counts as u64, ``float`` as a double."""

    monotonic = True

    def __init__(self, name: str, description: str = "", type: type[int] | type[float] = int) -> None:  # noqa: A002
        super().__init__(name, description, _value_type(type, signed=False))


class Gauge(Metric):
    """A value that goes up and down (``set``, ``inc``, ``dec``).

    ``int`` is a signed 64-bit value (``unsigned=True`` for u64), ``float`` a double.
    """

    def __init__(
        self,
        name: str,
        description: str = "",
        type: type[int] | type[float] = int,  # noqa: A002
        *,
        unsigned: bool = False,
    ) -> None:
        super().__init__(name, description, _value_type(type, signed=not unsigned))


def _value_type(t: Any, *, signed: bool) -> ValueType:
    if t is float:
        return "double"
    if t is int:
        return "s64" if signed else "u64"
    raise TypeError(f"a metric's type is int or float, not {t!r}")


SDK_PREFIX = "sdk."
"""Metric names the SDK reports for every plugin that has metrics; plugins may not declare them."""


class SdkCounter(Counter):
    """A counter the SDK reports itself (its ``source`` says from where)."""

    def __init__(self, name: str, description: str, source: int = 0) -> None:
        super().__init__(SDK_PREFIX + name, description)
        self.source = source


def metrics_of(cls: type) -> list[Metric]:
    """The metrics a class declares, base classes' first, in declaration order."""
    seen: dict[str, Metric] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Metric):
                seen[attr] = value
    return list(seen.values())


_LIMITS: dict[str, tuple[int, int]] = {"u64": (0, 2**64 - 1), "s64": (-(2**63), 2**63 - 1)}


class _LocalValue:
    """A metric's value outside a built library, with the same checks as the C cell."""

    def __init__(self, metric: Metric) -> None:
        self._metric = metric
        self._lock = threading.Lock()
        self._value: int | float = 0.0 if metric.value_type == "double" else 0

    @property
    def value(self) -> int | float:
        return self._value

    def _check(self, v: int | float) -> int | float:
        if self._metric.value_type == "double":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"metric {self._metric.name}: expected a number, got {type(v).__name__}")
            return float(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"metric {self._metric.name}: expected an int, got {type(v).__name__}")
        return v

    def _store(self, v: int | float) -> None:
        if self._metric.value_type == "u64":
            v = int(v) % 2**64  # wraps like the C cell
        elif self._metric.value_type == "s64":
            v = (int(v) + 2**63) % 2**64 - 2**63
        self._value = v

    def inc(self, n: int | float = 1) -> None:
        n = self._check(n)
        if self._metric.monotonic and n < 0:
            raise ValueError(f"counter {self._metric.name} only goes up, got inc({n})")
        with self._lock:
            self._store(self._value + n)

    def dec(self, n: int | float = 1) -> None:
        self._gauge_only("dec")
        n = self._check(n)
        with self._lock:
            self._store(self._value - n)

    def set(self, v: int | float) -> None:
        self._gauge_only("set")
        v = self._check(v)
        lo_hi = _LIMITS.get(self._metric.value_type)
        if lo_hi and not lo_hi[0] <= int(v) <= lo_hi[1]:
            raise OverflowError(f"metric {self._metric.name}: {v} does not fit a {self._metric.value_type}")
        with self._lock:
            self._value = v

    def _gauge_only(self, what: str) -> None:
        if self._metric.monotonic:
            raise TypeError(f"counter {self._metric.name} only goes up: {what}() is for gauges")
