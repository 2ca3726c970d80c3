"""Several Python plugins in one process share one interpreter, so one imported
``falco_plugin`` runtime: the one that got there first. A later plugin's C
glue checks the glue contract of that runtime at init.

* Same contract, other SDK release: both plugins work.
* Other contract: the later plugin fails to init with a message naming both
  SDK versions and contracts; the plugin already running is unaffected.

The "other SDK" plugins are built with the glue constants patched and their
site directory's runtime version rewritten to match, which is exactly what a
build with another SDK release produces for the parts the check looks at.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import falco_plugin_tools.build as builder
import pytest
from falco_plugin._internal.version import GLUE_CONTRACT, SDK_VERSION
from falco_plugin_tools.build import BuildResult, build_plugin
from falco_plugin_tools.host import HostError, PluginLibrary
from harness import Built, project_dir

OTHER_RELEASE = "9.9.9"


def build_with_other_sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, contract: int) -> BuildResult:
    """The ``full`` fixture plugin as SDK ``OTHER_RELEASE`` with glue contract ``contract`` would build it."""
    with monkeypatch.context() as m:
        m.setattr(builder, "SDK_VERSION", OTHER_RELEASE)
        m.setattr(builder, "GLUE_CONTRACT", contract)
        result = build_plugin(project_dir("full"), tmp_path / f"contract{contract}")
    version = result.site_dir / "falco_plugin" / "_internal" / "version.py"
    text = version.read_text()
    text = re.sub(r'SDK_VERSION = "[^"]+"', f'SDK_VERSION = "{OTHER_RELEASE}"', text)
    text = re.sub(r"GLUE_CONTRACT = \d+", f"GLUE_CONTRACT = {contract}", text)
    version.write_text(text)  # its hash-checked .pyc no longer matches: Python reads the source
    return result


def run_two(chost: Path, first: Path, second: Path) -> subprocess.CompletedProcess[str]:
    """``first`` (dummy_py, started first: its runtime is the one imported) then ``second`` (fxt_full)."""
    return subprocess.run(
        [
            *(str(chost), str(first), "--open", '{"start": 0, "maxEvents": 5}', "--fields", "dummy.strvalue"),
            *("--lib", str(second), "--open", '{"count": 3, "start": 1}', "--fields", "full.payload"),
        ],
        capture_output=True,
        text=True,
        env={},
        timeout=60,
    )


def test_a_plugin_of_another_sdk_release_with_the_same_contract_joins_and_both_work(
    built: Built, chost: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = build_with_other_sdk(tmp_path, monkeypatch, GLUE_CONTRACT)
    out = run_two(chost, built("dummy").library, other.library)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.splitlines()[-2:] == ["dummy_py done events=5 rc=2", "fxt_full done events=3 rc=2"]


def test_a_plugin_with_another_glue_contract_fails_init_naming_both_versions(
    built: Built, chost: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = build_with_other_sdk(tmp_path, monkeypatch, GLUE_CONTRACT + 1)
    out = run_two(chost, built("dummy").library, other.library)
    assert out.returncode == 1
    first_site = built("dummy").site_dir / "falco_plugin" / "__init__.py"
    assert (
        f"this library was built with falco-plugin-sdk {OTHER_RELEASE} (glue contract {GLUE_CONTRACT + 1}), "
        f"but the Python interpreter it joins already runs falco_plugin {SDK_VERSION} (glue contract "
        f"{GLUE_CONTRACT}, from {first_site}), loaded by another Python plugin"
    ) in out.stderr


def test_the_plugin_already_running_keeps_running_when_an_incompatible_one_fails(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = build_with_other_sdk(tmp_path, monkeypatch, GLUE_CONTRACT + 1)
    with PluginLibrary.load(built("dummy").library) as lib, lib.init('{"jitter": 0}') as plugin:
        with plugin.open('{"start": 1, "maxEvents": 4}') as capture:
            alone = [plugin.extract(e, "dummy.value") for e in capture.events()]
        with plugin.open('{"start": 1, "maxEvents": 4}') as capture:
            events = capture.events()
            values = [plugin.extract(next(events), "dummy.value")]
            with PluginLibrary.load(other.library) as incompatible:
                with pytest.raises(HostError, match=r"glue contract .*rebuild them with one SDK release"):
                    incompatible.init("")
            values += [plugin.extract(e, "dummy.value") for e in events]
    assert len(alone) == 4 and values == alone
