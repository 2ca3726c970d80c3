"""``build_plugin`` refuses a project it cannot build with a message that says
what to fix, and checks the plugin class before compiling anything."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from falco_plugin._internal.spec import SpecError
from falco_plugin_tools import cli
from falco_plugin_tools.build import BuildError, build_plugin, plugin_target

GOOD_CLASS = """
from falco_plugin import Batch, SourceInstance, SourcePlugin


class Inst(SourceInstance):
    def next_batch(self) -> Batch:
        return []


class P(SourcePlugin):
    name = "{name}"
    id = 999_901
    event_source = "{name}"

    def open(self, params: str) -> Inst:
        return Inst()
"""


def project(
    root: Path, package: str, *, table: str | None = None, body: str | None = None, deps: str = '"falco-plugin-sdk"'
) -> Path:
    """A plugin project in ``root`` with one module ``<package>/plugin.py``."""
    table = table if table is not None else f'[tool.falco-plugin]\nplugin = "{package}.plugin:P"\n'
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{package.replace("_", "-")}"\nversion = "0.1.0"\ndependencies = [{deps}]\n\n{table}'
    )
    pkg = root / "src" / package
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text(body if body is not None else GOOD_CLASS.format(name=package))
    return root


def test_a_directory_without_pyproject_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"pyproject\.toml not found"):
        build_plugin(tmp_path)


@pytest.mark.parametrize(
    "table",
    [
        "",
        "[tool.falco-plugin]\n",
        '[tool.falco-plugin]\nplugin = "no_colon_here"\n',
        "[tool.falco-plugin]\nplugin = 3\n",
    ],
)
def test_a_project_must_name_its_plugin_class(tmp_path: Path, table: str) -> None:
    project(tmp_path, "fxt_build_target", table=table)
    with pytest.raises(BuildError, match=r'set \[tool\.falco-plugin\] plugin = "package\.module:PluginClass"'):
        plugin_target(tmp_path)


def test_a_project_without_a_name_is_refused(tmp_path: Path) -> None:
    project(tmp_path, "fxt_build_noname")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('name = "fxt-build-noname"\n', ""))
    with pytest.raises(BuildError, match=r"\[project\] name is missing"):
        build_plugin(tmp_path, tmp_path / "out")


def test_an_unimportable_plugin_module_is_refused_naming_the_target(tmp_path: Path) -> None:
    project(tmp_path, "fxt_build_unimportable", body="import fxt_build_no_such_module\n")
    with pytest.raises(BuildError, match=r"cannot import fxt_build_unimportable\.plugin:P: No module named"):
        build_plugin(tmp_path, tmp_path / "out")


def test_a_missing_plugin_class_is_refused(tmp_path: Path) -> None:
    project(tmp_path, "fxt_build_noclass", body="X = 1\n")
    with pytest.raises(BuildError, match=r"cannot import fxt_build_noclass\.plugin:P"):
        build_plugin(tmp_path, tmp_path / "out")


def test_an_invalid_plugin_class_is_refused_before_compiling(tmp_path: Path) -> None:
    body = GOOD_CLASS.format(name="fxt_build_badid").replace("id = 999_901", "id = 0")
    project(tmp_path, "fxt_build_badid", body=body)
    with pytest.raises(SpecError, match=r"P\.id must be a positive 32-bit integer"):
        build_plugin(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_dependency_missing_from_the_environment_is_refused(tmp_path: Path) -> None:
    project(tmp_path, "fxt_build_missing_dep", deps='"falco-plugin-sdk", "fxt-build-not-installed-anywhere"')
    with pytest.raises(BuildError, match="fxt-build-not-installed-anywhere is required but not installed"):
        build_plugin(tmp_path, tmp_path / "out")


def test_a_built_site_dir_holds_the_plugin_and_the_sdk_runtime_precompiled(tmp_path: Path) -> None:
    project(tmp_path, "fxt_build_ok")
    result = build_plugin(tmp_path, tmp_path / "out")
    assert result.library == tmp_path / "out" / "libfxt_build_ok.so"
    assert result.site_dir == tmp_path / "out" / "libfxt_build_ok.site"
    for module in ("fxt_build_ok/plugin.py", "falco_plugin/_internal/runtime.py"):
        assert (result.site_dir / module).is_file(), module
    # The SDK's tooling and cffi's Python half stay out (test_site_dir.py has the details).
    assert not (result.site_dir / "falco_plugin_tools").exists()
    assert not (result.site_dir / "cffi").exists()
    assert list(result.site_dir.glob("_cffi_backend*.so"))
    # Shipped bytecode, hash-checked (flags 0b11) so a copy with other mtimes still uses it.
    pycs = list(result.site_dir.rglob("__pycache__/plugin.*.pyc"))
    assert pycs
    assert all(int.from_bytes(p.read_bytes()[4:8], "little") == 0b11 for p in pycs)
    assert (
        textwrap.dedent(GOOD_CLASS.format(name="fxt_build_ok"))
        == (result.site_dir / "fxt_build_ok" / "plugin.py").read_text()
    )


# -- mistakes caught at build time, named (issue 17, item 6) -----------------------------

EXTRACTOR = """from __future__ import annotations

from falco_plugin import Batch, Config, Event, ExtractPlugin, SourceInstance, SourcePlugin, field, setting


class Inst(SourceInstance):
    def next_batch(self) -> Batch:
        return []


class Settings(Config):
    step: {setting_type} = setting("a step", default=1)


class P(SourcePlugin, ExtractPlugin):
    name = "{name}"
    id = 999_901
    event_source = "{name}"

    def init(self, config: Settings) -> None:
        pass

    def open(self, params: str) -> Inst:
        return Inst()

    @field("{name}.value", "a value")
    def value(self, event: Event) -> {field_type}:
        return 1
"""


def build_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """What `falco-plugin build` says on stderr, having failed (one line, no traceback)."""
    assert cli.main(["build", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    return err


def test_an_instance_class_without_next_batch_fails_the_build_naming_the_method(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = GOOD_CLASS.format(name="fxt_build_typo_batch").replace("def next_batch(", "def next_bacth(")
    project(tmp_path, "fxt_build_typo_batch", body=body)
    err = build_cli(tmp_path, capsys)
    assert "P.open returns Inst, which does not define next_batch(self) -> Batch" in err
    assert "(is next_bacth meant to be next_batch?)" in err


@pytest.mark.parametrize(
    ("field_type", "message"),
    [
        ("itn", "P.value (field {name}.value): cannot resolve the return annotation 'itn' (name 'itn' is not defined)"),
        ("float", "P.value (field {name}.value): cannot infer a field type from <class 'float'>"),
    ],
)
def test_a_bad_field_annotation_fails_the_build_naming_class_field_and_the_supported_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field_type: str, message: str
) -> None:
    name = f"fxt_build_field_{field_type}"
    project(tmp_path, name, body=EXTRACTOR.format(name=name, setting_type="int", field_type=field_type))
    err = build_cli(tmp_path, capsys)
    assert message.format(name=name) in err
    assert "supported return types: int (uint64), bool, str or bytes (string)" in err


@pytest.mark.parametrize(
    ("setting_type", "message"),
    [
        ("itn", "Settings: cannot resolve the annotations of its settings (name 'itn' is not defined)"),
        ("bytes", "Settings.step: unsupported setting type <class 'bytes'>"),
    ],
)
def test_a_bad_setting_annotation_fails_the_build_naming_it_and_the_supported_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setting_type: str, message: str
) -> None:
    name = f"fxt_build_setting_{setting_type}"
    project(tmp_path, name, body=EXTRACTOR.format(name=name, setting_type=setting_type, field_type="int"))
    err = build_cli(tmp_path, capsys)
    assert message in err and "supported setting types: bool, int, float, str" in err


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "def init(self, config: Settings) -> None:",
            "def init(self, config: Setings) -> None:",
            "P.init: cannot resolve the annotation of 'config', 'Setings' (name 'Setings' is not defined): it "
            "decides how the config are parsed and checked",
        ),
        (
            "def open(self, params: str) -> Inst:",
            "def open(self, params: Parms) -> Inst:",
            "P.open: cannot resolve the annotation of 'params', 'Parms' (name 'Parms' is not defined): it decides "
            "how the params are parsed and checked",
        ),
    ],
    ids=["init config", "open params"],
)
def test_an_unresolvable_config_annotation_fails_the_build_instead_of_making_the_plugin_untyped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, message: str
) -> None:
    """Before, the plugin was built untyped: its init got the raw text, its schema was gone, and nothing said so."""
    name = "fxt_build_config_typo"
    body = EXTRACTOR.format(name=name, setting_type="int", field_type="int").replace(old, new)
    project(tmp_path, name, body=body)
    assert message in build_cli(tmp_path, capsys)
