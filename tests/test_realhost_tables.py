"""State tables in the real libsinsp (Falco 0.44.1, libs 0.25.4), replaying a capture.

The cold path our Python host only emulates, checked against the real one:
a parser adds columns to libsinsp's ``threads`` table and fills them while a
capture replays, and fields reading them (and libsinsp's own ``args`` and
``file_descriptors`` subtables) render in Falco's rule output; a table one
plugin exports is read by another. Skipped when the binaries are absent:
set ``FALCO`` (and ``SINSP_EXAMPLE``) or put ``shared/realhost`` beside the repo.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from harness import REPO, Built


def _realhost_binary(env: str, name: str) -> Path:
    path = Path(os.environ[env]) if os.environ.get(env) else REPO.parent / "shared" / "realhost" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"{name} not found (set {env} or put shared/realhost beside the repository)")
    probe = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=60)
    if "error while loading shared libraries" in probe.stderr:
        pytest.skip(f"{path} cannot run here: {probe.stderr.strip()} (run shared/realhost/install-runtime)")
    return path


def _capture(binary: Path) -> Path:
    capture = binary.parent.parent / "captures" / "curl_google.scap"
    if not capture.is_file():
        pytest.skip(f"{capture} not found")
    return capture


def _falco(
    tmp_path: Path, plugins: list[tuple[str, Path]], rule: str, output: str, init_config: str = "{}", extra: str = ""
) -> str:
    falco = _realhost_binary("FALCO", "falco")
    capture = _capture(falco)
    entries = "".join(
        f"  - name: {name}\n    library_path: {lib}\n    init_config: '{init_config}'\n" for name, lib in plugins
    )
    (tmp_path / "falco.yaml").write_text(
        "engine:\n  kind: replay\n  replay:\n"
        f"    capture_file: {capture}\n"
        f"load_plugins: [{', '.join(n for n, _ in plugins)}]\n"
        f"plugins:\n{entries}"
        f"rules_files: [{tmp_path / 'rules.yaml'}]\n"
        "stdout_output: {enabled: true}\npriority: debug\n"
        f"{extra}"
    )
    (tmp_path / "rules.yaml").write_text(
        f'- rule: tables\n  desc: state tables\n  condition: {rule}\n  output: "{output}"\n  priority: WARNING\n'
    )
    done = subprocess.run([str(falco), "-c", str(tmp_path / "falco.yaml")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_falco_renders_a_column_a_parser_added_to_threads(built: Built, tmp_path: Path) -> None:
    lib = built("tables_parse").library
    out = _falco(
        tmp_path,
        [("fxt_tables", lib)],
        "evt.type = execve and evt.dir = < and proc.name = curl",
        "curl tag=%fxt.tag count=%fxt.count comm=%fxt.comm",
    )
    assert "Warning curl tag=curl#1 count=1 comm=curl" in out, out


def test_an_accessor_of_another_table_is_refused_in_falco_not_a_crash(built: Built, tmp_path: Path) -> None:
    """Each threads entry is read with a file_descriptors accessor: libsinsp would read a foreign offset
    (Falco died with SIGSEGV); the glue refuses it with a TableError, so parse fails and Falco carries on."""
    out = _falco(
        tmp_path,
        [("fxt_tables", built("tables_parse").library)],
        "evt.type = execve and evt.dir = < and proc.name = curl",
        "curl comm=%fxt.comm",
        init_config='{"misuse": "foreign_read"}',
    )
    assert "Warning curl comm=curl" in out, out


@pytest.mark.parametrize("libs_logger", [True, False])
def test_a_failing_parser_is_logged_once_in_falco_with_libs_logger(
    built: Built, tmp_path: Path, libs_logger: bool
) -> None:
    """libsinsp ignores a failed parse_event: the SDK logs the first failure at warning through the
    host's logger, which Falco prints when libs_logger is enabled (at warning severity or lower)."""
    out = _falco(
        tmp_path,
        [("fxt_tables", built("tables_parse").library)],
        "evt.type = execve and evt.dir = < and proc.name = curl",
        "curl comm=%fxt.comm",
        init_config='{"misuse": "bad_value"}',
        extra=f"libs_logger: {{enabled: {str(libs_logger).lower()}, severity: warning}}\nlog_stderr: true\n"
        "log_level: info\n",
    )
    message = "parse_event: writing field fxt.count of table threads: expected uint64, got str"
    assert out.count(message) == (1 if libs_logger else 0), out


def test_an_unknown_table_reads_the_same_in_falco_as_in_the_python_host(built: Built, tmp_path: Path) -> None:
    """libsinsp refuses a table it does not have without a reason; the SDK's message names what the host has."""
    falco = _realhost_binary("FALCO", "falco")
    capture = _capture(falco)
    lib = built("tables_parse").library
    (tmp_path / "falco.yaml").write_text(
        f"engine:\n  kind: replay\n  replay:\n    capture_file: {capture}\nload_plugins: [fxt_tables]\n"
        f'plugins:\n  - name: fxt_tables\n    library_path: {lib}\n    init_config: \'{{"misuse": "unknown_table"}}\'\n'
        "rules_files: []\n"
    )
    done = subprocess.run([str(falco), "-c", str(tmp_path / "falco.yaml")], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "opening table no_such_table with int64 keys: the host has no table of that name (it has: " in (
        done.stdout + done.stderr
    ), done.stdout + done.stderr


@pytest.mark.parametrize("which", ["lo", "hi", "under", "over"])
def test_falco_stores_each_integer_width_to_both_ends_and_refuses_one_past(
    built: Built, tmp_path: Path, which: str
) -> None:
    """The same writes as test_tables' through libsinsp's own tables (what the glue refuses never reaches it)."""
    from test_tables import BOUNDS

    out = _falco(
        tmp_path,
        [("fxt_tables", built("tables_parse").library)],
        "evt.type = execve and evt.dir = < and proc.name = curl",
        "widths %fxt.widths",
        init_config=f'{{"misuse": "widths:{which}"}}',
    )
    assert f"Warning widths {BOUNDS[which]}" in out, out


def test_falco_lets_a_plugin_read_a_table_another_exported(built: Built, tmp_path: Path) -> None:
    out = _falco(
        tmp_path,
        [("fxt_export", built("tables_export").library), ("fxt_reader", built("tables_reader").library)],
        "evt.type = execve and evt.dir = < and proc.name = curl",
        "rows=%reader.size seven=%reader.seven",
    )
    assert "Warning rows=1 seven=seven/1" in out, out


def test_libsinsp_subtables_are_read_while_replaying(built: Built) -> None:
    example = _realhost_binary("SINSP_EXAMPLE", "sinsp-example")
    capture = _capture(example)
    lib = built("tables_parse").library
    done = subprocess.run(
        [
            str(example),
            "-s",
            str(capture),
            "-p",
            f"{lib}|{{}}",
            "-o",
            "%evt.num %proc.name %fxt.count %fxt.args %fxt.fdnames",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    sysdig = [line for line in done.stdout.splitlines() if " sysdig " in line]
    assert sysdig, done.stdout[-2000:]
    last = sysdig[-1].split(" ", 3)
    assert int(last[2]) > 1  # the count grew event after event
    assert last[3].startswith("(-zw,curl.scap,proc.name=curl) (") and "/dev/sysdig0" in last[3]


def test_the_python_host_fed_from_the_capture_agrees_with_falco(built: Built) -> None:
    """The same plugin, the same capture, our host: threads kept by host/threads.py, fed into the table."""
    from falco_plugin_tools.host import HostEvent, PluginLibrary
    from falco_plugin_tools.host.scap import ScapReader
    from falco_plugin_tools.host.tables import TableRegistry, feed_thread, threads_table
    from falco_plugin_tools.host.threads import ThreadTable

    capture = _capture(_realhost_binary("FALCO", "falco"))
    reg = TableRegistry(threads_table())
    seen: list[str] = []
    with PluginLibrary.load(built("tables_parse").library) as lib, lib.init("{}", tables=reg) as plugin:
        with ScapReader(capture) as reader:
            state = ThreadTable(reader.processes)
            for t in state.threads.values():
                feed_thread(reg["threads"], t)
            for ev in reader.events():
                thread = state.process(ev)
                if thread is not None:
                    feed_thread(reg["threads"], thread)
                if ev.num is None:
                    continue
                event = HostEvent(ev.raw, num=ev.num, source="syscall")
                plugin.parse(event)
                if ev.type_name == "execve" and not ev.is_enter and thread is not None and thread.comm == "curl":
                    seen.append(f"tag={plugin.extract(event, 'fxt.tag')} count={plugin.extract(event, 'fxt.count')}")
    assert seen == ["tag=curl#1 count=1"]  # what Falco printed for the same rule
    assert reg.violations == []
