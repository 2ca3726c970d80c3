"""Running dummy_py in the C host and reading what it printed."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

EVENT_LINE = re.compile(r"^evt (\d+)(.*)$")
FIELD_VALUE = re.compile(r" (\S+?)=(<error: [^>]*>|\S+)")


@dataclass
class Run:
    """What the C host printed for one run of the plugin."""

    proc: subprocess.CompletedProcess[str]
    events: list[dict[str, str]]

    @property
    def ok(self) -> bool:
        return self.proc.returncode == 0


def parse(proc: subprocess.CompletedProcess[str]) -> Run:
    """The events (number and field values) in the C host's output."""
    events = []
    for line in proc.stdout.splitlines():
        m = EVENT_LINE.match(line)
        if m:
            events.append({"num": m.group(1), **dict(FIELD_VALUE.findall(m.group(2)))})
    return Run(proc, events)
