"""A plugin library loaded by a plain C host (like Falco) in an empty environment.

The C host (``falco_plugin_tools.testing``'s ``run_chost``) dlopens the library,
inits it, reads its source, extracts fields, then closes, destroys, dlcloses
and exits. Nothing may depend on the environment the library was built in
(no PYTHONPATH, no virtualenv), touch the host's signal handlers, print to
the host's stderr, or keep the process from exiting.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools.build import build_plugin
from harness import Built, RunChost, event_lines, field_values, project_dir


def test_cold_start_in_an_empty_environment_prints_every_event(built: Built, run_chost: RunChost) -> None:
    lib = built("dummy").library
    fields = "dummy.value,dummy.strvalue"
    out = run_chost(lib, "--open", '{"start": 1, "maxEvents": 5}', "--fields", fields)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "plugin dummy_py 0.1.0"
    assert len(event_lines(out.stdout)) == 5
    values = field_values(out.stdout, fields)
    assert values["dummy.value"] == values["dummy.strvalue"]
    assert all(v.isdigit() for v in values["dummy.value"])
    assert lines[-1] == "done events=5 rc=2"  # rc 2: the source reached EOF


def test_plugin_leaves_the_host_signal_handlers_alone(built: Built, run_chost: RunChost) -> None:
    out = run_chost(built("full").library, "--open", '{"count": 2}')
    assert "signals: unchanged" in out.stdout.splitlines()


@pytest.mark.parametrize("plugin", ["dummy", "full", "source_only", "legacy"])
def test_host_stderr_stays_empty_on_success(built: Built, run_chost: RunChost, plugin: str) -> None:
    out = run_chost(built(plugin).library, "-n", "3")
    assert (out.returncode, out.stderr) == (0, "")


def test_extract_only_plugin_inits_and_unloads_cleanly(built: Built, run_chost: RunChost) -> None:
    out = run_chost(built("extract_only").library, "--config", '{"name": "x"}')
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.splitlines()[-1] == "done events=0 rc=no-source"


@pytest.mark.parametrize(
    "config",
    [
        pytest.param('{"daemon": true}', id="daemon-threads"),
        pytest.param('{"daemon": false}', id="non-daemon-threads"),
        pytest.param('{"daemon": true, "busy": true}', id="daemon-threads-spinning-on-the-gil"),
        pytest.param('{"daemon": false, "busy": true}', id="non-daemon-threads-spinning-on-the-gil"),
    ],
)
def test_host_exits_zero_after_dlclose_while_plugin_threads_still_run(
    built: Built, run_chost: RunChost, config: str
) -> None:
    out = run_chost(built("threaded").library, "--config", config)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.splitlines()[-1] == "done events=5 rc=2"


def test_a_plugin_thread_dying_of_an_exception_does_not_affect_the_host(built: Built, run_chost: RunChost) -> None:
    out = run_chost(built("threaded").library, "--config", '{"crash": true}')
    assert out.returncode == 0
    assert out.stdout.splitlines()[-1] == "done events=5 rc=2"


@pytest.mark.parametrize("config", ['{"crash": true}', '{"warn": true}'], ids=["thread-exception", "warning"])
def test_plugin_thread_exceptions_and_warnings_go_to_the_host_log_not_stderr(
    built: Built, run_chost: RunChost, config: str
) -> None:
    out = run_chost(built("threaded").library, "--config", config)
    assert out.stderr == ""


def test_copied_build_output_loads_after_the_original_is_deleted(tmp_path: Path, run_chost: RunChost) -> None:
    result = build_plugin(project_dir("source_only"), tmp_path / "build")
    elsewhere = tmp_path / "elsewhere" / "nested"
    elsewhere.mkdir(parents=True)
    shutil.copy2(result.library, elsewhere)
    shutil.copytree(result.site_dir, elsewhere / result.site_dir.name)
    shutil.rmtree(tmp_path / "build")

    out = run_chost(elsewhere / result.library.name, "-n", "4")
    assert (out.returncode, out.stderr) == (0, "")
    assert len(event_lines(out.stdout)) == 4


def test_library_reached_through_a_symlink_finds_its_site_dir(
    built: Built, run_chost: RunChost, tmp_path: Path
) -> None:
    # Plugin directories often hold symlinks to versioned installs: the site
    # dir lives next to the real file, not next to the link.
    lib = built("source_only").library
    link = tmp_path / "libalias.so"
    os.symlink(lib, link)
    out = run_chost(link, "-n", "2")
    assert (out.returncode, out.stderr) == (0, "")
    assert len(event_lines(out.stdout)) == 2


def _without_site_dir(built: Built, tmp_path: Path) -> Path:
    lib = built("source_only").library
    shutil.copy2(lib, tmp_path / lib.name)
    return tmp_path / lib.name


def test_missing_site_dir_fails_init_naming_the_directory(built: Built, run_chost: RunChost, tmp_path: Path) -> None:
    lib = _without_site_dir(built, tmp_path)
    out = run_chost(lib, "-n", "1")
    assert out.returncode == 1  # a plugin failure reported by the host, not a crash
    assert out.stderr.startswith("error: could not initialize plugin: init: ")
    assert str(tmp_path / "libfxt_source_only.site") in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.splitlines()) == 1


def test_missing_site_dir_error_says_the_directory_is_missing(
    built: Built, run_chost: RunChost, tmp_path: Path
) -> None:
    out = run_chost(_without_site_dir(built, tmp_path), "-n", "1")
    assert "_cffi_backend" not in out.stderr
    assert any(word in out.stderr for word in ("missing", "does not exist", "not found"))


def test_plugin_exception_reaches_the_host_as_one_line_without_traceback(built: Built, run_chost: RunChost) -> None:
    out = run_chost(built("faulty").library, "--config", '{"fail": ["next_batch"]}')
    assert out.returncode == 1
    assert out.stderr == "error: next_batch: next_batch: ValueError: injected failure in next_batch\n"
    assert out.stdout.splitlines()[-1] == "done events=0 rc=1"


def test_tracebacks_go_to_the_host_log_at_debug_severity(built: Built, run_chost: RunChost) -> None:
    # CHOST_LOG makes the C host print what the plugin sends to its log_fn.
    out = run_chost(built("faulty").library, "--config", '{"fail": ["next_batch"]}', env={"CHOST_LOG": "1"})
    debug = [line for line in out.stderr.splitlines() if line.startswith("log[7] fxt_faulty: ")]
    assert debug and debug[0].endswith("next_batch: ValueError: injected failure in next_batch")
    assert "Traceback (most recent call last):" in out.stderr
    assert 'fxt_faulty/plugin.py", line' in out.stderr


EDITS: dict[str, tuple[Callable[[str], str], str]] = {
    # The fields are baked into the library as C constants: serving other
    # fields from newer Python code would hand the host wrong field ids.
    "changed-fields": (
        lambda src: src.replace('"The second word, located in the payload"', '"Changed"'),
        "PluginError: the declarations of fxt_legacy.plugin:LegacyPlugin differ from those this library was built with;"
        " rebuild the plugin",
    ),
    "missing-dependency": (
        lambda src: src.replace(
            "from __future__ import annotations\n",
            "from __future__ import annotations\n\nimport fxt_missing_dependency\n",
            1,
        ),
        "ModuleNotFoundError: No module named 'fxt_missing_dependency'",
    ),
}


def _edited_copy(built: Built, tmp_path: Path, edit: str) -> Path:
    """A copy of the legacy fixture's build output whose Python code was edited after the build."""
    result = built("legacy")
    shutil.copy2(result.library, tmp_path)
    site = tmp_path / result.site_dir.name
    shutil.copytree(result.site_dir, site)
    source = site / "fxt_legacy" / "plugin.py"
    source.write_text(EDITS[edit][0](source.read_text()))
    return tmp_path / result.library.name


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_plugin_whose_code_cannot_be_loaded_fails_init_cleanly(
    built: Built, run_chost: RunChost, tmp_path: Path, edit: str
) -> None:
    out = run_chost(_edited_copy(built, tmp_path, edit), "-n", "1")
    assert out.returncode == 1
    assert out.stderr.startswith(
        "error: could not initialize plugin: init: cannot load fxt_legacy.plugin:LegacyPlugin: "
    )
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_plugin_whose_code_cannot_be_loaded_says_why(
    built: Built, run_chost: RunChost, tmp_path: Path, edit: str
) -> None:
    out = run_chost(_edited_copy(built, tmp_path, edit), "-n", "1")
    assert out.stderr == (
        f"error: could not initialize plugin: init: cannot load fxt_legacy.plugin:LegacyPlugin: {EDITS[edit][1]}\n"
    )
