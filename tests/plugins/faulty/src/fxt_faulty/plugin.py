"""Failure injection: each entry point raises when the config names it.

``fail`` lists entry points (``init``, ``open``, ``next_batch``, ``close``,
``destroy``, ``set_config``, ``event_to_string``, ``get_progress``,
``list_open_params``, ``extract:<field>``) that raise ``exc``; an entry
``badvalue:<where>`` makes it return a value of the wrong type instead.
``set_config`` replaces the list, so a test can break an entry point and then
check that everything works again.
"""

from __future__ import annotations

from typing import Any, Literal

from falco_plugin import (
    Batch,
    Config,
    EndOfStream,
    Event,
    ExtractPlugin,
    OpenParam,
    PluginError,
    SourceInstance,
    SourcePlugin,
    field,
    setting,
)

ExcName = Literal["ValueError", "PluginError", "SystemExit", "KeyboardInterrupt", "MemoryError"]
EXCEPTIONS: dict[str, type[BaseException]] = {
    "ValueError": ValueError,
    "PluginError": PluginError,
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "MemoryError": MemoryError,
}


class FaultyConfig(Config):
    """Which entry points fail, and how."""

    fail: list[str] = setting("Entry points that raise", default=[])
    exc: ExcName = setting("The exception they raise", default="ValueError")
    count: int = setting("Events per stream", default=6, minimum=0)


class FaultyInstance(SourceInstance):
    def __init__(self, plugin: FaultyPlugin) -> None:
        self.plugin = plugin
        self.sent = 0
        self.total = plugin.config.count

    def next_batch(self) -> Batch:
        self.plugin.check("next_batch")
        if self.plugin.wants_bad("next_batch"):
            return [b"fine", 12345]  # type: ignore[list-item]
        if self.sent >= self.total:
            raise EndOfStream
        self.sent += 2
        return [f"faulty {self.sent - 1}".encode(), f"faulty {self.sent}".encode()]

    def progress(self) -> float:
        self.plugin.check("get_progress")
        return 50.0

    def close(self) -> None:
        self.plugin.check("close")


class FaultyPlugin(SourcePlugin, ExtractPlugin):
    name = "fxt_faulty"
    version = "0.0.3"
    description = "Test fixture: raises on demand"
    contact = "sdk tests"
    id = 999_103
    event_source = "fxt_faulty"

    def check(self, where: str) -> None:
        if where in self.config.fail:
            raise EXCEPTIONS[self.config.exc](f"injected failure in {where}")

    def wants_bad(self, where: str) -> bool:
        return f"badvalue:{where}" in self.config.fail

    def init(self, config: FaultyConfig) -> None:
        self.config = config
        self.check("init")

    def destroy(self) -> None:
        self.log.info("destroy ran")
        self.check("destroy")

    def set_config(self, config: FaultyConfig) -> None:
        self.check("set_config")
        self.config = config

    def open(self, params: str) -> FaultyInstance:
        self.check("open")
        if self.wants_bad("open"):
            return "not an instance"  # type: ignore[return-value]
        return FaultyInstance(self)

    def open_params(self) -> list[OpenParam]:
        self.check("list_open_params")
        return [OpenParam("", "the only stream")]

    def event_to_string(self, event: Event) -> str:
        self.check("event_to_string")
        return "faulty event"

    def _extract(self, name: str, good: Any, bad: Any) -> Any:
        self.check(f"extract:{name}")
        return bad if self.wants_bad(f"extract:{name}") else good

    @field("faulty.text", "The payload")
    def text(self, event: Event) -> str:
        return self._extract("faulty.text", event.payload.decode(), 42)  # type: ignore[no-any-return]

    @field("faulty.number", "The number in the payload")
    def number(self, event: Event) -> int:
        return self._extract("faulty.number", int(event.payload.split()[1]), -1)  # type: ignore[no-any-return]

    @field("faulty.flag", "Always true")
    def flag(self, event: Event) -> bool:
        return self._extract("faulty.flag", True, True)  # type: ignore[no-any-return]

    @field("faulty.item", "An indexed value")
    def item(self, event: Event, index: int) -> int:
        return self._extract("faulty.item", index * 10, "ten")  # type: ignore[no-any-return]

    @field("faulty.names", "A list of names")
    def names(self, event: Event) -> list[str]:
        return self._extract("faulty.names", ["a", "b"], ["a", 7])  # type: ignore[no-any-return]
