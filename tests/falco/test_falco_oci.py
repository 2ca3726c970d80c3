"""``falco-plugin push`` against a real registry, pulled back as falcoctl pulls, run in the real Falco.

dummy_py is packaged once (standalone, as ``falco-plugin package --build``
makes it) and pushed to Debian's docker-registry on 127.0.0.1 (see
oci_registry.py); each test pushes to repositories of its own. The pull
walks tag -> index -> platform manifest -> config -> layer with plain HTTP
requests, and the layers are unpacked into empty plugin and rules
directories that Falco then loads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import platform
import re
import shutil
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from falco_plugin_tools import cli
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.package import package_plugin
from falco_plugin_tools.registry import read_library
from falco_runner import PLUGIN_ONLY, REPO, PluginConf, falco_config, run_falco, write_config
from oci_registry import (
    INDEX,
    MANIFEST,
    NOT_INSTALLED,
    Registry,
    htpasswd_file,
    install,
    pull,
    registry_binary,
    running_registry,
)

PLUGIN_CONFIG = "application/vnd.cncf.falco.plugin.config.v1+json"
PLUGIN_LAYER = "application/vnd.cncf.falco.plugin.layer.v1+tar.gz"
RULES_CONFIG = "application/vnd.cncf.falco.rulesfile.config.v1+json"
RULES_LAYER = "application/vnd.cncf.falco.rulesfile.layer.v1+tar.gz"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]
OTHER_ARCH = {"amd64": "arm64", "arm64": "amd64"}[ARCH]
PLUGIN_ARCHIVE = f"dummy_py-0.1.0-linux-{platform.machine()}.tar.gz"
RULES_ARCHIVE = "dummy_py-rules-0.1.0.tar.gz"
RELEASE_TAGS = ["0", "0.1", "0.1.0", "latest"]
LOCAL = ("--plain-http", "--no-index")
"""A local registry speaks plain HTTP; most tests leave index.yaml alone."""


@pytest.fixture(scope="module")
def binary() -> str:
    found = registry_binary()
    if found is None:
        pytest.skip(NOT_INSTALLED)
    return found


@pytest.fixture(scope="module")
def registry(binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One anonymous registry for the module; tests push to repositories of their own."""
    with running_registry(binary, tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``falco-plugin package --build plugins/dummy``: the standalone archive, the rules archive, index.yaml."""
    out = tmp_path_factory.mktemp("dist")
    code = cli.main(
        ["package", str(REPO / "plugins" / "dummy"), "--build", "--out", str(out),
         "--registry", str(REPO / "registry" / "plugins.yaml")]
    )  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither this machine's Docker config nor its environment lends credentials to a test."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.delenv("FALCO_PLUGIN_REGISTRY_USER", raising=False)
    monkeypatch.delenv("FALCO_PLUGIN_REGISTRY_PASSWORD", raising=False)


Push = Callable[..., tuple[int, str, str]]


@pytest.fixture
def push(capsys: pytest.CaptureFixture[str]) -> Push:
    """``falco-plugin push *args``: (exit code, stdout, stderr)."""

    def run(*args: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(["push", *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def printed(out: str, key: str) -> str:
    """The value of a ``key  value`` line of push's output."""
    return next(line.split(None, 1)[1] for line in out.splitlines() if line.split(None, 1)[0] == key)


def required_api_version(library: Path) -> str:
    from falco_plugin_tools.host import PluginLibrary

    loaded = PluginLibrary.load(library)
    try:
        return loaded.info.required_api_version
    finally:
        loaded.close()


# -- pushed, pulled back, run -----------------------------------------------------------------


def test_a_plugin_pulls_back_as_an_index_of_one_platform_manifest_with_falcoctls_types(
    registry: Registry, dist: Path, push: Push, tmp_path: Path
) -> None:
    ref = f"{registry.host}/pulled/plugin/dummy_py"
    code, out, err = push(ref, dist / PLUGIN_ARCHIVE, *LOCAL)
    assert code == 0, err
    pulled = pull(registry, "pulled/plugin/dummy_py", "0.1.0", arch=ARCH)
    # the printed digest is what every tag names: the image index
    digest = printed(out, "digest").split()[0]
    for tag in RELEASE_TAGS:
        assert registry.digest_of_tag("pulled/plugin/dummy_py", tag) == digest
    assert registry.tags("pulled/plugin/dummy_py") == RELEASE_TAGS
    assert pulled.top_media_type == INDEX
    assert pulled.top["mediaType"] == INDEX and pulled.top["schemaVersion"] == 2
    assert [m["platform"] for m in pulled.top["manifests"]] == [{"os": "linux", "architecture": ARCH}]
    assert pulled.top["manifests"][0]["mediaType"] == MANIFEST
    assert pulled.manifest["mediaType"] == MANIFEST and pulled.manifest["schemaVersion"] == 2
    assert pulled.config_media_type == PLUGIN_CONFIG
    assert pulled.layer_media_type == PLUGIN_LAYER
    assert pulled.filename == PLUGIN_ARCHIVE
    assert pulled.layer == (dist / PLUGIN_ARCHIVE).read_bytes()
    names = install(pulled.layer, tmp_path, tmp_path)
    assert pulled.config == {
        "name": "dummy_py",
        "version": "0.1.0",
        "requirements": [{"name": "plugin_api_version", "version": required_api_version(tmp_path / "libdummy_py.so")}],
    }
    assert "libdummy_py.site/_standalone.json" in names


def test_rules_pull_back_as_one_manifest_naming_the_plugin_and_engine_they_need(
    registry: Registry, dist: Path, push: Push
) -> None:
    code, out, err = push(f"{registry.host}/pulled/ruleset/dummy_py", dist / RULES_ARCHIVE, *LOCAL)
    assert code == 0, err
    pulled = pull(registry, "pulled/ruleset/dummy_py", "latest")
    assert printed(out, "digest").split()[0] == registry.digest_of_tag("pulled/ruleset/dummy_py", "latest")
    assert registry.tags("pulled/ruleset/dummy_py") == RELEASE_TAGS
    assert pulled.top_media_type == MANIFEST and pulled.top is pulled.manifest
    assert pulled.config_media_type == RULES_CONFIG
    assert pulled.layer_media_type == RULES_LAYER
    assert pulled.filename == RULES_ARCHIVE
    assert pulled.config == {
        "name": "dummy_py-rules",
        "version": "0.1.0",
        "dependencies": [{"name": "dummy_py", "version": "0.1.0"}],
        "requirements": [{"name": "engine_version_semver", "version": "0.31.0"}],
    }


def test_falco_loads_the_pulled_plugin_from_an_empty_plugin_dir_and_its_pulled_rules_fire(
    registry: Registry, dist: Path, push: Push, falco: Path, tmp_path: Path
) -> None:
    for archive, repository in ((PLUGIN_ARCHIVE, "run/plugin/dummy_py"), (RULES_ARCHIVE, "run/ruleset/dummy_py")):
        assert push(f"{registry.host}/{repository}", dist / archive, *LOCAL)[0] == 0
    plugins, rules = tmp_path / "usr/share/falco/plugins", tmp_path / "etc/falco/rules.d"
    plugins.mkdir(parents=True)
    rules.mkdir(parents=True)
    install(pull(registry, "run/plugin/dummy_py", "latest", arch=ARCH).layer, plugins, tmp_path)
    install(pull(registry, "run/ruleset/dummy_py", "latest").layer, rules, tmp_path)
    assert sorted(p.name for p in plugins.iterdir()) == [
        "libdummy_py.site",
        "libdummy_py.so",
        f"python{sys.version_info.major}.{sys.version_info.minor}",
    ]
    plugin = PluginConf(
        "dummy_py", plugins / "libdummy_py.so", {"jitter": 0}, json.dumps({"start": 990, "maxEvents": 20})
    )
    config = write_config(tmp_path / "falco.yaml", falco_config([plugin], rules=[rules / "dummy_py_rules.yaml"]))
    run = run_falco(falco, config, *PLUGIN_ONLY, "-v", timeout=120)
    print(run.describe())  # the closing note quotes Falco's output
    assert run.returncode == 0, run.describe()
    assert not run.noise(), run.describe()
    assert run.captured() == {"dummy_py": 20}
    fired = [(a["rule"], a["output_fields"]["dummy.value"]) for a in run.alerts]
    sevens = [v for rule, v in fired if rule == "Dummy sample is a multiple of seven"]
    above = [v for rule, v in fired if rule == "Dummy sample crossed one thousand"]
    assert sevens == [994, 1001, 1008]
    assert above == [v for v in range(1001, 1011) if v % 7]


# -- pushing again, another platform, tags ------------------------------------------------------


def test_pushing_the_same_archive_again_changes_nothing(registry: Registry, dist: Path, push: Push) -> None:
    ref = f"{registry.host}/again/plugin/dummy_py"
    first = push(ref, dist / PLUGIN_ARCHIVE, *LOCAL)
    second = push(ref, dist / PLUGIN_ARCHIVE, *LOCAL)
    assert first[0] == second[0] == 0
    assert printed(first[1], "digest") == printed(second[1], "digest")
    assert printed(second[1], "tags") == "0.1.0 0.1 0 latest (unchanged: the registry had it already)"
    assert len(pull(registry, "again/plugin/dummy_py", "0.1.0", arch=ARCH).top["manifests"]) == 1


def _blob(registry: Registry, repository: str, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = requests.post(registry.url(f"{repository}/blobs/uploads/"), timeout=30)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    location = location if "://" in location else f"http://{registry.host}{location}"
    separator = "&" if "?" in location else "?"
    stored = requests.put(f"{location}{separator}digest={digest}", data=data, timeout=30)
    assert stored.status_code == 201, stored.text
    return {"digest": digest, "size": len(data)}


def _manifest(registry: Registry, repository: str, media_type: str, doc: object, *tags: str) -> dict[str, object]:
    """Store ``doc`` by digest, then under ``tags``; its descriptor."""
    body = json.dumps(doc).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    for reference in (digest, *tags):
        put = requests.put(
            registry.url(f"{repository}/manifests/{reference}"),
            data=body,
            headers={"Content-Type": media_type},
            timeout=30,
        )
        assert put.status_code == 201, put.text
    return {"mediaType": media_type, "digest": digest, "size": len(body)}


def other_platform_index(registry: Registry, repository: str, *tags: str, version: str = "0.1.0") -> dict[str, object]:
    """What the build machine of the other architecture pushed first: an index of its one manifest."""
    requirements = [{"name": "plugin_api_version", "version": "3.0.0"}]
    config = {"name": "dummy_py", "version": version, "requirements": requirements}
    layer = b"the other architecture's archive"
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": PLUGIN_CONFIG, **_blob(registry, repository, json.dumps(config).encode())},
        "layers": [
            {
                "mediaType": PLUGIN_LAYER,
                **_blob(registry, repository, layer),
                "annotations": {"org.opencontainers.image.title": f"dummy_py-{version}-linux-other.tar.gz"},
            }
        ],
    }
    descriptor = _manifest(registry, repository, MANIFEST, manifest)
    descriptor["platform"] = {"os": "linux", "architecture": OTHER_ARCH}
    _manifest(registry, repository, INDEX, {"schemaVersion": 2, "mediaType": INDEX, "manifests": [descriptor]}, *tags)
    return descriptor


def test_a_second_platform_joins_the_index_the_first_one_pushed(registry: Registry, dist: Path, push: Push) -> None:
    other = other_platform_index(registry, "joined/plugin/dummy_py", "0.1.0")
    code, out, err = push(f"{registry.host}/joined/plugin/dummy_py", dist / PLUGIN_ARCHIVE, *LOCAL)
    assert code == 0, err
    assert f"(image index: {', '.join(sorted(['linux/' + ARCH, 'linux/' + OTHER_ARCH]))})" in out
    mine = pull(registry, "joined/plugin/dummy_py", "latest", arch=ARCH)
    theirs = pull(registry, "joined/plugin/dummy_py", "latest", arch=OTHER_ARCH)
    assert other in mine.top["manifests"] and len(mine.top["manifests"]) == 2
    assert mine.layer == (dist / PLUGIN_ARCHIVE).read_bytes()
    assert theirs.layer == b"the other architecture's archive"


def test_an_index_of_another_version_is_not_mixed_into(registry: Registry, dist: Path, push: Push) -> None:
    other_platform_index(registry, "mixed/plugin/dummy_py", "0.1.0", version="0.0.9")
    before = registry.digest_of_tag("mixed/plugin/dummy_py", "0.1.0")
    code, out, err = push(f"{registry.host}/mixed/plugin/dummy_py", dist / PLUGIN_ARCHIVE, *LOCAL)
    assert code == 1 and out == ""
    assert err == (
        f"falco-plugin push: {registry.host}/mixed/plugin/dummy_py:0.1.0: its linux/{OTHER_ARCH} manifest "
        "is dummy_py 0.0.9, not dummy_py 0.1.0: not mixing them in one index\n"
    )
    assert registry.tags("mixed/plugin/dummy_py") == ["0.1.0"]
    assert registry.digest_of_tag("mixed/plugin/dummy_py", "0.1.0") == before


def test_floating_tags_stay_on_a_higher_version(registry: Registry, dist: Path, push: Push) -> None:
    other_platform_index(registry, "floating/plugin/dummy_py", "0.2.0", "0", "latest", version="0.2.0")
    newer = registry.digest_of_tag("floating/plugin/dummy_py", "latest")
    code, out, err = push(
        f"{registry.host}/floating/plugin/dummy_py", dist / PLUGIN_ARCHIVE, "--plain-http", "--no-index"
    )
    assert code == 0, err
    assert printed(out, "tags") == "0.1.0 0.1"
    assert printed(out, "kept") == "0 latest where they are (a higher version has them)"
    assert registry.digest_of_tag("floating/plugin/dummy_py", "latest") == newer


def test_a_tag_in_the_reference_is_the_only_tag_set(registry: Registry, dist: Path, push: Push) -> None:
    code, _, err = push(f"{registry.host}/tagged/ruleset/dummy_py:candidate", dist / RULES_ARCHIVE, "--plain-http")
    assert code == 0, err
    assert registry.tags("tagged/ruleset/dummy_py") == ["candidate"]


def test_the_index_beside_the_archives_points_at_what_was_pushed(
    registry: Registry, dist: Path, push: Push, tmp_path: Path
) -> None:
    index = tmp_path / "index.yaml"
    shutil.copy(dist / "index.yaml", index)
    for archive, repository in ((PLUGIN_ARCHIVE, "idx/plugin/dummy_py"), (RULES_ARCHIVE, "idx/ruleset/dummy_py")):
        code, out, err = push(f"{registry.host}/{repository}", dist / archive, "--plain-http", "--index", index)
        assert code == 0, err
        assert printed(out, "index").endswith(f"-> {registry.host}/{repository}")
    entries = {e["name"]: e for e in yaml.safe_load(index.read_text())}
    assert (entries["dummy_py"]["registry"], entries["dummy_py"]["repository"]) == (
        registry.host,
        "idx/plugin/dummy_py",
    )
    assert (entries["dummy_py-rules"]["type"], entries["dummy_py-rules"]["repository"]) == (
        "rulesfile",
        "idx/ruleset/dummy_py",
    )
    # the rest of each entry is package's, untouched
    packaged = {e["name"]: e for e in yaml.safe_load((dist / "index.yaml").read_text())}
    for name, entry in entries.items():
        assert {k: v for k, v in entry.items() if k not in ("registry", "repository")} == {
            k: v for k, v in packaged[name].items() if k not in ("registry", "repository")
        }
    # an index that does not exist yet gets the entry, described by the registry file
    fresh = tmp_path / "fresh" / "index.yaml"
    fresh.parent.mkdir()
    code, _, err = push(
        f"{registry.host}/idx/plugin/dummy_py", dist / PLUGIN_ARCHIVE, "--plain-http", "--index", fresh,
        "--registry", REPO / "registry" / "plugins.yaml",
    )  # fmt: skip
    assert code == 0, err
    assert yaml.safe_load(fresh.read_text()) == [
        {**packaged["dummy_py"], "registry": registry.host, "repository": "idx/plugin/dummy_py"}
    ]


# -- credentials ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locked(binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry with an htpasswd login: user ``pusher``, password ``right-password``."""
    if shutil.which("htpasswd") is None:
        pytest.skip("no htpasswd to write the registry's password file (.ci/run installs apache2-utils)")
    workdir = tmp_path_factory.mktemp("locked-registry")
    htpasswd = htpasswd_file(workdir / "htpasswd", "pusher", "right-password")
    with running_registry(binary, workdir, htpasswd=htpasswd) as running:
        yield running


def _tags_as_pusher(registry: Registry, repository: str) -> list[str]:
    listed = requests.get(registry.url(f"{repository}/tags/list"), auth=("pusher", "right-password"), timeout=30)
    return [] if listed.status_code == 404 else sorted(listed.json().get("tags") or [])


def test_a_wrong_password_is_one_line_and_pushes_nothing(
    locked: Registry, dist: Path, push: Push, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FALCO_PLUGIN_REGISTRY_USER", "pusher")
    monkeypatch.setenv("FALCO_PLUGIN_REGISTRY_PASSWORD", "wrong-password")
    code, out, err = push(f"{locked.host}/wrong/plugin/dummy_py", dist / PLUGIN_ARCHIVE, *LOCAL)
    assert (code, out) == (1, "")
    assert err == (
        f"falco-plugin push: registry {locked.host} refused the user name or password of 'pusher' "
        "(from $FALCO_PLUGIN_REGISTRY_USER)\n"
    )
    assert _tags_as_pusher(locked, "wrong/plugin/dummy_py") == []


def test_no_credentials_for_a_registry_that_wants_a_login_is_one_line(locked: Registry, dist: Path, push: Push) -> None:
    code, _, err = push(f"{locked.host}/anon/ruleset/dummy_py", dist / RULES_ARCHIVE, *LOCAL)
    assert code == 1
    assert err.startswith(f"falco-plugin push: registry {locked.host} wants a login: set FALCO_PLUGIN_REGISTRY_USER")
    assert err.count("\n") == 1


def test_credentials_from_the_environment_push(
    locked: Registry, dist: Path, push: Push, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FALCO_PLUGIN_REGISTRY_USER", "pusher")
    monkeypatch.setenv("FALCO_PLUGIN_REGISTRY_PASSWORD", "right-password")
    code, _, err = push(f"{locked.host}/env/ruleset/dummy_py", dist / RULES_ARCHIVE, *LOCAL)
    assert code == 0, err
    assert _tags_as_pusher(locked, "env/ruleset/dummy_py") == RELEASE_TAGS


def test_credentials_from_the_docker_config_push(
    locked: Registry, dist: Path, push: Push, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    docker = tmp_path / "docker"
    docker.mkdir()
    auth = base64.b64encode(b"pusher:right-password").decode()
    (docker / "config.json").write_text(json.dumps({"auths": {locked.host: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    code, _, err = push(f"{locked.host}/docker/ruleset/dummy_py", dist / RULES_ARCHIVE, *LOCAL)
    assert code == 0, err
    assert _tags_as_pusher(locked, "docker/ruleset/dummy_py") == RELEASE_TAGS


# -- refusals -------------------------------------------------------------------------------------


def test_a_registry_that_refuses_writes_is_one_line_and_tags_nothing(
    binary: str, dist: Path, push: Push, tmp_path: Path
) -> None:
    with running_registry(binary, tmp_path / "readonly", readonly=True) as readonly:
        code, out, err = push(f"{readonly.host}/ro/plugin/dummy_py", dist / PLUGIN_ARCHIVE, "--plain-http")
        assert (code, out) == (1, "")
        assert err.startswith(f"falco-plugin push: registry {readonly.host} refused to start the upload of the layer ")
        assert "405" in err and err.count("\n") == 1
        assert readonly.tags("ro/plugin/dummy_py") == []


def test_a_registry_that_is_not_there_is_one_line(dist: Path, push: Push, binary: str, tmp_path: Path) -> None:
    with running_registry(binary, tmp_path / "gone") as gone:
        host = gone.host
    code, _, err = push(f"{host}/gone/plugin/dummy_py", dist / RULES_ARCHIVE, "--plain-http")
    assert code == 1
    assert err == f"falco-plugin push: registry http://{host} cannot be reached: [Errno 111] Connection refused\n"


def test_https_to_a_plain_http_registry_says_so(registry: Registry, dist: Path, push: Push) -> None:
    code, _, err = push(f"{registry.host}/tls/ruleset/dummy_py", dist / RULES_ARCHIVE)
    assert code == 1
    assert err.startswith(f"falco-plugin push: registry {registry.host}: TLS failed (a registry that speaks plain")
    assert err.count("\n") == 1
    assert registry.tags("tls/ruleset/dummy_py") == []


@pytest.mark.parametrize(
    ("reference", "why"),
    [
        ("dummy_py", "no repository after the registry"),
        ("falco-plugins/plugin/dummy_py", "'falco-plugins' is not a registry host"),
        ("{host}/Plugins/dummy_py", "'Plugins' is not a repository path component"),
        ("{host}/plugins/dummy_py:-x", "'-x' is not a tag"),
        ("{host}/plugins/dummy_py@sha256:00", "a digest cannot be pushed to"),
        ("{host}/plugins//dummy_py", "'' is not a repository path component"),
    ],
)
def test_a_malformed_reference_is_one_line_naming_it(
    registry: Registry, dist: Path, push: Push, reference: str, why: str
) -> None:
    reference = reference.format(host=registry.host)
    code, out, err = push(reference, dist / RULES_ARCHIVE, "--plain-http")
    assert (code, out) == (1, "")
    assert err.startswith(f"falco-plugin push: {reference!r} is not a reference REGISTRY/REPOSITORY[:TAG]: {why}")
    assert err.count("\n") == 1


def test_an_archive_that_is_not_standalone_is_one_line_and_pushes_nothing(
    registry: Registry, push: Push, plugin_build: Callable[[str], BuildResult], tmp_path: Path
) -> None:
    library = plugin_build("dummy").library  # built against the build's Python, as `nox -s build` does
    archive = package_plugin(REPO / "plugins" / "dummy", library, read_library(library), tmp_path)[0].path
    code, out, err = push(f"{registry.host}/system/plugin/dummy_py", archive, "--plain-http")
    assert (code, out) == (1, "")
    assert err == (
        f"falco-plugin push: {archive} is not a standalone archive (no libdummy_py.site/_standalone.json): "
        "a cluster's Falco has no Python to load it; package it with `falco-plugin package --build` "
        "(standalone by default)\n"
    )
    assert registry.tags("system/plugin/dummy_py") == []


def test_an_archive_falcoctl_would_refuse_to_unpack_is_refused(
    registry: Registry, dist: Path, push: Push, tmp_path: Path
) -> None:
    archive = tmp_path / RULES_ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("dummy_py_rules.yaml")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    code, _, err = push(f"{registry.host}/links/ruleset/dummy_py", archive, "--plain-http")
    assert code == 1
    assert err == (
        f"falco-plugin push: {archive}: member 'dummy_py_rules.yaml' is a link or special file, "
        "which falcoctl refuses\n"
    )
    assert registry.tags("links/ruleset/dummy_py") == []


# -- the README's Helm values -----------------------------------------------------------------------


def readme_helm_values() -> dict[str, Any]:
    text = (REPO / "README.md").read_text()
    start = text.index("## Deploying to a cluster")
    section = text[start : text.find("\n## ", start + 1)]
    (values,) = [b for b in re.findall(r"^```yaml\n(.*?)^```", section, re.M | re.S) if b.startswith("falcoctl:")]
    loaded: dict[str, Any] = yaml.safe_load(values)
    return loaded


def test_the_readmes_helm_values_install_what_was_pushed_and_falco_runs_it(
    registry: Registry, dist: Path, push: Push, falco: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index.yaml"
    shutil.copy(dist / "index.yaml", index)
    for archive, repository in ((PLUGIN_ARCHIVE, "helm/plugin/dummy_py"), (RULES_ARCHIVE, "helm/ruleset/dummy_py")):
        assert push(f"{registry.host}/{repository}", dist / archive, "--plain-http", "--index", index)[0] == 0
    entries = {e["name"]: e for e in yaml.safe_load(index.read_text())}
    values = readme_helm_values()
    artifact = values["falcoctl"]["config"]["artifact"]
    assert set(artifact["allowedTypes"]) == {"plugin", "rulesfile"}
    ours = [ref.split(":") for ref in artifact["install"]["refs"] if ref.split(":")[0] in entries]
    assert sorted(name for name, _ in ours) == ["dummy_py", "dummy_py-rules"]
    # what the chart's volumes are: falcoctl's /plugins and /rulesfiles, Falco's plugin dir and /etc/falco
    plugins, etc = tmp_path / "usr/share/falco/plugins", tmp_path / "etc/falco"
    plugins.mkdir(parents=True)
    etc.mkdir(parents=True)
    for name, tag in ours:
        entry = entries[name]
        assert entry["registry"] == registry.host
        into = plugins if entry["type"] == "plugin" else etc
        install(pull(registry, entry["repository"], tag, arch=ARCH).layer, into, tmp_path)
    falco_values = values["falco"]
    rules = [etc / Path(r).name for r in falco_values["rules_files"] if Path(r).parent == Path("/etc/falco")]
    assert etc / "dummy_py_rules.yaml" in rules
    config = falco_config([], rules=[r for r in rules if r.is_file()], json_output=True)
    config["plugins"] = [{**p, "library_path": str(plugins / p["library_path"])} for p in falco_values["plugins"]]
    config["load_plugins"] = falco_values["load_plugins"]
    run = run_falco(falco, write_config(tmp_path / "falco.yaml", config), *PLUGIN_ONLY, "-v", timeout=120)
    assert run.returncode == 0, run.describe()
    assert not run.noise(), run.describe()
    assert run.captured() == {"dummy_py": json.loads(falco_values["plugins"][0]["open_params"])["maxEvents"]}
    # 1000 jittered samples pass 1000: both of the pulled rules fire
    fired = {a["rule"] for a in run.alerts}
    assert fired == {"Dummy sample is a multiple of seven", "Dummy sample crossed one thousand"}
