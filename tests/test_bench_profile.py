"""How bench/falco_profile.py reads callgrind's call tree: what it attributes to
Falco, to the plugin's Python, to the GIL and to the SDK's glue."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def profile() -> ModuleType:
    saved = list(sys.path)
    sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests" / "falco")]
    try:
        return importlib.import_module("falco_profile")
    finally:
        sys.path[:] = saved  # bench/ holds modules (run, falco) no other test should import by accident


def annotate(extract: int, python: int, ensure: int, release: int, batch: int, batch_python: int) -> str:
    """A callgrind_annotate --inclusive=yes --tree=calling listing, in its layout."""
    return f"""\
--------------------------------------------------------------------------------
{10_000 + extract + batch:,} (100.0%)  PROGRAM TOTALS
--------------------------------------------------------------------------------
{extract:,} (23.79%)  >   /src/_glue/extraction.c:plugin_extract_fields (50,000x) [/p/libdummy_py.so]

{extract:,} (23.79%)  *  /src/_glue/extraction.c:plugin_extract_fields [/p/libdummy_py.so]
{python:,} (13.49%)  >   /py/Objects/call.c:PyObject_Vectorcall (50,000x) [/py/libpython3.11.so.1.0]
{ensure:,} ( 2.63%)  >   /py/Python/pystate.c:PyGILState_Ensure (50,000x) [/py/libpython3.11.so.1.0]
{release:,} ( 1.61%)  >   /py/Python/pystate.c:PyGILState_Release (50,000x) [/py/libpython3.11.so.1.0]

{batch:,} (17.11%)  *  /src/_glue/sourcing.c:plugin_next_batch [/p/libdummy_py.so]
{batch_python:,} (16.54%)  >   /py/Objects/call.c:PyObject_CallNoArgs (392x) [/py/libpython3.11.so.1.0]

900 ( 2.64%)  *  /src/_glue/common.c:plugin_extract_fields
400 ( 0.77%)  >   /py/Objects/bytesobject.c:PyBytes_FromStringAndSize (50,000x) [/py/libpython3.11.so.1.0]
"""


def test_an_entry_point_is_its_largest_block_with_the_callees_listed_under_it(profile: ModuleType) -> None:
    counts = profile.parse_annotate(annotate(5000, 3000, 300, 200, 4000, 3500))
    assert counts.total == 19_000
    # the common.c block is inlined code already counted in the extraction.c one
    assert counts.entries == {"extract": 5000, "next_batch": 4000}
    assert counts.part("extract", profile.PLUGIN_PYTHON) == 3000
    assert counts.part("extract", profile.GIL) == 500
    assert "PyBytes_FromStringAndSize" not in counts.callees["extract"]


def test_per_event_figures_are_the_difference_of_two_runs(profile: ModuleType) -> None:
    small = profile.parse_annotate(annotate(5000, 3000, 300, 200, 4000, 3500))
    big = profile.parse_annotate(annotate(15000, 9000, 900, 600, 12000, 10500))
    total, parts = profile.per_event(small, big, 1000)
    assert total == 18.0  # (28,000 - 10,000 + ...) / 1,000 extra events
    assert parts == {
        "Falco": 0.0,
        "next_batch: plugin Python": 7.0,
        "next_batch: GIL": 0.0,
        "next_batch: SDK glue": 1.0,
        "extract: plugin Python": 6.0,
        "extract: GIL": 1.0,
        "extract: SDK glue": 3.0,
    }


def test_a_listing_without_totals_is_an_error(profile: ModuleType) -> None:
    with pytest.raises(profile.ProfileError, match="PROGRAM TOTALS"):
        profile.parse_annotate("nothing here\n")
