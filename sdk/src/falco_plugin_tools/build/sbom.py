"""What a standalone bundle ships, with the licence of each part: licence texts and a CycloneDX SBOM.

A standalone home redistributes CPython and the shared libraries its
extension modules need (OpenSSL, libffi, zlib, bzip2, xz, libuuid...), so it
carries their licences: in ``python3.X/licenses/`` the copyright file of the
Debian package each library came from (``/usr/share/doc/<package>/copyright``
on the build machine, the text Debian ships with the library), beside
CPython's own ``LICENSE.txt`` (already at ``lib/python3.X/LICENSE.txt``), and
in ``python3.X/sbom.cdx.json`` a CycloneDX 1.5 list of the components: name,
version, package URL, licence, the bundled files and the licence file of
each. A library with no licence to be found fails the build: shipping it
without one is not allowed.

The SBOM is written here rather than by a generator (cyclonedx-bom describes
Python environments, not ELF libraries copied from Debian packages), and
holds no timestamp or serial number: separate builds of a home agree on
every file of it.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LICENSES_DIR", "SBOM_FILE", "Component", "LicenseNotFound", "debian_package", "write_home_licenses"]

LICENSES_DIR = "licenses"
SBOM_FILE = "sbom.cdx.json"
_DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


class LicenseNotFound(Exception):  # noqa: N818 - the name says what is missing
    """A bundled file whose licence text cannot be found on the build machine."""


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    purl: str
    license: dict[str, str]
    """CycloneDX ``license`` object: ``{"id": SPDX id}`` or ``{"name": ...}``."""
    license_file: str
    """Relative to the bundle's root (the home)."""
    files: tuple[str, ...]

    def to_cyclonedx(self) -> dict[str, Any]:
        return {
            "type": "library",
            "bom-ref": self.purl,
            "name": self.name,
            "version": self.version,
            "purl": self.purl,
            "licenses": [{"license": self.license}],
            "properties": [
                {"name": "falco-plugin-sdk:license-file", "value": self.license_file},
                *({"name": "falco-plugin-sdk:file", "value": f} for f in self.files),
            ],
        }


def _dpkg_query(*args: str) -> str | None:
    tool = shutil.which("dpkg-query")
    if tool is None:
        return None
    proc = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() if proc.returncode == 0 else None


def debian_package(path: Path) -> tuple[str, str] | None:
    """``(package, version)`` of the Debian package that installed ``path``, or ``None``."""
    real = path.resolve()
    text = str(real)
    # with a merged /usr, dpkg may know the file under either spelling
    alternatives = [text, text.removeprefix("/usr")] if text.startswith("/usr/lib/") else [text, "/usr" + text]
    for candidate in alternatives:
        owner = _dpkg_query("-S", candidate)
        if owner:
            package = owner.split(": ", 1)[0].split(", ")[0]
            version = _dpkg_query("-W", "-f=${Version}", package)
            return package.split(":")[0], version or ""
    return None


def write_home_licenses(home: Path, libraries: Mapping[Path, str], python_license: Path) -> list[Component]:
    """Licence texts and ``sbom.cdx.json`` for a home holding CPython and ``libraries``
    (build-machine file -> its path in the home); the components, as written."""
    from falco_plugin_tools.build.standalone import HOME_DIR, LIB, VERSION

    if not python_license.is_file():
        raise LicenseNotFound(f"CPython's licence is not at {python_license}: cannot ship the interpreter without it")
    python_version = platform.python_version()
    components = [
        Component(
            name="cpython",
            version=python_version,
            purl=f"pkg:generic/cpython@{python_version}",
            license={"id": "PSF-2.0"},
            license_file=f"{LIB}/python{VERSION}/LICENSE.txt",
            files=(f"{LIB}/libpython{VERSION}.so.1.0", f"{LIB}/python{VERSION}/"),
        )
    ]
    by_package: dict[tuple[str, str], list[str]] = {}
    for src, bundled in sorted(libraries.items(), key=lambda item: item[1]):
        found = debian_package(src)
        if found is None:
            raise LicenseNotFound(
                f"{src.name} (bundled as {bundled}) does not come from a Debian package: no licence to ship with it"
            )
        by_package.setdefault(found, []).append(bundled)
    licenses = home / LICENSES_DIR
    arch = _DEB_ARCH.get(platform.machine(), platform.machine())
    for (package, version), files in sorted(by_package.items()):
        copyright_file = Path("/usr/share/doc") / package / "copyright"
        if not copyright_file.is_file():
            raise LicenseNotFound(f"{', '.join(files)}: {copyright_file} (the licence of {package}) is missing")
        licenses.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(copyright_file, licenses / f"{package}.txt")
        components.append(
            Component(
                name=package,
                version=version,
                purl=f"pkg:deb/debian/{package}@{urllib.parse.quote(version, safe='')}?arch={arch}",
                license={"name": f"Debian copyright file of {package}"},
                license_file=f"{LICENSES_DIR}/{package}.txt",
                files=tuple(sorted(files)),
            )
        )
    write_sbom(home / SBOM_FILE, {"type": "framework", "name": HOME_DIR, "version": python_version}, components)
    return components


def write_sbom(path: Path, subject: dict[str, str], components: list[Component]) -> None:
    """A CycloneDX 1.5 JSON document: ``subject`` (metadata.component) made of ``components``."""
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "falco-plugin-sdk"}]},
            "component": {**subject, "bom-ref": subject["name"]},
        },
        "components": [c.to_cyclonedx() for c in components],
        "dependencies": [{"ref": subject["name"], "dependsOn": [c.purl for c in components]}],
    }
    path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
