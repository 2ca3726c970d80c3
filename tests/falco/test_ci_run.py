"""``.ci/run`` installs the real Falco's runtime libraries, when shared/ has the script, before the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from falco_runner import REPO

# both fakes sit two levels below tmp_path, and log their calls there
LOGGER = '#!/bin/sh\necho "{what} $*" >> "$(dirname "$0")/../../calls.log"\n'


def ci_checkout(tmp_path: Path, *, with_shared: bool) -> tuple[Path, Path]:
    """A clone holding .ci/run and a fake ci/nox, with shared/realhost beside it; returns (clone, log)."""
    clone = tmp_path / "clone"
    (clone / ".ci").mkdir(parents=True)
    (clone / "ci").mkdir()
    shutil.copy(REPO / ".ci" / "run", clone / ".ci" / "run")
    log = tmp_path / "calls.log"
    fakes = [(clone / "ci" / "nox", "nox")]
    if with_shared:
        (tmp_path / "shared" / "realhost").mkdir(parents=True)
        fakes.append((tmp_path / "shared" / "realhost" / "install-runtime", "install-runtime"))
    for path, what in fakes:
        path.write_text(LOGGER.format(what=what))
        path.chmod(0o555)
    return clone, log


@pytest.mark.skipif(os.geteuid() != 0, reason="CI runs .ci/run as root; elsewhere it uses sudo")
@pytest.mark.parametrize("with_shared", [True, False])
def test_ci_run_installs_the_runtime_first_when_shared_has_it(tmp_path: Path, with_shared: bool) -> None:
    clone, log = ci_checkout(tmp_path, with_shared=with_shared)
    proc = subprocess.run(["bash", str(clone / ".ci" / "run")], capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    expected = (["install-runtime "] if with_shared else []) + ["nox -s tests pythons"]
    assert log.read_text().splitlines() == expected
