"""Sessions for the whole monorepo: build every plugin, test, lint, type-check, benchmark.

Plugins are discovered (every ``plugins/*/pyproject.toml``), so a new plugin
folder is built, tested and linted without touching this file.
"""

from __future__ import annotations

import shutil
import tempfile
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PLUGINS = sorted(p.parent.relative_to(ROOT) for p in ROOT.glob("plugins/*/pyproject.toml"))
PYTHON = "3.11"

nox.options.sessions = ["build", "tests", "lint", "typecheck", "registry", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"


def install_workspace(session: nox.Session, *extra: str) -> None:
    """The SDK (with its oci extra) and every plugin, editable."""
    editable = [arg for p in PLUGINS for arg in ("-e", str(p))]
    session.install("-e", "sdk[oci]", *editable, *extra)
    # The C source of yyjson, compiled into plugins with JSON fields, comes from a PyPI
    # source distribution (see falco_plugin_tools/build/yyjson.py): fetched here, ahead of any build.
    session.run("python", "-c", "from falco_plugin_tools.build.yyjson import source_dir; print(source_dir())")


def plugin_package(project: Path) -> str:
    """The top-level import package of a plugin project (from its plugin class path)."""
    data = tomllib.loads((ROOT / project / "pyproject.toml").read_text())
    return str(data["tool"]["falco-plugin"]["plugin"]).split(".")[0]


def build_all(session: nox.Session) -> None:
    session.run("falco-plugin", "build", *map(str, PLUGINS))


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Build every plugin's lib<name>.so, then run dummy_py in the SDK's host."""
    install_workspace(session)
    build_all(session)
    session.run(
        "falco-plugin", "run", "plugins/dummy/libdummy_py.so",
        "--init-config", '{"jitter": 5}',
        "--open-params", '{"start": 1, "maxEvents": 10}',
        "--fields", "dummy.value,dummy.strvalue,dummy.divisible[2]",
        "-n", "10",
    )  # fmt: skip


LINT_TOOLS = ("ruff>=0.6",)
TYPECHECK_TOOLS = ("mypy>=1.10", "types-PyYAML", "types-requests", "pytest>=8")
# build: tests/falco/test_newcomer.py makes the SDK's sdist and its wheel from it, as a release would.
TEST_TOOLS = ("pytest>=8", "pytest-xdist>=3", "pytest-timeout>=2", "hypothesis>=6.100", "build>=1")


def run_lint(session: nox.Session) -> None:
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


def run_typecheck(session: nox.Session) -> None:
    packages = ["falco_plugin", "falco_plugin_tools", *(plugin_package(p) for p in PLUGINS)]
    session.run("mypy", *(arg for pkg in packages for arg in ("-p", pkg)))
    session.run("mypy", "bench/run.py")
    # bench/falco.py runs Falco with the helper of the Falco tests (tests/falco/falco_runner.py)
    session.run("mypy", "bench/falco.py", env={"MYPYPATH": "tests/falco"})
    session.run("mypy", "bench/falco_null.py", env={"MYPYPATH": "tests/falco"})
    # bench/falco_parse.py also writes its capture with the test suite's writer (sdk/tests/scapwriter.py)
    session.run("mypy", "bench/falco_parse.py", env={"MYPYPATH": "tests/falco:sdk/tests:bench"})
    session.run("mypy", "bench/falco_profile.py", env={"MYPYPATH": "tests/falco:bench"})
    session.run("mypy", "bench/falco_k8s.py", env={"MYPYPATH": "tests/falco:sdk/tests:plugins/k8s_parse/src"})
    session.run(
        "mypy", "bench/falco_k8s_memory.py", env={"MYPYPATH": "tests/falco:sdk/tests:plugins/k8s_parse/src:bench"}
    )
    # bench/falco_http_poll.py serves its records with http_poll's test fake (plugins/http_poll/tests)
    session.run("mypy", "bench/falco_http_poll.py", env={"MYPYPATH": "tests/falco:plugins/http_poll/tests"})


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Every check CI relies on: lint, formatting, types, then every test (SDK, host, cross-plugin, each plugin's)."""
    install_workspace(session, *LINT_TOOLS, *TYPECHECK_TOOLS, *TEST_TOOLS)
    run_lint(session)
    run_typecheck(session)
    build_all(session)  # the suites also check the libraries nox -s build produces
    suites = ["sdk/tests", "tests", *(str(p / "tests") for p in PLUGINS if (p / "tests").is_dir())]
    session.run("pytest", "-n", "2", "--timeout", "300", *suites, *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install(*LINT_TOOLS)
    run_lint(session)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy over the SDK and every plugin."""
    install_workspace(session, *TYPECHECK_TOOLS)
    run_typecheck(session)


@nox.session(python=PYTHON)
def registry(session: nox.Session) -> None:
    """registry/plugins.yaml: every rule, each hosted entry matched against its built library."""
    install_workspace(session)
    build_all(session)
    session.run("falco-plugin", "registry", "check", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Plugin READMEs: fail if a generated table drifted from its built library (`-- --write` regenerates)."""
    install_workspace(session)
    build_all(session)
    write = "--write" in session.posargs
    session.run("falco-plugin", "docs", *([] if write else ["--check"]), *map(str, PLUGINS))


@nox.session(python=PYTHON)
def package(session: nox.Session) -> None:
    """Per plugin a release archive, a rules archive, and dist/index.yaml for falcoctl.

    Release archives are standalone (they carry the interpreter and load with
    no Python installed); `nox -s package -- --no-standalone` makes archives
    that need the build's Python 3.11 on the target instead."""
    install_workspace(session)
    session.run("falco-plugin", "package", "--build", *map(str, PLUGINS), "--out", "dist", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Hot-path timings in the C host, against a C reference plugin."""
    install_workspace(session)
    build_all(session)
    session.run("python", "bench/run.py", *session.posargs)


@nox.session(python=PYTHON)
def falco(session: nox.Session) -> None:
    """The plugins in the real Falco (tests/falco), then a throughput table against upstream's C dummy_c.

    Falco comes from $FALCO or <repo>/../shared/realhost/falco; options after
    ``--`` go to bench/falco.py (``nox -s falco -- --events 200000``).
    """
    install_workspace(session, *TEST_TOOLS)
    build_all(session)  # bench/falco.py times plugins/dummy/libdummy_py.so
    session.run("pytest", "--timeout", "300", "tests/falco")
    session.run("python", "bench/falco.py", *session.posargs)
    session.run("python", "bench/falco_null.py")  # the SDK's own cost per event and field call (the null pair)
    session.run("python", "bench/falco_parse.py")  # a parsing plugin in Falco replaying a 1M-event capture
    session.run("python", "bench/falco_k8s.py")  # k8s_parse's parse and field costs, against C columns
    session.run("python", "bench/falco_k8s_memory.py")  # k8s_parse's RSS over 1M events and 10k pod changes
    session.run("python", "bench/falco_http_poll.py")  # http_poll's source and field costs, against a C reference
    if shutil.which("valgrind"):  # instructions per event, by part (bench/falco_profile.py)
        session.run("python", "bench/falco_profile.py")
    else:
        session.log("no valgrind: skipping bench/falco_profile.py (where the time goes, in instructions)")


#: Python versions a plugin may be built with besides PYTHON, each a first-class target.
OTHER_PYTHONS = ["3.12", "3.13"]


@nox.session(python=OTHER_PYTHONS)
def pythons(session: nox.Session) -> None:
    """Python 3.12 and 3.13: every plugin built with that Python, then the plugin tests, the standalone
    bundles, the newcomer test and the real-Falco tests (the whole suite runs on 3.11 in `tests`)."""
    install_workspace(session, *TEST_TOOLS)
    # Built aside: plugins/*/lib*.so stay the 3.11 builds the other sessions use. Not in session.create_tmp(),
    # which also moves TMPDIR under .nox/pythons-3-1x/, where the Falco tests' stderr check reads "python".
    with tempfile.TemporaryDirectory(prefix="falco-plugin-build-") as out:
        session.run("falco-plugin", "build", *map(str, PLUGINS), "--out", out)
    plugin_tests = [str(p / "tests") for p in PLUGINS if (p / "tests").is_dir()]
    suites = [*plugin_tests, "tests/test_standalone.py", "tests/falco"]
    session.run("pytest", "-n", "2", "--timeout", "300", *suites, *session.posargs)


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """Coverage-guided fuzzing of event decoding in every plugin (atheris); not part of `tests`.

    `nox -s fuzz -- --seconds 600` sets the total time budget (default 60 s); see tests/fuzz/README.md.
    """
    install_workspace(session, "atheris>=2.3")
    build_all(session)
    session.run("python", "tests/fuzz/run_fuzz.py", *session.posargs)
