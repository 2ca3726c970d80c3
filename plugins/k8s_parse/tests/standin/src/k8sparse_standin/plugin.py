"""A stand-in for another extractor of the syscall source: its name and field names, no values.

What matters to Falco when it loads several extractors is their field names
per event source, so a stand-in declares the fields of the plugin it stands
for (Falco's ``container`` plugin, or k8s_parse 0.1.0) from ``standin.json``
beside this module, which the test writes, and gives none of them a value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from falco_plugin import AbsTime, Event, ExtractPlugin, RelTime, field

SPEC: dict[str, Any] = json.loads(Path(__file__).with_name("standin.json").read_text())

RETURNS: dict[str, Any] = {"string": str, "bool": bool, "abstime": AbsTime, "reltime": RelTime, "uint64": int}


def _extractor(spec: dict[str, Any]) -> Callable[..., Any]:
    """An extractor of field ``spec["name"]`` that never has a value (an argument, if any, is a key)."""
    returns = RETURNS[spec["type"]] | None
    described = field(spec["name"], f"stand-in for {SPEC['name']}'s {spec['name']}")
    if spec.get("arg"):

        def keyed(self: StandIn, event: Event, key: str) -> Any:
            return None

        keyed.__annotations__["return"] = returns
        return described(keyed)

    def plain(self: StandIn, event: Event) -> Any:
        return None

    plain.__annotations__["return"] = returns
    return described(plain)


class StandIn(ExtractPlugin):
    name = SPEC["name"]
    version = "0.0.1"
    description = f"Test stand-in for the {SPEC['name']} plugin: its syscall field names, without values"
    contact = "k8s_parse tests"
    extract_event_sources = ("syscall",)


for _i, _spec in enumerate(SPEC["fields"]):
    setattr(StandIn, f"field_{_i}", _extractor(_spec))
