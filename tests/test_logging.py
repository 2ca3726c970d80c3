"""Plugin code logs through a standard ``logging.Logger`` whose records reach
the host's ``log_fn`` (Falco's log) with the plugin name and a matching severity."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from falco_plugin_tools.build import build_plugin
from falco_plugin_tools.host import LogRecord, PluginLibrary, Rc
from falco_plugin_tools.host.raw import Library, ffi
from harness import Built, RunChost

INFO, WARNING = 6, 4


def test_plugin_log_records_reach_the_host_log_with_their_severity(loaded: Callable[[str], Library]) -> None:
    lib = loaded("full")
    before = len(lib.logs)
    st = lib.init('{"prefix": "abc"}')
    assert st.rc == Rc.SUCCESS
    assert st.set_config('{"prefix": "xyz", "batch": 2}') == Rc.SUCCESS
    assert lib.logs[before:] == [
        (INFO, "fxt_full", "ready: prefix=abc"),
        (WARNING, "fxt_full", "reconfigured: prefix=xyz batch=2"),
    ]


def test_a_host_without_log_fn_is_fine(loaded: Callable[[str], Library]) -> None:
    lib = loaded("full")
    before = len(lib.logs)
    st = lib.init("{}", log=False)
    assert st.rc == Rc.SUCCESS
    assert lib.logs[before:] == []


def test_the_c_host_receives_plugin_logs(built: Built, run_chost: RunChost) -> None:
    out = run_chost(built("full").library, "-n", "1", env={"CHOST_LOG": "1"})
    assert out.returncode == 0
    assert out.stderr == "log[6] fxt_full: ready: prefix=full\n"


def test_a_plugin_thread_logging_after_destroy_never_reaches_the_host(loaded: Callable[[str], Library]) -> None:
    # The host may free the log owner right after destroy: calling log_fn then would be a use-after-free.
    lib = loaded("threaded")
    st = lib.init('{"log_after_destroy": true}')
    assert st.rc == Rc.SUCCESS
    before = len(lib.logs)
    st.destroy()
    time.sleep(0.3)  # the plugin's timer fires 50 ms after destroy
    assert lib.logs[before:] == []


def test_a_failed_init_is_not_followed_by_the_plugins_destroy(loaded: Callable[[str], Library]) -> None:
    lib = loaded("faulty")
    ok = lib.init('{"fail": []}')
    before = len(lib.logs)
    ok.destroy()
    assert (INFO, "fxt_faulty", "destroy ran") in lib.logs[before:]  # control: a live plugin's destroy runs

    before = len(lib.logs)
    failed = lib.init('{"fail": ["init"]}')
    assert failed.rc != Rc.SUCCESS
    failed.destroy()
    assert all(msg != "destroy ran" for _, _, msg in lib.logs[before:])


def test_a_state_dropped_without_destroy_still_receives_its_logs(loaded: Callable[[str], Library]) -> None:
    # The plugin keeps the owner pointer until destroy, whatever became of the host's object.
    lib = loaded("full")
    ptr = lib.init('{"prefix": "abc"}').state  # the State object goes, the plugin state stays
    gc.collect()
    before = len(lib.logs)
    config = ffi.new("char[]", b'{"prefix": "late", "batch": 1}')
    assert lib.call("set_config", ptr, ffi.new("ss_plugin_set_config_input *", {"config": config})) == Rc.SUCCESS
    assert lib.logs[before:] == [(WARNING, "fxt_full", "reconfigured: prefix=late batch=1")]


def test_the_python_host_forwards_a_python_plugins_log_line_once(
    built: Built, caplog: pytest.LogCaptureFixture
) -> None:
    # Forwarded records go to a Python logger, and a Python plugin's runtime
    # sends every record to its host: the host must not take its own record back (it used to, ~100 deep).
    with (
        caplog.at_level(logging.INFO, logger="falco_plugin_tools.host"),
        PluginLibrary.load(built("full").library) as lib,
        lib.init('{"prefix": "once"}', forward_logs=True) as handle,
    ):
        assert handle.logs == [LogRecord(INFO, "fxt_full", "ready: prefix=once")]


LIBRARY_LOGGER_PLUGIN = """
import logging

from falco_plugin import Event, ExtractPlugin, field


class LibraryLogger(ExtractPlugin):
    name = "fxt_library_logger"
    extract_event_sources = ("x",)

    def init(self, config: str) -> None:
        # What a dependency does (urllib3, a plugin module's own logger): Python would
        # print it on stderr through logging.lastResort.
        logging.getLogger("some.library").warning("a library's own warning")
        logging.getLogger("some.library").info("below the root logger's level")

    @field("fxt.one", "1")
    def one(self, event: Event) -> int:
        return 1
"""


def test_records_of_libraries_loggers_go_to_the_host_log_never_to_stderr(tmp_path: Path, run_chost: RunChost) -> None:
    package = tmp_path / "src" / "fxt_library_logger"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(LIBRARY_LOGGER_PLUGIN)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "fxt-library-logger"\nversion = "0.1.0"\ndependencies = ["falco-plugin-sdk"]\n\n'
        '[tool.falco-plugin]\nplugin = "fxt_library_logger.plugin:LibraryLogger"\n'
    )
    library = build_plugin(tmp_path, tmp_path / "out").library
    quiet = run_chost(library)
    assert (quiet.returncode, quiet.stderr) == (0, "")
    logged = run_chost(library, env={"CHOST_LOG": "1"})  # the C host prints its log_fn calls on stderr
    assert logged.stderr.splitlines() == ["log[4] fxt_library_logger: a library's own warning"]
