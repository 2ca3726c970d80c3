"""Extract only: every field type, every argument kind, and a config schema
with nested objects, aliases, bounds and a required key.

Fields read the plugin payload as space-separated words; they work on any
event (the payload of a non-plugin event is empty).
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from falco_plugin import AbsTime, Config, Event, ExtractPlugin, IPAddr, IPNet, RelTime, field, per_event, setting
from falco_plugin.event import PLUGIN_EVENT


class Header(Config):
    """One extra header."""

    name: str = setting(description="Header name", min_length=1)
    value: str = setting("Header value", default="")


class ExtractOnlyConfig(Config):
    """Init configuration of fxt_extract_only."""

    name: str = setting(description="A required name")
    limit: int = setting("An upper bound", default=10, minimum=1, maximum=1000)
    mode: Literal["fast", "slow"] = setting("How to work", default="fast")
    headers: list[Header] = setting("Extra headers", default=[])
    ratio: float | None = setting("An optional ratio", default=None)
    api_key: str = setting("A secret", default="", key="apiKey", secret=True)


class ExtractOnlyPlugin(ExtractPlugin):
    name = "fxt_extract_only"
    version = "0.0.2"
    description = "Test fixture: extract only"
    contact = "sdk tests"
    extract_event_sources = ("fxt_full", "fxt_source_only")
    extract_event_types = (PLUGIN_EVENT,)

    def init(self, config: ExtractOnlyConfig) -> None:
        self.config = config

    @per_event
    def words(self, event: Event) -> list[str]:
        return event.payload.decode().split()

    @field("xo.payload", "The payload as text", display="Payload", add_output=True)
    def payload(self, event: Event) -> str:
        return event.payload.decode()

    @field("xo.len", "Payload length")
    def length(self, event: Event) -> int:
        return len(event.payload)

    @field("xo.even", "Payload length is even", properties=("info",))
    def even(self, event: Event) -> bool:
        return len(event.payload) % 2 == 0

    @field("xo.reltime", "A constant duration")
    def reltime(self, event: Event) -> RelTime:
        return RelTime(1500)

    @field("xo.abstime", "The event timestamp")
    def abstime(self, event: Event) -> AbsTime:
        return AbsTime(event.ts)

    @field("xo.ipv4", "An IPv4 address")
    def ipv4(self, event: Event) -> IPAddr:
        return ipaddress.IPv4Address("192.168.0.1")

    @field("xo.ipv6", "An IPv6 address")
    def ipv6(self, event: Event) -> IPAddr:
        return ipaddress.IPv6Address("::1")

    @field("xo.net", "An IPv4 network")
    def net(self, event: Event) -> IPNet:
        return ipaddress.IPv4Network("10.0.0.0/8")

    @field("xo.words", "The payload words")
    def all_words(self, event: Event) -> list[str]:
        return self.words(event)

    @field("xo.lengths", "The length of each word")
    def lengths(self, event: Event) -> list[int]:
        return [len(w) for w in self.words(event)]

    @field("xo.word", "The word at an index (required index)")
    def word(self, event: Event, index: int) -> str | None:
        words = self.words(event)
        return words[index] if index < len(words) else None

    @field("xo.opt", "Echoes an optional index")
    def opt(self, event: Event, index: int | None = None) -> str:
        return "none" if index is None else f"index={index}"

    @field("xo.key", "Echoes a required key")
    def key(self, event: Event, key: str) -> str:
        return f"key={key}"

    @field("xo.optkey", "Echoes an optional key")
    def optkey(self, event: Event, key: str | None = None) -> str:
        return "none" if key is None else f"key={key}"

    @field("xo.maybe", "No value for an empty payload")
    def maybe(self, event: Event) -> str | None:
        return event.payload.decode() or None

    @field("xo.evtype", "The event type code")
    def evtype(self, event: Event) -> int:
        return event.type

    @field("xo.num", "The event number")
    def num(self, event: Event) -> int:
        return event.num

    @field("xo.source", "The event source name given by the host")
    def source(self, event: Event) -> str:
        return event.source or ""

    @field("xo.config", "The configured name and limit")
    def config_text(self, event: Event) -> str:
        return f"{self.config.name}/{self.config.limit}/{self.config.mode}"
