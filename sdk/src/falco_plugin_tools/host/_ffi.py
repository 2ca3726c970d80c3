"""The host's single cffi instance (ABI mode) and the small C helpers it needs.

Every plugin library is opened through the same ``FFI`` object: the
declarations come from the SDK's own ``plugin_abi.h`` and the list of entry
points, so the host and the plugins we build read one specification.
"""

from __future__ import annotations

import enum
from typing import Any

import cffi
from falco_plugin_tools import abi

ffi = cffi.FFI()
ffi.cdef(abi.cdef_packed(), packed=True)
ffi.cdef(abi.cdef_main())
ffi.cdef("\n".join(abi.ENTRY_POINTS.values()))
# libsinsp parses version strings with sscanf("%u.%u.%u"); calling the C
# library's own sscanf reproduces its leniency (signs, spaces, trailing text,
# 32-bit wrap-around) exactly instead of approximating it.
ffi.cdef("int sscanf(const char *str, const char *format, ...);")

_libc: Any = ffi.dlopen(None)

PLUGIN_MAX_ERRLEN = 1024


class Rc(enum.IntEnum):
    """``ss_plugin_rc``: what a plugin call returned."""

    SUCCESS = 0
    FAILURE = 1
    TIMEOUT = -1
    EOF = 2
    NOT_SUPPORTED = 3


def rc_of(value: int) -> Rc | int:
    """The :class:`Rc` for ``value``, or the bare number when a plugin returns something undefined."""
    try:
        return Rc(value)
    except ValueError:
        return value


def scan_version(text: str) -> tuple[int, int, int] | None:
    """``sscanf(text, "%u.%u.%u")`` when it converts all three numbers, else ``None``."""
    parts = ffi.new("unsigned int[3]")
    n = _libc.sscanf(text.encode("utf-8", "surrogateescape"), b"%u.%u.%u", parts + 0, parts + 1, parts + 2)
    if n != 3:
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def text_of(ptr: Any) -> str:
    """A plugin-owned C string as ``str`` (``NULL`` reads as ``""``, like libsinsp)."""
    if ptr == ffi.NULL:
        return ""
    return bytes(ffi.string(ptr)).decode("utf-8", "replace")
