"""What a plugin library imports when it starts: only what its plugin uses.

Every Python module a library imports at ``plugin_init`` is start-up time of
the host, so the runtime imports a capability's modules only for a plugin
that has it (see ``falco_plugin._internal.capabilities.selectable``) and the
``falco_plugin`` package loads the author API of the rarer capabilities on
first use of one of its names. These tests start the real ``dummy_py``
library (sourcing and extraction) in a fresh interpreter and check the rest
stayed out, and that the shortcut rests on facts that hold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import falco_plugin
import pytest
from falco_plugin._internal import capabilities
from falco_plugin._internal.capabilities import (
    CAPABILITY_UNITS,
    FEATURE_UNITS,
    implemented,
    implemented_features,
    selectable,
    selectable_features,
)
from falco_plugin.jsonfields import JsonField
from falco_plugin.metrics import Metric

# The library started as the host starts it (plugin_init with no input: the
# default config), then the modules of the interpreter it started.
PROBE = r"""
import ctypes, json, sys

lib = ctypes.CDLL(sys.argv[1])
lib.plugin_init.restype = ctypes.c_void_p
lib.plugin_init.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32)]
lib.plugin_get_last_error.restype = ctypes.c_char_p
lib.plugin_get_last_error.argtypes = [ctypes.c_void_p]
lib.plugin_destroy.argtypes = [ctypes.c_void_p]
rc = ctypes.c_int32(-1)
rc_ref = ctypes.byref(rc)
# The probe's own ctypes is forgotten, so that the list shows whether the runtime imports it.
for name in [n for n in sys.modules if n == "ctypes" or n.startswith("ctypes.")]:
    del sys.modules[name]
state = lib.plugin_init(None, rc_ref)
print(json.dumps({"rc": rc.value, "error": lib.plugin_get_last_error(state).decode(), "modules": sorted(sys.modules)}))
lib.plugin_destroy(state)
"""

UNUSED_BY_DUMMY = (
    "falco_plugin.asyncevents",
    "falco_plugin.jsonrecords",
    "falco_plugin.capture",
    "falco_plugin.metrics",
    "falco_plugin.parse",
    "falco_plugin._internal.capabilities.async_events",
    "falco_plugin._internal.capabilities.capture_listening",
    "falco_plugin._internal.capabilities.metrics",
    "falco_plugin._internal.capabilities.parsing",
    "ipaddress",  # for IPAddr and IPNet fields only
    "ctypes",  # for events read by address only
)


def test_a_library_imports_no_module_of_a_capability_its_plugin_lacks(dummy_library: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(dummy_library)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["rc"] == 0, report["error"]
    modules = set(report["modules"])
    assert {"falco_plugin._internal.runtime", "falco_plugin._internal.capabilities.sourcing"} <= modules
    assert not modules & set(UNUSED_BY_DUMMY), sorted(modules & set(UNUSED_BY_DUMMY))


def test_each_unit_is_selected_through_the_module_it_names() -> None:
    # selectable() leaves a unit out while its author module is not imported:
    # that is only sound if the class that selects it lives there.
    for impl, (_, _, author) in zip(implemented(), CAPABILITY_UNITS, strict=True):
        assert impl.base.__module__ == f"falco_plugin.{author}", impl.capability.name
    declared_by = {"metrics": Metric, "json_fields": JsonField}  # what a class declares to select the feature
    for feature, (_, _, author) in zip(implemented_features(), FEATURE_UNITS, strict=True):
        assert declared_by[feature.capability.name].__module__ == f"falco_plugin.{author}"


def test_with_every_author_module_imported_all_units_are_selectable() -> None:
    for name in falco_plugin.__all__:
        getattr(falco_plugin, name)
    assert [i.capability.name for i in selectable()] == [i.capability.name for i in implemented()]
    assert [f.capability.name for f in selectable_features()] == [f.capability.name for f in implemented_features()]


def test_a_unit_whose_author_module_is_not_imported_is_not_selectable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "falco_plugin.parse")
    assert "parsing" not in [i.capability.name for i in selectable()]
    assert "parsing" in [i.capability.name for i in capabilities.implemented()]


def test_the_lazy_names_of_the_package_are_its_public_names() -> None:
    lazy = set(falco_plugin._LAZY)
    assert lazy <= set(falco_plugin.__all__)
    assert lazy <= set(dir(falco_plugin))
    with pytest.raises(AttributeError, match="has no attribute 'NotAName'"):
        falco_plugin.NotAName  # type: ignore[attr-defined]  # noqa: B018
