"""``.ci/run`` installs the real Falco's runtime libraries and the libsinsp host's build dependencies,
when shared/ has their scripts, before the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from falco_runner import REPO

# each fake logs its calls to one file
LOGGER = '#!/bin/sh\necho "{what} $*" >> "{log}"\n'


def ci_checkout(tmp_path: Path, *, with_shared: bool) -> tuple[Path, Path]:
    """A clone holding .ci/run and a fake ci/nox, with shared/realhost beside it; returns (clone, log)."""
    clone = tmp_path / "clone"
    (clone / ".ci").mkdir(parents=True)
    (clone / "ci").mkdir()
    shutil.copy(REPO / ".ci" / "run", clone / ".ci" / "run")
    log = tmp_path / "calls.log"
    fakes = [(clone / "ci" / "nox", "nox")]
    if with_shared:
        (tmp_path / "shared" / "realhost" / "libsinsp").mkdir(parents=True)
        fakes.append((tmp_path / "shared" / "realhost" / "install-runtime", "install-runtime"))
        fakes.append((tmp_path / "shared" / "realhost" / "libsinsp" / "install-dev", "install-dev"))
    for path, what in fakes:
        path.write_text(LOGGER.format(what=what, log=log))
        path.chmod(0o555)
    return clone, log


@pytest.mark.skipif(os.geteuid() != 0, reason="CI runs .ci/run as root; elsewhere it uses sudo")
@pytest.mark.skipif(
    subprocess.run(["dpkg", "-s", "uthash-dev"], capture_output=True).returncode != 0,
    reason="with uthash-dev missing .ci/run would install it for real",
)
@pytest.mark.parametrize("with_shared", [True, False])
def test_ci_run_installs_the_runtime_and_build_deps_first_when_shared_has_them(
    tmp_path: Path, with_shared: bool
) -> None:
    clone, log = ci_checkout(tmp_path, with_shared=with_shared)
    proc = subprocess.run(["bash", str(clone / ".ci" / "run")], capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    expected = (["install-runtime ", "install-dev "] if with_shared else []) + ["nox -s tests"]
    assert log.read_text().splitlines() == expected
