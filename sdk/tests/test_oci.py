"""The parts of ``falco-plugin push`` that need no registry: references, tags, rules configs, credentials.

The pushes themselves, against a real registry, are in tests/falco/test_falco_oci.py.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from falco_plugin_tools.oci.artifact import ArchiveError, rules_config
from falco_plugin_tools.oci.push import floating_tags
from falco_plugin_tools.oci.reference import Reference, ReferenceSyntaxError, parse_reference
from falco_plugin_tools.oci.registry import Credentials, RegistryError, find_credentials


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ghcr.io/acme/plugins/plugin/dummy_py", Reference("ghcr.io", "acme/plugins/plugin/dummy_py")),
        ("localhost/x", Reference("localhost", "x")),
        ("127.0.0.1:5000/a/b:0.1.0-rc.1", Reference("127.0.0.1:5000", "a/b", "0.1.0-rc.1")),
        ("registry.example.com:443/a__b/c-d.e:latest", Reference("registry.example.com:443", "a__b/c-d.e", "latest")),
        ("[::1]:5000/plugin/x:dev", Reference("[::1]:5000", "plugin/x", "dev")),
    ],
)
def test_references_name_registry_repository_and_tag(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    "text",
    ["plugins/dummy_py", "ghcr.io", "ghcr.io/", "ghcr.io/A/b", "ghcr.io/a/b:", "ghcr.io/a/b:.x", "ghcr.io/a-/b",
     "ghcr.io/a@sha256:abc", "-bad.io/a", f"ghcr.io/{'a' * 250}"],
)  # fmt: skip
def test_anything_else_is_refused_with_the_reference_in_the_message(text: str) -> None:
    with pytest.raises(ReferenceSyntaxError, match=r"^'.*' is not a reference REGISTRY/REPOSITORY\[:TAG\]: "):
        parse_reference(text)


@pytest.mark.parametrize(
    ("version", "existing", "tags", "kept"),
    [
        ("0.1.0", [], ["0.1.0", "0.1", "0", "latest"], []),
        ("0.1.1", ["0.1.0", "0.1", "0", "latest"], ["0.1.1", "0.1", "0", "latest"], []),
        ("0.1.2", ["0.2.0", "latest"], ["0.1.2", "0.1"], ["0", "latest"]),
        ("1.4.2", ["1.5.0", "2.0.0"], ["1.4.2", "1.4"], ["1", "latest"]),
        ("1.5.1", ["1.5.0", "2.0.0-rc1", "nightly"], ["1.5.1", "1.5", "1", "latest"], []),
        ("0.2.0-rc1", ["0.1.0"], ["0.2.0-rc1"], []),
        ("0.1.0", ["0.1.0"], ["0.1.0", "0.1", "0", "latest"], []),
    ],
)
def test_floating_tags_move_only_to_the_highest_release(
    version: str, existing: list[str], tags: list[str], kept: list[str]
) -> None:
    assert floating_tags(version, existing) == (tags, kept)


def test_a_rules_config_lists_the_plugins_and_engine_the_files_need() -> None:
    files = {
        "b.yaml": "- required_engine_version: 15\n"
        "- required_plugin_versions:\n"
        "  - name: zeta\n    version: 1.0.0\n"
        "    alternatives: [{name: zz, version: 2.0.0}, {name: aa, version: 0.1.0}]\n",
        "a.yaml": "- required_engine_version: 0.31.0\n- required_plugin_versions: [{name: alpha, version: 0.2.0}]\n",
    }
    assert rules_config("x-rules", "1.2.3", files) == {
        "name": "x-rules",
        "version": "1.2.3",
        "dependencies": [
            {"name": "alpha", "version": "0.2.0"},
            {
                "name": "zeta",
                "version": "1.0.0",
                "alternatives": [{"name": "aa", "version": "0.1.0"}, {"name": "zz", "version": "2.0.0"}],
            },
        ],
        "requirements": [{"name": "engine_version_semver", "version": "0.31.0"}],
    }
    assert rules_config("x-rules", "1", {"r.yaml": "- rule: x\n"}) == {"name": "x-rules", "version": "1"}


def test_a_rules_file_with_an_unreadable_engine_version_is_refused() -> None:
    with pytest.raises(ArchiveError, match=r"^r\.yaml: required_engine_version 'soon' is neither"):
        rules_config("x-rules", "1", {"r.yaml": "- required_engine_version: soon\n"})


def test_credentials_come_from_the_environment_first(tmp_path: Path) -> None:
    env = {"FALCO_PLUGIN_REGISTRY_USER": "u", "FALCO_PLUGIN_REGISTRY_PASSWORD": "p", "DOCKER_CONFIG": str(tmp_path)}
    assert find_credentials("ghcr.io", env) == Credentials("u", "p", "$FALCO_PLUGIN_REGISTRY_USER")
    with pytest.raises(RegistryError, match="set both FALCO_PLUGIN_REGISTRY_USER and FALCO_PLUGIN_REGISTRY_PASSWORD"):
        find_credentials("ghcr.io", {"FALCO_PLUGIN_REGISTRY_USER": "u"})


def test_credentials_come_from_the_docker_config_entry_of_the_registry(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "auths": {
                    "https://ghcr.io": {"auth": base64.b64encode(b"me:se:cret").decode()},
                    "other.io": {"auth": base64.b64encode(b"no:no").decode()},
                }
            }
        )
    )
    env = {"DOCKER_CONFIG": str(tmp_path)}
    assert find_credentials("ghcr.io", env) == Credentials("me", "se:cret", str(config))
    assert find_credentials("quay.io", env) is None
    assert find_credentials("ghcr.io", {"DOCKER_CONFIG": str(tmp_path / "none")}) is None


def test_credentials_come_from_the_docker_credential_helper_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text('#!/bin/sh\nread host\necho "{\\"Username\\": \\"bot\\", \\"Secret\\": \\"tok-$host\\"}"\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}:/usr/bin:/bin")
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {"ghcr.io": "fake"}, "credsStore": "absent"}))
    env = {"DOCKER_CONFIG": str(tmp_path)}
    assert find_credentials("ghcr.io", env) == Credentials("bot", "tok-ghcr.io", "docker-credential-fake")
    with pytest.raises(RegistryError, match=r"names the credential helper docker-credential-absent for quay\.io"):
        find_credentials("quay.io", env)


def test_without_the_oci_extra_push_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import sys

    from falco_plugin_tools import cli

    for module in ("falco_plugin_tools.oci.registry", "falco_plugin_tools.oci.push"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setitem(sys.modules, "requests", None)  # as if not installed: importing it fails
    assert cli.main(["push", "ghcr.io/acme/x", str(tmp_path / "x.tar.gz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("falco-plugin push: needs the SDK's oci extra (requests, PyYAML): ")
    assert "pip install 'falco-plugin-sdk[oci]'" in err and err.count("\n") == 1
