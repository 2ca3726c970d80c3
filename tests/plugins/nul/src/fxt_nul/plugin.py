"""String values with an embedded NUL, which a C string cannot carry.

The host reads a string field as a NUL-terminated C string, so
``"root\\x00-not-really"`` would reach it as ``"root"``: a rule comparing
the value would match something the plugin never returned. The SDK must
fail such a field instead. ``nul.clean`` is the control: same shape, no NUL.
``nul.raw`` returns bytes, which must be text (UTF-8) like a str.
"""

from __future__ import annotations

from falco_plugin import Event, ExtractPlugin, field


class NulPlugin(ExtractPlugin):
    name = "fxt_nul"
    version = "0.0.1"
    description = "Test fixture: string values with an embedded NUL"
    contact = "sdk tests"

    @field("nul.clean", "A plain string")
    def clean(self, event: Event) -> str:
        return "root"

    @field("nul.embedded", "A string with a NUL in the middle")
    def embedded(self, event: Event) -> str:
        return "root\x00-not-really"

    @field("nul.list", "A list whose second string holds a NUL")
    def listed(self, event: Event) -> list[str]:
        return ["fine", "also\x00hidden"]

    @field("nul.payload", "The event payload as text (NULs and all)")
    def payload(self, event: Event) -> str:
        return event.payload.decode()

    @field("nul.raw", "The event payload as it is: a string field may return UTF-8 bytes")
    def raw(self, event: Event) -> bytes:
        return event.payload
