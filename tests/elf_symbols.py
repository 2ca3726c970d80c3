"""Read the symbols a shared library exports, straight from its ELF dynamic symbol table.

Equivalent to ``nm -D --defined-only`` restricted to global/weak symbols with
default or protected visibility, without needing binutils.
"""

from __future__ import annotations

import struct
from pathlib import Path

SHT_DYNSYM = 11
STB_GLOBAL, STB_WEAK = 1, 2
STV_DEFAULT, STV_PROTECTED = 0, 3
SHN_UNDEF = 0


def _cstr(table: bytes, offset: int) -> str:
    return table[offset : table.index(b"\0", offset)].decode()


def exported_symbols(path: str | Path) -> set[str]:
    """Names of the symbols the library defines and exports (64-bit little-endian ELF)."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names: set[str] = set()
    for sec in sections:
        if sec[1] != SHT_DYNSYM:
            continue
        offset, size, link, entsize = sec[4], sec[5], sec[6], sec[9]
        strtab_sec = sections[link]
        strtab = data[strtab_sec[4] : strtab_sec[4] + strtab_sec[5]]
        for pos in range(offset, offset + size, entsize):
            st_name, st_info, st_other, st_shndx = struct.unpack_from("<IBBH", data, pos)
            binding, visibility = st_info >> 4, st_other & 3
            if (
                st_shndx != SHN_UNDEF
                and binding in (STB_GLOBAL, STB_WEAK)
                and visibility in (STV_DEFAULT, STV_PROTECTED)
                and st_name
            ):
                names.add(_cstr(strtab, st_name))
    return names


def plugin_symbols(path: str | Path) -> set[str]:
    """The exported ``plugin_*`` symbols."""
    return {s for s in exported_symbols(path) if s.startswith("plugin_")}
