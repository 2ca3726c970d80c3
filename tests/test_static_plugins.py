"""Statically linked plugins: ``falco-plugin build --static-api SYMBOL`` makes ``lib<name>.a``
whose one exported symbol is the plugin's ``plugin_api`` struct, and an application embedding
libsinsp registers it with ``sinsp::register_plugin(const plugin_api*)``.

Checked in real libsinsp: a plugin registered by its struct reads the same events and fields as
its library loaded by path; two Python plugins linked into one program, each by its own struct,
replay a capture together; the plugin finds its Python packages beside the program, or where an
environment variable says, and says which when they are missing.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from falco_plugin_tools.build import BuildError
from falco_plugin_tools.build.static import (
    API_SLOTS,
    api_layout,
    build_static_plugin,
    link_flags,
    site_env,
    static_link_flags,
)
from falco_plugin_tools.cli import main as cli
from falco_plugin_tools.host.runners import SinspHost
from falco_plugin_tools.host.sinsp import SinspUnavailableError, compile_sinsphost, find_sinsp_dir
from harness import REPO, Built, project_dir

CAPTURE = REPO.parent / "shared" / "captures" / "curl_google.scap"
REPLAY_APP = Path(__file__).parent / "static_app" / "replay.cpp"
CURL_EXECVE = "evt.type = execve and evt.dir = < and proc.name = curl"
DUMMY_RUN = {
    "init_config": '{"jitter": 0}',
    "open_params": '{"start": 3, "maxEvents": 5}',
    "fields": ["evt.num", "dummy.value", "dummy.divisible[2]", "dummy.divisible", "evt.plugininfo"],
}


@dataclass(frozen=True)
class Archives:
    out: Path
    dummy: Path
    tables: Path


@pytest.fixture(scope="session")
def sinsp_dir() -> Path:
    try:
        return find_sinsp_dir(REPO)
    except SinspUnavailableError as exc:
        pytest.skip(f"libsinsp unavailable: {exc}")


@pytest.fixture(scope="session")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Archives:
    out = tmp_path_factory.mktemp("static")
    # dummy_py through the command line, the fixture through the function.
    assert cli(["build", str(project_dir("dummy")), "--out", str(out), "--static-api", "dummy_py_api"]) == 0
    tables = build_static_plugin(project_dir("tables_parse"), out, symbol="fxt_tables_api")
    return Archives(out=out, dummy=out / "libdummy_py.a", tables=tables.archive)


def beside_the_sites(program: Path, folder: Path, name: str) -> Path:
    """The program copied into the archives' folder, where their lib<name>.site directories are."""
    target = folder / name
    shutil.copy2(program, target)
    return target


def global_symbols(archive: Path) -> list[str]:
    listed = subprocess.run(["nm", "-g", "--defined-only", str(archive)], capture_output=True, text=True, check=True)
    return [line.split()[-1] for line in listed.stdout.splitlines() if line.count(" ") == 2]


def test_an_archive_exports_its_plugin_api_struct_and_nothing_else(archives: Archives) -> None:
    assert global_symbols(archives.dummy) == ["dummy_py_api"]
    assert global_symbols(archives.tables) == ["fxt_tables_api"]
    assert (archives.out / "libdummy_py.site").is_dir()
    assert (archives.out / "libdummy_py.ldflags").read_text().split() == link_flags()


def test_a_plugin_with_json_fields_builds_statically_with_its_parser_and_the_parsers_notice(tmp_path: Path) -> None:
    # The static builder loads the project and compiles the glue as the shared one does: yyjson included.
    built = build_static_plugin(project_dir("json_fields"), tmp_path, symbol="fxt_json_api")
    assert global_symbols(built.archive) == ["fxt_json_api"]
    assert (built.site_dir / "_licenses" / "compiled_in" / "yyjson-0.10.0" / "LICENSE").is_file()


def test_the_struct_has_the_33_slots_of_plugin_api_3_12() -> None:
    assert len(API_SLOTS) == len(set(API_SLOTS)) == 33
    assert API_SLOTS[:3] == ("get_required_api_version", "get_init_schema", "init")
    assert API_SLOTS[-1] == "get_required_event_schema_version"
    # Before 3.10 there was no dump_state: libsinsp reads such a plugin's struct without it.
    assert api_layout(12) == api_layout(10) == API_SLOTS
    assert len(api_layout(9)) == 33 and "dump_state" not in api_layout(9) and api_layout(9)[-1] == ""


# Fixture plugins requiring API 3.9 (parsing + capture listening), 3.5 (metrics), 3.10 (async).
# (The async fixture's workers are off: how many events they emit before the run ends is timing.)
CAPABILITY_FIXTURES = {
    "tables_export": ("fxt_export_api", "{}"),
    "metrics": ("fxt_metrics_api", ""),
    "async_events": ("fxt_async_api", '{"workers": 0}'),
}


def test_every_entry_point_lands_where_libsinsp_reads_it_whatever_the_api_version(
    sinsp_dir: Path, built: Built, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = tmp_path_factory.mktemp("capabilities")
    built_static = [
        build_static_plugin(project_dir(name), out, symbol=s) for name, (s, _) in CAPABILITY_FIXTURES.items()
    ]
    program = compile_sinsphost(
        sinsp_dir, archives=[b.archive for b in built_static], extra_ldflags=link_flags(), name="capabilities"
    )
    host = SinspHost(beside_the_sites(program, out, "capabilities"))
    for name, (symbol, config) in CAPABILITY_FIXTURES.items():
        by_struct = host.records("-", struct=symbol, init_config=config, metrics=True, n=0)
        by_path = host.records(built(name).library, init_config=config, metrics=True, n=0)
        assert [r for r in by_struct if r["kind"] == "failure"] == []
        assert by_struct == by_path  # capabilities (which libsinsp derives from the slots) and metrics


def test_a_rebuild_is_byte_identical(archives: Archives, tmp_path: Path) -> None:
    # No temporary path in the object: a program linking it is then found in the build cache.
    again = build_static_plugin(project_dir("dummy"), tmp_path, symbol="dummy_py_api")
    assert again.archive.read_bytes() == archives.dummy.read_bytes()


def test_a_struct_name_that_is_not_a_c_identifier_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="must be a C identifier"):
        build_static_plugin(project_dir("dummy"), tmp_path, symbol="dummy-api")


def test_a_plugin_registered_by_its_struct_reads_what_its_library_reads_by_path(
    sinsp_dir: Path, archives: Archives, built: Built
) -> None:
    # One program: dummy_py linked in, and libdummy_py.so loadable by path.
    program = compile_sinsphost(sinsp_dir, archives=[archives.dummy], extra_ldflags=link_flags(), name="with-dummy")
    host = SinspHost(beside_the_sites(program, archives.out, "with-dummy"))
    by_struct = host.run("-", struct="dummy_py_api", **DUMMY_RUN)
    by_path = host.run(built("dummy").library, **DUMMY_RUN)
    assert by_struct.failure is None and len(by_struct.events) == 5
    assert by_struct.column("dummy.value") == ["4", "5", "6", "7", "8"]  # start + 1, on
    assert by_struct.events == by_path.events  # values, per-field errors and numbers alike


def test_without_its_python_packages_a_static_plugin_fails_init_saying_where_it_looked(
    sinsp_dir: Path, archives: Archives, tmp_path: Path
) -> None:
    program = compile_sinsphost(sinsp_dir, archives=[archives.dummy], extra_ldflags=link_flags(), name="with-dummy")
    alone = tmp_path / "with-dummy"
    shutil.copy2(program, alone)  # no libdummy_py.site beside it
    run = SinspHost(alone).run("-", struct="dummy_py_api", **DUMMY_RUN)
    assert run.failure is not None and run.failure.stage == "init"
    assert f"{tmp_path}/libdummy_py.site not found" in run.failure.message
    assert site_env("dummy_py") in run.failure.message


@pytest.mark.parametrize("libpython", ["shared", "static"])
def test_two_static_python_plugins_in_one_program_replay_a_capture(
    sinsp_dir: Path, archives: Archives, tmp_path: Path, libpython: str
) -> None:
    if not CAPTURE.is_file():
        pytest.skip(f"{CAPTURE} not found")
    try:
        python_flags = link_flags() if libpython == "shared" else static_link_flags()
    except BuildError as exc:
        pytest.skip(str(exc))
    program = compile_sinsphost(
        sinsp_dir,
        source=REPLAY_APP,
        archives=[archives.dummy, archives.tables],
        export_archives=False,  # the program names both structs in its code
        extra_ldflags=python_flags,
        name=f"replay-{libpython}-python",
    )
    needed = subprocess.run(["ldd", str(program)], capture_output=True, text=True, check=True).stdout
    assert ("libpython" in needed) == (libpython == "shared")
    # dummy_py finds its packages beside the program; fxt_tables where its variable says.
    alone = tmp_path / "replay"
    shutil.copy2(program, alone)
    shutil.copytree(archives.out / "libdummy_py.site", tmp_path / "libdummy_py.site")
    done = subprocess.run(
        [str(alone), str(CAPTURE), CURL_EXECVE, "%evt.num %proc.name tag=%fxt.tag count=%fxt.count"],
        capture_output=True,
        text=True,
        env={site_env("fxt_tables"): str(archives.out / "libfxt_tables.site")},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    # What the real Falco printed for the same rule with libfxt_tables.so (test_realhost_tables.py).
    assert done.stdout.splitlines() == [
        "registered dummy_py 0.1.0",
        "registered fxt_tables 0.1.0",
        "211 curl tag=curl#1 count=1",
    ]
