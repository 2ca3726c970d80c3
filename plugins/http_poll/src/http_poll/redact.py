"""Keep secret header values out of every message the plugin writes.

The plugin never formats a header value into a message on purpose; this is
the safety net for text it does not control (exception messages from
``requests``, ``urllib3``, the OS). Every log record and every error raised
to the host goes through :class:`Redactor` first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

__all__ = ["Redactor", "RedactingFilter", "MASK", "MIN_SECRET_LENGTH"]

MASK = "***"
MIN_SECRET_LENGTH = 4
"""Shorter values are not masked: they cannot be secrets and masking them would garble messages."""


class Redactor:
    """Replaces known secret values in text by :data:`MASK`.

    Thread-safe: the poller adds values (a rotated token file) while the
    host thread redacts; the set of values is replaced, never mutated.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Remember more secret values.

        The credentials of a ``<scheme> <credentials>`` value (``Bearer abc``)
        are a secret of their own: they may show up without the scheme.
        """
        values = set()
        for s in secrets:
            values.add(s)
            scheme, _, credentials = s.partition(" ")
            if credentials and scheme.isalpha():
                values.add(credentials.strip())
        new = {s for s in values if len(s) >= MIN_SECRET_LENGTH} - set(self._secrets)
        if new:
            # Longest first, so that a secret containing another is masked whole.
            self._secrets = tuple(sorted({*self._secrets, *new}, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


class RedactingFilter(logging.Filter):
    """A logging filter that formats each record and masks the secrets in it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {record.exc_info[1]}"
        # A formatted traceback could quote a secret too: keep only the redacted line.
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        record.msg, record.args = self.redactor(text), None
        return True
