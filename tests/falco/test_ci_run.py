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
    expected = (["install-runtime ", "install-dev "] if with_shared else []) + ["nox -s tests pythons"]
    assert log.read_text().splitlines() == expected


INSTALL_FLAGS = "-y -qq --no-install-recommends"


@pytest.mark.skipif(os.geteuid() != 0, reason="CI runs .ci/run as root; elsewhere it uses sudo")
@pytest.mark.parametrize("present", [True, False])
def test_ci_run_installs_the_registry_of_the_push_tests_only_when_missing(tmp_path: Path, present: bool) -> None:
    clone, log = ci_checkout(tmp_path, with_shared=False)
    # a PATH of only what the script runs, apt-get faked (logging), the registry there or not
    bin_dir = tmp_path / "x" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("dirname", "id", "env"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    fakes = ["apt-get"] + (["docker-registry", "htpasswd"] if present else [])
    for what in fakes:
        (bin_dir / what).write_text(LOGGER.format(what=what, log=log))
        (bin_dir / what).chmod(0o555)
    proc = subprocess.run(
        [shutil.which("bash") or "bash", str(clone / ".ci" / "run")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={"PATH": str(bin_dir)},
    )
    assert proc.returncode == 0, proc.stderr
    install = f"apt-get install {INSTALL_FLAGS} docker-registry apache2-utils"
    installs = [] if present else ["apt-get update -qq", install]
    assert log.read_text().splitlines() == [*installs, "nox -s tests pythons"]
