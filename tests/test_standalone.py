"""Standalone plugins (``falco-plugin build --standalone``): they carry their interpreter.

Three plugins (dummy_py, http_poll and the ``full`` fixture) are built
standalone into one directory, as they would sit in Falco's plugin directory
after unpacking their archives. The checks: the layout and what is pruned,
``$ORIGIN``-only rpaths and no path of the build machine in any file, the
minimum glibc recorded; then, as root, runs in a mount namespace where the
build's Python (``sys.base_prefix`` and the virtualenv) is hidden under an
empty tmpfs and no system ``libpython3.*`` can be loaded: the C host with
dummy_py and with http_poll over HTTPS from a private CA, two standalone
plugins in one process, a standalone plugin beside one built against the
build's Python, and the real Falco firing a rule.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from falco_plugin_tools import cli
from falco_plugin_tools.build import build_plugin
from falco_plugin_tools.build.standalone import BASE_LIBRARIES, DYNLOAD_DENYLIST, HOME_DIR, PLUGIN_METADATA
from harness import REPO, TESTS, Built, event_lines, field_values, project_dir

HTTP_POLL = REPO / "plugins" / "http_poll"
LIBPYTHON = f"libpython{sys.version_info.major}.{sys.version_info.minor}.so.1.0"
STDLIB = f"{HOME_DIR}/lib/python{sys.version_info.major}.{sys.version_info.minor}"
MISSING_HOME = re.compile(
    rf"{re.escape(LIBPYTHON)}: cannot open shared object file"
    rf"|{re.escape(HOME_DIR)}/ must sit next to the plugin library"
)
SYSTEM_LIB_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory holding three standalone plugins and their one shared interpreter home."""
    out = tmp_path_factory.mktemp("falco-plugins")
    for project in (project_dir("dummy"), HTTP_POLL, project_dir("full")):
        build_plugin(project, out, standalone=True)
    return out


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``full`` built against the build's Python (not standalone), for the mixed cases."""
    out = tmp_path_factory.mktemp("system-python-plugin")
    build_plugin(project_dir("full"), out)
    return out


def elf_files(root: Path) -> list[Path]:
    return [
        p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink() and p.read_bytes()[:4] == b"\x7fELF"
    ]


def dynamic(path: Path) -> tuple[list[str], list[str]]:
    """(NEEDED names, RPATH/RUNPATH entries) from ``readelf -d``."""
    text = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, check=True).stdout
    need = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", text)
    paths = [
        p
        for m in re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library (?:rpath|runpath): \[(.*?)\]", text)
        for p in m.split(":")
    ]
    return need, paths


# -- what a build writes ---------------------------------------------------------------------


def test_plugins_share_one_home_with_libpython_the_pruned_stdlib_and_grafted_libraries(plugin_dir: Path) -> None:
    names = sorted(p.name for p in plugin_dir.iterdir())
    assert names == sorted(
        [HOME_DIR, "libdummy_py.site", "libdummy_py.so", "libfxt_full.site", "libfxt_full.so",
         "libhttp_poll.site", "libhttp_poll.so"]
    )  # fmt: skip
    home = plugin_dir / HOME_DIR
    assert (home / "lib" / LIBPYTHON).is_file()
    stdlib = plugin_dir / STDLIB
    assert (stdlib / "os.pyc").is_file() and not (stdlib / "os.py").exists()  # bytecode only
    assert (stdlib / "json" / "__init__.pyc").is_file()
    for pruned in ("test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data", "site-packages"):
        assert not (stdlib / pruned).exists(), pruned
    assert not list(stdlib.glob("config-*")) and not list(stdlib.rglob("_sysconfigdata*"))
    assert not list(stdlib.rglob("tests")) and not list(stdlib.rglob("__pycache__"))
    dynload = {p.name.split(".")[0] for p in (stdlib / "lib-dynload").iterdir()}
    assert {"_ssl", "_hashlib", "_ctypes", "zlib", "_json", "select", "_socket"} <= dynload
    assert not [d for d in dynload if any(re.fullmatch(pat.replace("*", ".*"), d) for pat in DYNLOAD_DENYLIST)]
    grafted = {p.name.split("-")[0] for p in (home / "lib").glob("lib*-*.so*")}
    assert {"libssl", "libcrypto", "libffi", "libz"} <= grafted


def test_every_rpath_is_origin_relative_and_every_needed_library_is_in_the_bundle_or_the_base(
    plugin_dir: Path,
) -> None:
    files = elf_files(plugin_dir)
    assert len(files) > 50
    shipped = {p.name for p in files}
    problems = []
    for f in files:
        need, paths = dynamic(f)
        problems += [f"{f.relative_to(plugin_dir)}: rpath {p}" for p in paths if not p.startswith("$ORIGIN")]
        dirs = [Path(p.replace("$ORIGIN", str(f.parent))).resolve() for p in paths]
        for n in need:
            if BASE_LIBRARIES.match(n):
                continue
            if n not in shipped or not any((d / n).is_file() for d in dirs):
                problems.append(f"{f.relative_to(plugin_dir)}: needs {n}, not found through its rpath")
    assert not problems, "\n".join(problems)


def test_no_file_names_a_path_of_the_build_machine(plugin_dir: Path) -> None:
    """Not in ELF files (rpaths, compiled-in prefixes, debug info), nor in bytecode (source paths)."""
    forbidden = {sys.base_prefix, sys.prefix, str(REPO), str(plugin_dir)} - {"/", "/usr"}
    found = []
    for f in sorted(plugin_dir.rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            found += [f"{f.relative_to(plugin_dir)}: {p}" for p in forbidden if p.encode() in data]
    assert not found, "\n".join(found[:20])


def test_the_minimum_glibc_is_recorded_and_is_the_newest_symbol_version_any_elf_file_needs(plugin_dir: Path) -> None:
    newest = (2, 0)
    for f in elf_files(plugin_dir):
        text = subprocess.run(["objdump", "-T", str(f)], capture_output=True, text=True, check=True).stdout
        for major, minor in re.findall(r"\bGLIBC_(\d+)\.(\d+)", text):
            newest = max(newest, (int(major), int(minor)))
    for site in plugin_dir.glob("lib*.site"):
        meta = json.loads((site / PLUGIN_METADATA).read_text())
        assert meta["home"] == HOME_DIR
        assert meta["python"] == ".".join(map(str, sys.version_info[:3]))
        assert tuple(int(x) for x in meta["min_glibc"].split(".")) == newest, site.name


def test_a_library_without_its_home_fails_init_with_a_message(
    plugin_dir: Path, tmp_path: Path, run_chost: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    shutil.copy2(plugin_dir / "libdummy_py.so", tmp_path)
    shutil.copytree(plugin_dir / "libdummy_py.site", tmp_path / "libdummy_py.site")
    out = run_chost(tmp_path / "libdummy_py.so", "-n", "1")
    assert out.returncode == 1
    # Either the dynamic loader finds no libpython at all, or it finds a system one
    # and the glue says what is missing.
    assert MISSING_HOME.search(out.stderr), out.stderr


def _system_library(soname: str) -> Path | None:
    for d in SYSTEM_LIB_DIRS:
        if (Path(d) / soname).is_file():
            return Path(d) / soname
    return None


def test_a_site_dir_extension_gets_its_libraries_grafted_or_shared_with_the_home(
    plugin_dir: Path, tmp_path: Path
) -> None:
    """A plugin's own extension module needing libz (in the home) and libsqlite3 (not there)."""
    from falco_plugin_tools.build.standalone import fix_site_dir

    libz, sqlite = _system_library("libz.so.1"), _system_library("libsqlite3.so.0")
    cc = shutil.which("cc") or shutil.which("gcc")
    if libz is None or sqlite is None or cc is None:
        pytest.skip("needs a C compiler, libz.so.1 and libsqlite3.so.0 on this machine")
    site = tmp_path / "libfake.site"
    (site / "pkg").mkdir(parents=True)
    shutil.copytree(plugin_dir / HOME_DIR, tmp_path / HOME_DIR)
    src = tmp_path / "ext.c"
    src.write_text("int zlibVersion(void); int sqlite3_libversion_number(void);\n"
                   "int probe(void) { return zlibVersion() != 0 && sqlite3_libversion_number() > 0; }\n")  # fmt: skip
    ext = site / "pkg" / "ext.so"
    subprocess.run([cc, "-shared", "-fPIC", str(src), "-o", str(ext), str(libz), str(sqlite)], check=True)
    grafted = fix_site_dir(site, tmp_path / HOME_DIR)
    assert [g.split("-")[0] for g in grafted] == ["libsqlite3"]
    need, paths = dynamic(ext)
    home_libz = [p.name for p in (tmp_path / HOME_DIR / "lib").glob("libz-*.so.1")]
    assert sorted(n for n in need if not BASE_LIBRARIES.match(n)) == sorted([*home_libz, *grafted])
    assert paths == ["$ORIGIN/../_libs", f"$ORIGIN/../../{HOME_DIR}/lib"]
    # what was grafted ships with its Debian package's licence, listed in the plugin's SBOM
    sbom = json.loads((site / "_sbom.cdx.json").read_text())
    props = [{p["name"]: p["value"] for p in c["properties"]} | {"package": c["name"]} for c in sbom["components"]]
    (sqlite_entry,) = [
        p for p in props if p.get("falco-plugin-sdk:file", "").startswith("libfake.site/_libs/libsqlite3-")
    ]
    shipped = (tmp_path / sqlite_entry["falco-plugin-sdk:license-file"]).read_bytes()
    assert shipped == (Path("/usr/share/doc") / sqlite_entry["package"] / "copyright").read_bytes()
    # and it loads, from those paths only, in an empty environment
    probe = subprocess.run(
        [sys.executable, "-c", f"import ctypes; assert ctypes.CDLL({str(ext)!r}).probe() == 1"],
        capture_output=True, text=True, env={},
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr


# -- loading where the build's Python does not exist -----------------------------------------


def _hidden_paths() -> tuple[list[str], list[str]]:
    """Directories to cover with an empty tmpfs, and system libpython files to cover with /dev/null."""
    dirs = sorted({os.path.realpath(p) for p in (sys.base_prefix, sys.prefix)})
    files = sorted(
        {os.path.realpath(f) for d in SYSTEM_LIB_DIRS if os.path.isdir(d) for f in Path(d).glob("libpython3*.so*")}
    )
    return dirs, files


@pytest.fixture(scope="module")
def without_python() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run(cmd, ...)``: ``cmd`` with an empty environment in a mount namespace without the build's Python."""
    if os.geteuid() != 0:
        pytest.skip("hiding the build's Python needs root (unshare -m and mounts)")
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if not unshare or not mount:
        pytest.skip("unshare and mount (util-linux) are needed")
    dirs, files = _hidden_paths()
    if any(d in ("/", "/usr") for d in dirs):
        pytest.skip(f"the build's Python is the system's ({sys.base_prefix}): it cannot be hidden")
    script = ["set -e"]
    script += [f"{mount} -t tmpfs -o size=1m,mode=755 none {shlex.quote(d)}" for d in dirs]
    script += [f"{mount} --bind /dev/null {shlex.quote(f)}" for f in files]
    script.append('exec "$@"')
    probe = subprocess.run([unshare, "-m", "sh", "-c", "\n".join(script), "sh", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.strip()}")

    def run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [unshare, "-m", "sh", "-c", "\n".join(script), "sh", *cmd],
            capture_output=True,
            text=True,
            env={},
            timeout=timeout,
        )

    return run


Hidden = Callable[..., "subprocess.CompletedProcess[str]"]


def test_a_plugin_built_against_the_build_python_does_not_load_there(
    built: Built, chost: Path, without_python: Hidden
) -> None:
    """The control: in that namespace, an ordinary build has no Python to start."""
    out = without_python([str(chost), str(built("dummy").library), "-n", "1"])
    assert out.returncode == 1 and LIBPYTHON in out.stderr, out.stderr


def test_dummy_runs_in_the_c_host_without_the_build_python(
    plugin_dir: Path, chost: Path, without_python: Hidden
) -> None:
    fields = "dummy.value,dummy.strvalue,dummy.divisible[2]"
    out = without_python(
        [str(chost), str(plugin_dir / "libdummy_py.so"), "--open", '{"start": 1, "maxEvents": 5}', "--fields", fields]
    )
    assert (out.returncode, out.stderr) == (0, "")
    assert len(event_lines(out.stdout)) == 5
    values = field_values(out.stdout, fields)
    assert values["dummy.value"] == values["dummy.strvalue"]
    assert out.stdout.splitlines()[-1] == "done events=5 rc=2"


@pytest.fixture
def https_api(tmp_path: Path) -> Iterator[tuple[object, Path]]:
    """http_poll's fake API over HTTPS from a private CA (its test kit), and the CA file."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    kit_dir = str(HTTP_POLL / "tests")
    if kit_dir not in sys.path:
        sys.path.append(kit_dir)
    from httppoll_kit import FakeApi, make_tls_files, record

    tls = make_tls_files(tmp_path)
    api = FakeApi(tls=tls).start()
    api.records = [record(1), record(2), record(3)]
    yield api, tls.ca
    api.stop()


def test_http_poll_fetches_over_https_with_ssl_and_requests_from_the_bundle(
    plugin_dir: Path, chost: Path, without_python: Hidden, https_api: tuple[object, Path]
) -> None:
    api, ca = https_api
    params = {"url": api.url, "interval": 0.05, "records": "/data", "id": "/id", "max_polls": 1}  # type: ignore[attr-defined]
    config = {"ca_bundle": str(ca), "retries": 1, "backoff_initial": 0.01}
    out = without_python(
        [str(chost), str(plugin_dir / "libhttp_poll.so"), "--config", json.dumps(config),
         "--open", json.dumps(params), "--fields", "http_poll.id,http_poll.status"]
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert field_values(out.stdout, "http_poll.id,http_poll.status") == {
        "http_poll.id": ["evt-1", "evt-2", "evt-3"],
        "http_poll.status": ["200", "200", "200"],
    }


#: What the C host runs of each plugin in the two-library cases: open params and a field.
RUNS = {
    "libdummy_py.so": ("--open", '{"maxEvents": 3}', "--fields", "dummy.strvalue"),
    "libfxt_full.so": ("--open", '{"count": 2}', "--fields", "full.payload"),
}


def _two(chost: Path, first: Path, second: Path) -> list[str]:
    """The C host with two libraries in one process (its ``--lib``), empty environment."""
    return [str(chost), str(first), *RUNS[first.name], "--lib", str(second), *RUNS[second.name]]


def _done(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if " done " in line]


def test_two_standalone_plugins_share_one_interpreter_without_the_build_python(
    plugin_dir: Path, chost: Path, without_python: Hidden
) -> None:
    out = without_python(_two(chost, plugin_dir / "libdummy_py.so", plugin_dir / "libfxt_full.so"))
    assert (out.returncode, out.stderr) == (0, "")
    assert _done(out.stdout) == ["dummy_py done events=3 rc=2", "fxt_full done events=2 rc=2"]
    assert "fxt_full evt 2 full.payload=full 1 t0,t1" in out.stdout.splitlines()


def test_a_standalone_plugin_and_one_built_against_the_system_python_share_it_where_it_exists(
    plugin_dir: Path, mixed_dir: Path, chost: Path
) -> None:
    """With the build's Python present both orders work: the dynamic loader maps one
    libpython3.11.so.1.0 (same soname) and the second plugin joins the interpreter
    the first started."""
    for a, b in ((plugin_dir / "libdummy_py.so", mixed_dir / "libfxt_full.so"),
                 (mixed_dir / "libfxt_full.so", plugin_dir / "libdummy_py.so")):  # fmt: skip
        out = subprocess.run(_two(chost, a, b), capture_output=True, text=True, env={}, timeout=60)
        assert (out.returncode, out.stderr) == (0, ""), (a, b)
        assert len(_done(out.stdout)) == 2


def test_where_the_system_python_is_missing_a_plugin_that_needs_it_fails_to_load_cleanly(
    plugin_dir: Path, mixed_dir: Path, chost: Path, without_python: Hidden
) -> None:
    """Loaded first, the system-Python plugin cannot find libpython: the host gets a dlopen
    error naming it (no crash). Loaded after a standalone plugin it joins the bundled one."""
    first = without_python(_two(chost, mixed_dir / "libfxt_full.so", plugin_dir / "libdummy_py.so"))
    assert first.returncode == 1 and LIBPYTHON in first.stderr, first.stderr
    second = without_python(_two(chost, plugin_dir / "libdummy_py.so", mixed_dir / "libfxt_full.so"))
    assert (second.returncode, second.stderr) == (0, "")
    assert _done(second.stdout) == ["dummy_py done events=3 rc=2", "fxt_full done events=2 rc=2"]


def _falco() -> Path:
    """$FALCO, or ``<repo>/../shared/realhost/falco`` (from a git worktree, the first ``shared/`` above)."""
    env = os.environ.get("FALCO")
    if env:
        return Path(env)
    for parent in REPO.parents:
        if (parent / "shared" / "realhost" / "falco").is_file():
            return parent / "shared" / "realhost" / "falco"
    pytest.skip("no Falco: neither $FALCO nor <repo>/../shared/realhost/falco")


def test_falco_loads_the_standalone_plugin_without_the_build_python_and_rules_fire(
    plugin_dir: Path, tmp_path: Path, without_python: Hidden
) -> None:
    falco = _falco()
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- rule: Standalone dummy sample\n"
        "  desc: every dummy_py sample\n"
        "  condition: dummy.value > 0\n"
        "  output: standalone sample value=%dummy.value str=%dummy.strvalue\n"
        "  priority: WARNING\n"
        "  source: dummy_py\n"
    )
    config = tmp_path / "falco.yaml"
    config.write_text(
        json.dumps(
            {
                "engine": {"kind": "nodriver"},
                "plugins": [
                    {
                        "name": "dummy_py",
                        "library_path": str(plugin_dir / "libdummy_py.so"),
                        "init_config": "",
                        "open_params": '{"start": 1, "maxEvents": 6}',
                    }
                ],
                "load_plugins": ["dummy_py"],
                "rules_files": [str(rules)],
                "stdout_output": {"enabled": True},
                "json_output": False,
            }
        )
    )
    out = without_python([str(falco), "-c", str(config), "--disable-source", "syscall"])
    if "error while loading shared libraries" in out.stderr:
        pytest.skip(f"Falco cannot start here (run realhost/install-runtime): {out.stderr.strip()}")
    assert out.returncode == 0, out.stdout + out.stderr
    fired = re.findall(r"Warning standalone sample value=(\d+) str=(\d+)", out.stdout)
    assert len(fired) == 6 and all(a == b for a, b in fired), out.stdout


# -- archives ----------------------------------------------------------------------------------


def test_a_standalone_archive_unpacks_to_the_plugin_directory_layout_and_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = tmp_path / "dist"
    code = cli.main(
        ["package", str(project_dir("dummy")), "--build", "--out", str(dist),
         "--registry", str(REPO / "registry" / "plugins.yaml")]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    archive = dist / f"dummy_py-0.1.0-linux-{platform.machine()}.tar.gz"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert {n.split("/")[0] for n in names} == {"libdummy_py.so", "libdummy_py.site", HOME_DIR}
    assert f"{HOME_DIR}/lib/{LIBPYTHON}" in names and f"{STDLIB}/os.pyc" in names
    capsys.readouterr()
    assert cli.main(["verify", str(archive)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"ok     {archive.name}: libdummy_py.so")
    assert printed.count("\n  evt ") == 5


def test_archives_of_separate_builds_agree_on_every_file_of_the_shared_home(tmp_path: Path) -> None:
    """So that unpacking them into one plugin directory, in any order, leaves one consistent interpreter."""
    from falco_plugin_tools.package import package_plugin
    from falco_plugin_tools.registry import read_library

    contents = []
    for project in (project_dir("dummy"), project_dir("full")):
        out = tmp_path / project.name
        library = build_plugin(project, out, standalone=True).library
        (archive, *_) = package_plugin(project, library, read_library(library), tmp_path / "dist")
        with tarfile.open(archive.path) as tar:
            contents.append(
                {
                    m.name: (tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                    for m in tar.getmembers()
                    if m.name.split("/")[0] == HOME_DIR
                }
            )
    assert len(contents[0]) > 500
    assert contents[0].keys() == contents[1].keys()
    assert [n for n in contents[0] if contents[0][n] != contents[1][n]] == []


def test_verify_fails_with_the_plugins_message_when_it_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], plugin_dir: Path
) -> None:
    """An archive missing the interpreter home (a standalone library without python3.X/)."""
    archive = tmp_path / "broken-0.1.0-linux-x86_64.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(plugin_dir / "libdummy_py.so", "libdummy_py.so")
        tar.add(plugin_dir / "libdummy_py.site", "libdummy_py.site")
    assert cli.main(["verify", str(archive)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"FAILED {archive.name}: libdummy_py.so")
    assert MISSING_HOME.search(captured.out), captured.out


def test_verify_refuses_an_archive_without_a_library(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "empty.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(TESTS / "harness.py", "harness.py")
    assert cli.main(["verify", str(archive)]) == 1
    assert "no lib<name>.so at the top of the archive" in capsys.readouterr().err
