"""Source + extract with no optional entry point, pinned to plugin API 3.4.0.

Its field returns :class:`Located`, but a plugin that requires API 3.4 must
never touch ``value_offsets`` (hosts older than 3.12 do not have it).
"""

from __future__ import annotations

from falco_plugin import Batch, EndOfStream, Event, ExtractPlugin, Located, SourceInstance, SourcePlugin, field


class LegacyInstance(SourceInstance):
    def __init__(self) -> None:
        self.sent = 0

    def next_batch(self) -> Batch:
        if self.sent >= 4:
            raise EndOfStream
        self.sent += 2
        return [f"legacy {self.sent - 1}".encode(), f"legacy {self.sent}".encode()]


class LegacyPlugin(SourcePlugin, ExtractPlugin):
    name = "fxt_legacy"
    version = "0.0.5"
    description = "Test fixture: no optional entry point, API 3.4"
    contact = "sdk tests"
    id = 999_105
    event_source = "fxt_legacy"
    required_api_version = "3.4.0"

    def open(self, params: str) -> LegacyInstance:
        self.params_type = type(params).__name__
        return LegacyInstance()

    @field("legacy.params_type", "The Python type of the open params the plugin received")
    def params_type_field(self, event: Event) -> str:
        return self.params_type

    @field("legacy.word", "The second word, located in the payload")
    def word(self, event: Event) -> str | Located:
        first, _, second = event.payload.decode().partition(" ")
        return Located(second, len(first) + 1, len(second))
