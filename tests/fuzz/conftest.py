"""Hypothesis profiles of the fuzz tests and the targets they run against.

``FALCO_FUZZ_PROFILE=ci`` (the default) keeps each property to a few dozen
examples with a fixed seed, so the normal suite stays fast and repeatable;
``FALCO_FUZZ_PROFILE=long`` draws new random examples, many more of them, and
remembers failures in ``build/hypothesis/`` (ignored by git). ``FALCO_FUZZ_EXAMPLES=N`` overrides
the count of either.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools.build import BuildResult
from fuzzkit import ROOT, Target, describe
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

_examples = os.environ.get("FALCO_FUZZ_EXAMPLES")
_common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile(
    "ci", max_examples=int(_examples or 15), derandomize=True, database=None, print_blob=True, **_common
)
settings.register_profile(
    "long",
    max_examples=int(_examples or 500),
    database=DirectoryBasedExampleDatabase(ROOT / "build" / "hypothesis"),
    print_blob=True,
    **_common,
)
settings.load_profile(os.environ.get("FALCO_FUZZ_PROFILE", "ci"))


@pytest.fixture(scope="session")
def fuzz_target(build_plugin_project: Callable[[str | Path], BuildResult]) -> Callable[[Path], Target]:
    """``fuzz_target(project)``: the project built once per session, with what its library declares."""
    cache: dict[Path, Target] = {}

    def get(project: Path) -> Target:
        if project not in cache:
            cache[project] = describe(project, build_plugin_project(project).library)
        return cache[project]

    return get
