"""A built library answers the host's event schema question only when it may see syscall events."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest
from falco_plugin_tools.build import build_plugin

EXTRACTOR = """
from falco_plugin import Event, ExtractPlugin, field


class P(ExtractPlugin):
    name = "{name}"
{extra}
    @field("{name}.len", "Payload length")
    def length(self, event: Event) -> int:
        return len(event.payload)
"""


def build(tmp_path: Path, name: str, extra: str = "") -> ctypes.CDLL:
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1.0"\ndependencies = ["falco-plugin-sdk"]\n\n'
        f'[tool.falco-plugin]\nplugin = "{name}.plugin:P"\n'
    )
    pkg = tmp_path / "src" / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text(EXTRACTOR.format(name=name, extra=extra))
    return ctypes.CDLL(str(build_plugin(tmp_path, tmp_path / "out").library))


def schema_version(lib: ctypes.CDLL) -> str:
    fn = lib.plugin_get_required_event_schema_version
    fn.restype = ctypes.c_char_p
    fn.argtypes = [ctypes.c_void_p]
    return str(fn(None).decode())


def test_an_extractor_for_every_source_reports_an_event_schema_current_hosts_accept(tmp_path: Path) -> None:
    assert schema_version(build(tmp_path, "fxt_schema_default")) == "4.0.0"


def test_an_explicit_event_schema_version_is_what_the_library_reports(tmp_path: Path) -> None:
    lib = build(tmp_path, "fxt_schema_explicit", '    required_event_schema_version = "4.2.1"\n')
    assert schema_version(lib) == "4.2.1"


def test_an_extractor_of_plugin_sources_only_does_not_export_the_symbol(tmp_path: Path) -> None:
    lib = build(tmp_path, "fxt_schema_none", '    extract_event_sources = ("dummy_py",)\n')
    with pytest.raises(AttributeError):
        lib.plugin_get_required_event_schema_version  # noqa: B018
