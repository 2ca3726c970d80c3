"""The SDK as a new user meets it: a wheel, a fresh venv outside any checkout, one new plugin (issue 17).

From the SDK's wheel installed (with no extra) into a fresh virtual environment
in a temporary directory, ``falco-plugin new`` creates a project from the
template shipped with the tooling, and every "next" step it prints runs as
printed: build, ``run ./lib<name>.so``, install pytest, the project's tests.
The library then loads in the real Falco when there is one. Once per Python
version this machine has (3.11 always; 3.12 and 3.13 when present).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools.build import BuildResult, build_plugin
from falco_runner import PLUGIN_ONLY, REPO, PluginConf, falco_config, find_falco, run_falco, write_config

SDK = REPO / "sdk"


def interpreter(version: str) -> Path | None:
    """A ``python<version>`` of this machine (the one running the tests for its own version)."""
    if version == f"{sys.version_info.major}.{sys.version_info.minor}":
        return Path(sys.base_prefix) / "bin" / f"python{version}"
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
        return Path(found)
    pyenv = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))
    return Path(pyenv[-1]) if pyenv else None


@pytest.fixture(scope="module")
def sdk_dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SDK's sdist, and its wheel built from that sdist (so a file the sdist lacks is missing from both)."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(SDK)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def sdk_wheel(sdk_dist: Path) -> Path:
    (wheel,) = sdk_dist.glob("falco_plugin_sdk-*.whl")
    return wheel


def test_the_licence_the_packages_declare_is_in_the_wheel_and_the_sdist(sdk_dist: Path, sdk_wheel: Path) -> None:
    licence = (REPO / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    with zipfile.ZipFile(sdk_wheel) as whl:
        (name,) = [n for n in whl.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert whl.read(name).decode() == licence
        assert "License-Expression: Apache-2.0" in whl.read(name.replace("licenses/LICENSE", "METADATA")).decode()
    (sdist,) = sdk_dist.glob("falco_plugin_sdk-*.tar.gz")
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/LICENSE") and m.name.count("/") == 1)
        assert tar.extractfile(member).read().decode() == licence  # type: ignore[union-attr]


def test_the_wheel_holds_every_source_file_of_the_sdk(sdk_wheel: Path) -> None:
    """What git tracks under sdk/src is in the wheel (a `build/` ignore rule once left the builder out)."""
    tracked = subprocess.run(
        ["git", "ls-files", "src"], cwd=SDK, capture_output=True, text=True, check=True
    ).stdout.split()
    with zipfile.ZipFile(sdk_wheel) as whl:
        shipped = set(whl.namelist())
    missing = [f.removeprefix("src/") for f in tracked if f.removeprefix("src/") not in shipped]
    assert missing == []


def clean_env(venv: Path) -> dict[str, str]:
    """The environment of a user whose shell has the venv activated (and nothing of this test run)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith(("PYTEST_", "NOX"))
    }
    ours = str(Path(sys.executable).parent)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != ours]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    env["VIRTUAL_ENV"] = str(venv)
    return env


def sh(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("version", ["3.11", "3.12", "3.13"])
def test_a_new_plugin_from_the_wheel_builds_tests_runs_and_loads_in_falco(
    sdk_wheel: Path,
    tmp_path_factory: pytest.TempPathFactory,
    plugin_build: Callable[[str], BuildResult],
    version: str,
) -> None:
    python = interpreter(version)
    if python is None:
        if version == "3.11":
            pytest.fail("Python 3.11 is the SDK's base version and must be present")
        pytest.skip(f"no Python {version} on this machine")
    home = tmp_path_factory.mktemp(f"newcomer{version}")
    assert REPO not in home.parents  # outside the checkout: no registry, no plugins/, no sdk/
    venv = home / "venv"
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True, timeout=300)
    env = clean_env(venv)
    install = sh(f"pip install -q {sdk_wheel}", home, env)
    assert install.returncode == 0, install.stderr

    new = sh("falco-plugin new counter", home, env)
    assert new.returncode == 0, new.stdout + new.stderr
    assert "id 999 is the development id" in new.stdout, new.stdout
    lines = new.stdout.splitlines()
    steps = [line.strip() for line in lines[lines.index("next:") + 1 :]]
    assert steps == [
        "cd counter",
        "falco-plugin build .",
        "falco-plugin run ./libcounter.so -n 5",
        "pip install 'falco-plugin-sdk[test]'",
        "pytest tests",
    ]
    done = sh(" && ".join(steps), home, env)
    transcript = f"{new.stdout}\n$ {' && '.join(steps)}\n{done.stdout}{done.stderr}"
    assert done.returncode == 0, transcript
    assert "built " in done.stdout and "libcounter.so" in done.stdout
    assert done.stdout.count(" counter.value=") == 5, transcript  # `run ./libcounter.so -n 5`
    assert " passed" in done.stdout and "failed" not in done.stdout, transcript

    project = home / "counter"
    library = project / "libcounter.so"
    check = sh(f"python -c 'import sys; print(sys.version_info[:2])'; readelf -d {library}", home, env)
    assert f"({version.replace('.', ', ')})" in check.stdout
    assert f"libpython{version}.so" in check.stdout  # built with the venv's Python, not the test run's

    falco = find_falco()
    if falco is None:
        pytest.skip("real Falco not found: the newcomer steps passed, the Falco load is skipped")
    plugin = PluginConf("counter", library, {"step": 3}, json.dumps({"count": 10}))
    rules = project / "rules" / "counter_rules.yaml"
    config = write_config(home / "falco.yaml", falco_config([plugin], rules=[rules]))
    run = run_falco(falco, config, *PLUGIN_ONLY, "-v", timeout=120)
    assert run.returncode == 0, run.describe()
    assert run.captured() == {"counter": 10}, run.describe()
    assert [a["output_fields"]["counter.value"] for a in run.alerts] == [6, 12, 18, 24, 30], run.describe()
    assert not run.noise(), run.describe()
    if version != f"{sys.version_info.major}.{sys.version_info.minor}":
        mixed_minors_in_one_falco(falco, home, plugin, version, plugin_build("dummy").library)
        # the same with standalone builds, each carrying its own interpreter
        standalone = sh("falco-plugin build --standalone . --out ../standalone", project, env)
        assert standalone.returncode == 0, standalone.stdout + standalone.stderr
        counter = PluginConf("counter", home / "standalone" / "libcounter.so", {"step": 3}, json.dumps({"count": 10}))
        dummy = build_plugin(REPO / "plugins" / "dummy", home / "dummy-standalone", standalone=True).library
        mixed_minors_in_one_falco(falco, home, counter, version, dummy)


def mixed_minors_in_one_falco(falco: Path, home: Path, counter: PluginConf, version: str, dummy: Path) -> None:
    """Two plugins built with different Python minors in one Falco: the second to start fails its init
    with a message naming both versions (one process runs one Python), never a crash."""
    ours = f"{sys.version_info.major}.{sys.version_info.minor}"
    dummy_conf = PluginConf("dummy_py", dummy, {"jitter": 0}, json.dumps({"maxEvents": 3}))
    for first, second, running, built in ((dummy_conf, counter, ours, version), (counter, dummy_conf, version, ours)):
        config = write_config(home / "mixed.yaml", falco_config([first, second]))
        run = run_falco(falco, config, *PLUGIN_ONLY, timeout=120)
        assert run.returncode > 0, run.describe()  # an error exit, not a signal
        said = run.stdout + run.stderr
        assert f"Python {running} already runs in this process" in said, run.describe()
        assert f"built with Python {built}: one process cannot run both" in said, run.describe()
        assert "could not initialize plugin" in said and second.name in said, run.describe()
