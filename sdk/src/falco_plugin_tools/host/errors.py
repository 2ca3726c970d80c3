"""What the host raises. Messages follow libsinsp's wording, so what a test or
a developer sees here is what Falco would print for the same plugin."""

from __future__ import annotations

from pathlib import Path


class HostError(Exception):
    """A plugin library or one of its calls misbehaved, as libsinsp would report it."""


class LoadError(HostError):
    """The library cannot be loaded as a plugin.

    ``reason`` is libsinsp's message; the full text adds the path the way
    ``sinsp::register_plugin`` does (``cannot load plugin <path>: <reason>``).
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot load plugin {self.path}: {reason}")


class FieldExpressionError(HostError):
    """A field expression (``name[arg]``) is not valid for the plugin's fields."""


class ExtractionError(HostError):
    """``extract_fields`` failed; the message is the plugin's ``get_last_error``.

    libsinsp treats such a failure as "no value"; the host raises it unless
    asked not to (``extract(..., strict=False)``) because a test wants to know.
    """
