"""Exceptions a plugin raises, and how the host sees them.

Any exception escaping plugin code becomes a failure code plus a
``get_last_error`` message that names the entry point (and the field, for
extraction). Raise :class:`PluginError` (or a subclass) when the message is
already meant for an operator: it is reported verbatim, without the
exception's type name in front.
"""

from __future__ import annotations


class SDKError(Exception):
    """The root of the errors the SDK itself raises (build, configuration, host).

    ``except falco_plugin.SDKError`` catches every failure the SDK reports,
    and nothing that is a bug in it.
    """


class PluginError(Exception):
    """An error whose message is written for the person running Falco."""


class SpecError(SDKError):
    """A plugin class cannot be turned into a plugin library (found at build time)."""


class ConfigError(PluginError, SDKError):
    """The init configuration or the open parameters are invalid.

    ``path`` names the offending key (``"jitter"``, ``"headers[2].name"``);
    it is empty when the document as a whole is wrong (not JSON, not an object).
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.reason = message
        super().__init__(f"{path}: {message}" if path else message)


class EndOfStream(Exception):  # noqa: N818 - it is a signal, like StopIteration
    """Raised by :meth:`SourceInstance.next_batch` when no event will ever come again."""


class Timeout(Exception):  # noqa: N818
    """Raised by :meth:`SourceInstance.next_batch` to say "nothing yet, ask again".

    Returning an empty batch means the same thing; raising is there for code
    that notices the timeout deep inside a helper.
    """
