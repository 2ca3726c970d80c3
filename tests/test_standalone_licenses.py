"""What a standalone bundle ships is allowed to ship: every bundled library with its licence, and an SBOM.

dummy_py is built standalone once; its interpreter home must hold, for each
shared library it bundles (libpython and the libraries grafted from the
build machine: OpenSSL, libffi, zlib, bzip2, xz, libuuid...), the licence
text of where it came from, and list them all in ``sbom.cdx.json``
(CycloneDX). The archive of ``falco-plugin package`` (which is also the
layer ``falco-plugin push`` sends) carries them.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from falco_plugin_tools.build import build_plugin
from falco_plugin_tools.build.sbom import LicenseNotFound, debian_package, write_home_licenses
from falco_plugin_tools.build.standalone import HOME_DIR
from falco_plugin_tools.package import package_plugin
from falco_plugin_tools.registry import read_library
from harness import project_dir

PROPERTY_FILE = "falco-plugin-sdk:file"
PROPERTY_LICENSE = "falco-plugin-sdk:license-file"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("standalone")
    build_plugin(project_dir("dummy"), out, standalone=True)
    return out


@pytest.fixture(scope="module")
def home(built: Path) -> Path:
    return built / HOME_DIR


@pytest.fixture(scope="module")
def sbom(home: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((home / "sbom.cdx.json").read_text())
    return data


def props(component: dict[str, Any], name: str) -> list[str]:
    return [str(p["value"]) for p in component["properties"] if p["name"] == name]


def shared_libraries(home: Path) -> list[str]:
    """Every ELF file the home ships, relative to it."""
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and p.read_bytes()[:4] == b"\x7fELF")


def covering(sbom: dict[str, Any], path: str) -> list[dict[str, Any]]:
    """The components that list ``path`` (a file, or a directory ending in / that holds it)."""
    return [
        c
        for c in sbom["components"]
        if any(path == f or (f.endswith("/") and path.startswith(f)) for f in props(c, PROPERTY_FILE))
    ]


def test_every_bundled_shared_library_has_exactly_one_component_with_its_licence_text(
    home: Path, sbom: dict[str, Any]
) -> None:
    libraries = shared_libraries(home)
    assert any(name.startswith("lib/libssl-") for name in libraries)  # the bundle does graft libraries here
    for name in libraries:
        owners = covering(sbom, name)
        assert len(owners) == 1, (name, [c["name"] for c in owners])
        (license_file,) = props(owners[0], PROPERTY_LICENSE)
        assert (home / license_file).stat().st_size > 500, (name, license_file)


def test_each_grafted_library_carries_the_copyright_file_of_its_debian_package(
    home: Path, sbom: dict[str, Any]
) -> None:
    by_name = {c["name"]: c for c in sbom["components"]}
    stems = {n.split("/")[-1].split("-")[0] for n in shared_libraries(home) if n.count("/") == 1}
    # what the issue lists, as the build machine has it (stems present in this bundle)
    assert {"libssl", "libcrypto", "libffi", "libz", "libbz2", "liblzma", "libuuid"} <= stems
    for component in sbom["components"]:
        if component["name"] == "cpython":
            continue
        assert component["purl"].startswith(f"pkg:deb/debian/{component['name']}@")
        (license_file,) = props(component, PROPERTY_LICENSE)
        shipped = (home / license_file).read_bytes()
        assert shipped == (Path("/usr/share/doc") / component["name"] / "copyright").read_bytes()
        for bundled in props(component, PROPERTY_FILE):
            assert (home / bundled).is_file()
    ssl_owner = next(c for c in by_name.values() if any("libssl-" in f for f in props(c, PROPERTY_FILE)))
    assert "OpenSSL" in (home / props(ssl_owner, PROPERTY_LICENSE)[0]).read_text()


def test_cpython_ships_with_the_psf_licence(home: Path, sbom: dict[str, Any]) -> None:
    (cpython,) = [c for c in sbom["components"] if c["name"] == "cpython"]
    assert cpython["licenses"] == [{"license": {"id": "PSF-2.0"}}]
    (license_file,) = props(cpython, PROPERTY_LICENSE)
    assert "PYTHON SOFTWARE FOUNDATION LICENSE" in (home / license_file).read_text()


def test_the_sbom_is_cyclonedx_and_names_each_component(sbom: dict[str, Any]) -> None:
    assert (sbom["bomFormat"], sbom["specVersion"], sbom["version"]) == ("CycloneDX", "1.5", 1)
    assert sbom["metadata"]["component"]["name"] == HOME_DIR
    refs = [c["bom-ref"] for c in sbom["components"]]
    assert len(set(refs)) == len(refs)
    for component in sbom["components"]:
        assert component["type"] == "library" and component["name"] and component["version"]
        assert component["purl"] == component["bom-ref"] and len(component["licenses"]) == 1
    assert sbom["dependencies"] == [{"ref": HOME_DIR, "dependsOn": refs}]


def test_the_plugins_sbom_covers_every_shared_library_of_its_directory_with_a_licence_shipped_there(
    built: Path,
) -> None:
    site_sbom = json.loads((built / "libdummy_py.site" / "_sbom.cdx.json").read_text())
    assert site_sbom["metadata"]["component"]["name"] == "dummy_py"
    elf = [name for name in shared_libraries(built) if name != "libdummy_py.so"]  # the plugin is the subject
    assert any(name.startswith("libdummy_py.site/_cffi_backend.") for name in elf)  # cffi, grafted or not
    for name in elf:
        owners = covering(site_sbom, name)
        assert len(owners) == 1, (name, [c["name"] for c in owners])
        (license_file,) = props(owners[0], PROPERTY_LICENSE)
        assert (built / license_file).is_file(), (name, license_file)
    python = {c["name"]: c for c in site_sbom["components"] if c["purl"].startswith("pkg:pypi/")}
    assert python["cffi"]["licenses"] == [{"license": {"id": "MIT-0"}}]
    assert python["falco-plugin-sdk"]["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    for component in python.values():
        (license_file,) = props(component, PROPERTY_LICENSE)
        assert (built / license_file).stat().st_size > 0


def test_the_archive_carries_the_licences_and_the_sbom(built: Path, tmp_path: Path) -> None:
    library = built / "libdummy_py.so"
    archive = package_plugin(project_dir("dummy"), library, read_library(library), tmp_path)[0].path
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    shipped = {str(p.relative_to(built)) for p in (built / HOME_DIR / "licenses").iterdir()}
    assert shipped and shipped <= names
    assert f"{HOME_DIR}/sbom.cdx.json" in names and "libdummy_py.site/_sbom.cdx.json" in names


def test_a_library_from_no_debian_package_fails_the_build_by_name(tmp_path: Path) -> None:
    stray = tmp_path / "libstray.so.1"
    stray.write_bytes(b"\x7fELF")
    license_file = tmp_path / "LICENSE.txt"
    license_file.write_text("PSF")
    assert debian_package(stray) is None
    with pytest.raises(LicenseNotFound, match=r"^libstray\.so\.1 \(bundled as lib/libstray-1\.so\.1\) does not come"):
        write_home_licenses(tmp_path / "home", {stray: "lib/libstray-1.so.1"}, license_file)


def test_an_interpreter_without_its_licence_fails_the_build(tmp_path: Path) -> None:
    with pytest.raises(LicenseNotFound, match="CPython's licence is not at"):
        write_home_licenses(tmp_path / "home", {}, tmp_path / "LICENSE.txt")
