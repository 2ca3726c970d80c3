"""Source only, nothing optional: the smallest symbol set a source plugin can have.

Open params are a plain string: ``"N"`` produces N events, ``"timeouts:N"``
first answers "nothing yet" twice (an empty batch, then ``Timeout``).
Batches hold up to 3 events; payloads come as bytes, ``(bytes, ts)`` pairs,
bytearrays and memoryviews so every accepted payload form is exercised.
"""

from __future__ import annotations

from falco_plugin import Batch, EndOfStream, SourceInstance, SourcePlugin, Timeout

BATCH = 3
TS_BASE = 1_700_000_000_000_000_000


def payload(n: int) -> bytes:
    return f"source-only event {n}".encode()


class SourceOnlyInstance(SourceInstance):
    def __init__(self, total: int, timeouts: int) -> None:
        self.sent = 0
        self.total = total
        self.timeouts = timeouts

    def next_batch(self) -> Batch:
        if self.timeouts:
            self.timeouts -= 1
            if self.timeouts % 2:
                return []
            raise Timeout
        if self.sent >= self.total:
            raise EndOfStream
        batch: list[bytes | tuple[bytes, int]] = []
        while self.sent < self.total and len(batch) < BATCH:
            self.sent += 1
            data = payload(self.sent)
            kind = self.sent % 4
            if kind == 0:
                batch.append((data, TS_BASE + self.sent))
            elif kind == 1:
                batch.append(data)
            elif kind == 2:
                batch.append(bytearray(data))  # type: ignore[arg-type]
            else:
                batch.append(memoryview(data))  # type: ignore[arg-type]
        return batch


class SourceOnlyPlugin(SourcePlugin):
    name = "fxt_source_only"
    version = "0.0.1"
    description = "Test fixture: source only"
    contact = "sdk tests"
    id = 999_101
    event_source = "fxt_source_only"

    def open(self, params: str) -> SourceOnlyInstance:
        # Tolerates bytes so the other tests do not depend on the SDK bug that
        # test_open_params_declared_as_str_arrive_as_str documents.
        text = (params.decode() if isinstance(params, bytes) else params) or "7"
        timeouts = 0
        if text.startswith("timeouts:"):
            timeouts, text = 2, text.removeprefix("timeouts:")
        return SourceOnlyInstance(int(text), timeouts)
