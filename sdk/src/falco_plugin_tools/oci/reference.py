"""``REGISTRY/REPOSITORY[:TAG]``: where an artifact is pushed, checked before anything is sent.

The grammar is the distribution project's (the one registries enforce):
repository path components are lowercase alphanumerics joined by ``.``,
``_``, ``__`` or dashes; a tag is up to 128 word characters, dots and dashes,
not starting with either. Unlike ``docker push`` there is no default
registry: the first component must be a host (it has a ``.`` or a ``:port``,
or is ``localhost``), so that a typo never sends a plugin to Docker Hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Reference", "ReferenceSyntaxError", "parse_reference"]

_HOST = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?"
)
_IPV6_HOST = re.compile(r"\[[0-9a-fA-F:]+\](?::[0-9]{1,5})?")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_MAX_NAME = 255


class ReferenceSyntaxError(ValueError):
    """Not a ``REGISTRY/REPOSITORY[:TAG]`` reference."""


@dataclass(frozen=True)
class Reference:
    registry: str
    """``host[:port]``."""
    repository: str
    tag: str | None = None

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}" + (f":{self.tag}" if self.tag else "")

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag)


def _bad(text: str, why: str) -> ReferenceSyntaxError:
    return ReferenceSyntaxError(f"{text!r} is not a reference REGISTRY/REPOSITORY[:TAG]: {why}")


def parse_reference(text: str) -> Reference:
    """``text`` as a push target; :class:`ReferenceSyntaxError` says what is wrong with it."""
    if "@" in text:
        raise _bad(text, "a digest cannot be pushed to (give a tag, or none for the version's tags)")
    host, slash, rest = text.partition("/")
    if not slash or not rest:
        raise _bad(text, "no repository after the registry")
    if not (
        ("." in host or ":" in host or host == "localhost") and (_HOST.fullmatch(host) or _IPV6_HOST.fullmatch(host))
    ):
        raise _bad(text, f"{host!r} is not a registry host (host.name, host:port or localhost)")
    repository, tag = rest, None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = rest.rpartition(":")
        if not _TAG.fullmatch(tag):
            raise _bad(text, f"{tag!r} is not a tag (up to 128 letters, digits, _ . -; not starting with . or -)")
    for component in repository.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise _bad(text, f"{component!r} is not a repository path component (lowercase letters, digits, . _ -)")
    if len(f"{host}/{repository}") > _MAX_NAME:
        raise _bad(text, f"the name is longer than {_MAX_NAME} characters")
    return Reference(host, repository, tag)
