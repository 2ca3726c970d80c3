"""Metrics of every kind, driven by extraction.

Each extraction of ``metrics.op[<op>]`` applies ``op`` to the metrics and
returns 1; ``op`` is ``<metric attribute>.<method>:<argument>``, e.g.
``seen.inc:3``, ``depth.set:-5``, ``lag.set:0.25``, or ``threads:<n>`` to
increment ``seen`` 1000 times from each of ``n`` threads at once, or
``bench:<n>`` to time ``n`` increments of ``seen`` (returns ns per call x 1000,
for bench/run.py). A bad
operation (``seen.set:1``) raises, so the error reaches ``get_last_error``.
"""

from __future__ import annotations

import threading
import time

from falco_plugin import Counter, Event, ExtractPlugin, Gauge, field


class MetricsFixture(ExtractPlugin):
    name = "fxt_metrics"
    version = "0.0.1"
    description = "Test fixture: metrics"
    contact = "sdk tests"
    extract_event_sources = ("fxt_metrics",)

    seen = Counter("seen", "Operations applied")
    total = Counter("total_seconds", "A float counter", float)
    depth = Gauge("depth", "A signed gauge")
    size = Gauge("size", "An unsigned gauge", unsigned=True)
    lag = Gauge("lag", "A float gauge", float)

    def init(self, config: str) -> None:
        self.depth.set(-1)  # metrics work from init on

    @field("metrics.op", "Apply an operation to the metrics")
    def op(self, event: Event, key: str) -> int:
        what, _, arg = key.partition(":")
        if what == "bench":
            inc, calls = self.seen.inc, int(arg)
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                inc()
            return (time.perf_counter_ns() - t0) * 1000 // calls
        if what == "threads":
            workers = [threading.Thread(target=self._hammer) for _ in range(int(arg))]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            return 1
        attr, _, method = what.partition(".")
        value: int | float = float(arg) if "." in arg or "e" in arg else int(arg)
        getattr(getattr(self, attr), method)(value)
        return 1

    def _hammer(self) -> None:
        inc = self.seen.inc
        for _ in range(1000):
            inc()
