"""What has been delivered to the host, and how it survives a restart.

A checkpoint file holds the cursor of the last complete poll the host has
consumed and the keys of the most recent records it has consumed::

    {"version": 1, "url": "https://...", "cursor": "2024-05-01T12:00:03Z", "delivered": ["id:a", "id:b"]}

It is replaced atomically (write a temporary file, fsync, rename), so a crash
leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from falco_plugin import PluginError

__all__ = ["Checkpoint", "CheckpointError", "Delivered"]

VERSION = 1


class CheckpointError(PluginError):
    """The checkpoint file cannot be used."""


class Delivered:
    """Keys of the records delivered most recently, in delivery order, at most ``capacity``.

    A key delivered longer ago than the last ``capacity`` deliveries is
    forgotten: size the capacity above the number of records an API can send
    again (the overlap of two polls, or a whole listing without a cursor).
    """

    def __init__(self, capacity: int, keys: list[str] | None = None) -> None:
        self.capacity = capacity
        # An insertion-ordered set. Not a dict: deleting a dict's oldest key over and over leaves
        # holes at its front that every next(iter()) walks again (1.6 us a record at 10,000 keys).
        self._keys: OrderedDict[str, None] = OrderedDict()
        for key in keys or ():
            self.add(key)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> None:
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)

    def admit(self, key: str) -> bool:
        """Add ``key`` unless it is here already; whether it was added (one call per record)."""
        keys = self._keys
        if key in keys:
            return False
        keys[key] = None
        if len(keys) > self.capacity:
            keys.popitem(last=False)
        return True

    def keys(self) -> list[str]:
        """The keys, oldest first."""
        return list(self._keys)


@dataclass
class Checkpoint:
    """The state a restart resumes from."""

    url: str
    cursor: str | None = None
    delivered: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path, url: str) -> Checkpoint | None:
        """The checkpoint saved for ``url`` at ``path``; None when there is no file yet."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"checkpoint {path}: cannot read it: {exc.strerror}") from None
        try:
            doc = json.loads(text)
            if doc.get("version") != VERSION:
                raise CheckpointError(f"checkpoint {path}: unsupported version {doc.get('version')!r}")
            cursor, delivered = doc["cursor"], doc["delivered"]
            if not (cursor is None or isinstance(cursor, str)) or not all(isinstance(k, str) for k in delivered):
                raise TypeError
            saved_url = doc["url"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise CheckpointError(f"checkpoint {path}: not a checkpoint file (delete it to start afresh)") from None
        if saved_url != url:
            # Resuming another URL's cursor would silently skip records: refuse.
            raise CheckpointError(f"checkpoint {path} was written for another URL (delete it or use another file)")
        return cls(url, cursor, list(delivered))

    def save(self, path: str | Path) -> None:
        """Replace the file at ``path`` atomically with this checkpoint."""
        target = Path(path)
        text = json.dumps({"version": VERSION, "url": self.url, "cursor": self.cursor, "delivered": self.delivered})
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        try:  # make the rename itself durable
            dirfd = os.open(target.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
