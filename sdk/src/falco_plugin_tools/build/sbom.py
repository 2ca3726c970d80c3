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

Each standalone plugin's site directory then gets ``_sbom.cdx.json``, the
list for the whole plugin directory as its archive holds it: the home's
components, the libraries grafted into the site directory (their Debian
copyright files in ``_licenses/debian-<package>/``), and the Python
distributions (a whole one's licence files are in its ``.dist-info``, a
partial one's in ``_licenses/<name>-<version>/``; one shipping none, like
the SDK's runtime from an editable install, gets the build machine's text
of its SPDX licence from ``/usr/share/common-licenses``).

The SBOM is written here rather than by a generator (cyclonedx-bom describes
Python environments, not ELF libraries copied from Debian packages), and
holds no timestamp or serial number: separate builds of a home agree on
every file of it.
"""

from __future__ import annotations

import email.parser
import importlib.metadata as md
import json
import platform
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "LICENSES_DIR",
    "SBOM_FILE",
    "SITE_SBOM_FILE",
    "Component",
    "LicenseNotFound",
    "debian_package",
    "write_home_licenses",
    "write_site_sbom",
]

LICENSES_DIR = "licenses"
SBOM_FILE = "sbom.cdx.json"
SITE_SBOM_FILE = "_sbom.cdx.json"
"""In a standalone plugin's site directory: the whole plugin directory's components (see :func:`write_site_sbom`)."""
SITE_LICENSES = "_licenses"
COMMON_LICENSES = Path("/usr/share/common-licenses")
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
    """Relative to the bundle's root (the home; the plugin directory for a site SBOM); empty: none shipped."""
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
                *([{"name": "falco-plugin-sdk:license-file", "value": self.license_file}] if self.license_file else []),
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


def _debian_components(root: Path, libraries: Mapping[Path, str], license_at: Callable[[str], str]) -> list[Component]:
    """One component per Debian package of ``libraries`` (build-machine file -> its path under ``root``),
    its copyright file copied to ``root / license_at(package)``."""
    by_package: dict[tuple[str, str], list[str]] = {}
    for src, bundled in sorted(libraries.items(), key=lambda item: item[1]):
        found = debian_package(src)
        if found is None:
            raise LicenseNotFound(
                f"{src.name} (bundled as {bundled}) does not come from a Debian package: no licence to ship with it"
            )
        by_package.setdefault(found, []).append(bundled)
    arch = _DEB_ARCH.get(platform.machine(), platform.machine())
    out = []
    for (package, version), files in sorted(by_package.items()):
        copyright_file = Path("/usr/share/doc") / package / "copyright"
        if not copyright_file.is_file():
            raise LicenseNotFound(f"{', '.join(files)}: {copyright_file} (the licence of {package}) is missing")
        target = root / license_at(package)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(copyright_file, target)
        out.append(
            Component(
                name=package,
                version=version,
                purl=f"pkg:deb/debian/{package}@{urllib.parse.quote(version, safe='')}?arch={arch}",
                license={"name": f"Debian copyright file of {package}"},
                license_file=license_at(package),
                files=tuple(sorted(files)),
            )
        )
    return out


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
    components += _debian_components(home, libraries, lambda package: f"{LICENSES_DIR}/{package}.txt")
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


# -- a standalone plugin's site directory ------------------------------------------------------


Metadata = md.PackageMetadata | email.message.Message


def _field(metadata: Metadata, key: str) -> str:
    return str(metadata[key]) if key in metadata else ""


def _license_of(metadata: Metadata) -> dict[str, str]:
    """A distribution's licence as CycloneDX states it: its SPDX expression, else what it says."""
    expression = _field(metadata, "License-Expression")
    if expression:
        return {"expression": str(expression)} if " " in str(expression) else {"id": str(expression)}
    declared = _field(metadata, "License").strip()
    if declared and "\n" not in declared and len(declared) <= 80:
        return {"name": declared}
    classifiers = [str(c) for c in metadata.get_all("Classifier") or [] if str(c).startswith("License ::")]
    return {"name": classifiers[0].rsplit(" :: ", 1)[-1] if classifiers else "unknown"}


def _python_component(
    site_dir: Path, name: str, version: str, licence: dict[str, str], license_files: list[Path], files: list[str]
) -> Component:
    """A Python distribution; without a licence file of its own, the build machine's text of its
    single SPDX licence (``/usr/share/common-licenses``) is shipped for it, where there is one."""
    base = site_dir.parent
    if not license_files and licence.get("id") and (COMMON_LICENSES / licence["id"]).is_file():
        target = site_dir / SITE_LICENSES / f"{name}-{version}" / "LICENSE"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(COMMON_LICENSES / licence["id"], target)
        license_files = [target]
    return Component(
        name=name,
        version=version,
        purl=f"pkg:pypi/{name.lower().replace('_', '-')}@{urllib.parse.quote(version, safe='')}",
        license=licence,
        license_file=str(sorted(license_files)[0].relative_to(base)) if license_files else "",
        files=tuple(sorted(files)),
    )


def _python_components(site_dir: Path) -> list[Component]:
    """Every Python distribution in ``site_dir``: shipped whole (with its ``.dist-info``), in part (its
    licence in ``_licenses/<name>-<version>/``), and the SDK's runtime (``falco_plugin/``)."""
    out = []
    prefix = site_dir.name
    for info in sorted(site_dir.glob("*.dist-info")):
        metadata = email.parser.Parser().parsestr((info / "METADATA").read_text(encoding="utf-8", errors="replace"))
        licenses = [
            p
            for p in sorted(info.rglob("*"))
            if p.is_file()
            and (p.parent.name == "licenses" or p.name.upper().startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE")))
        ]
        record = info / "RECORD"
        tops = sorted(
            {line.split("/", 1)[0].split(",", 1)[0] for line in record.read_text().splitlines() if line}
            if record.is_file()
            else {info.name}
        )
        shipped = [t for t in tops if t and t != ".." and (site_dir / t).exists()]  # not console scripts (../bin)
        files = [f"{prefix}/{t}" + ("/" if (site_dir / t).is_dir() else "") for t in shipped]
        out.append(
            _python_component(
                site_dir, str(metadata["Name"]), str(metadata["Version"]), _license_of(metadata), licenses, files
            )
        )
    for folder in sorted((site_dir / SITE_LICENSES).glob("compiled_in/*-*")):
        # C code compiled into the plugin's library (yyjson for JSON fields): its notice and its identity
        meta = json.loads((folder / "component.json").read_text(encoding="utf-8"))
        libs = sorted(
            str(p.relative_to(site_dir.parent)) for p in site_dir.parent.glob(f"{prefix.removesuffix('.site')}.so")
        )
        out.append(
            Component(
                name=str(meta["name"]),
                version=str(meta["version"]),
                purl=str(meta["purl"]),
                license=dict(meta["license"]),
                license_file=str((folder / "LICENSE").relative_to(site_dir.parent)),
                files=tuple(libs),
            )
        )
    for folder in sorted((site_dir / SITE_LICENSES).glob("*-*")):
        name, _, version = folder.name.rpartition("-")
        if name == "falco-plugin-sdk" or name.startswith("debian-"):
            continue
        installed: Metadata | None
        try:
            installed = md.metadata(name)
        except md.PackageNotFoundError:
            installed = None
        files = sorted(str(p.relative_to(site_dir.parent)) for p in site_dir.glob("*.so") if name in p.name)
        licenses = [p for p in sorted(folder.rglob("*")) if p.is_file()]
        licence = _license_of(installed) if installed is not None else {"name": "unknown"}
        out.append(_python_component(site_dir, name, version, licence, licenses, files))
    if (site_dir / "falco_plugin").is_dir():
        from falco_plugin._internal.version import SDK_VERSION

        out.append(
            _python_component(
                site_dir, "falco-plugin-sdk", SDK_VERSION, {"id": "Apache-2.0"}, [], [f"{prefix}/falco_plugin/"]
            )
        )
    return out


def write_site_sbom(site_dir: Path, home: Path, libraries: Mapping[Path, str]) -> list[Component]:
    """``<site>/_sbom.cdx.json``: everything of a standalone plugin directory, paths relative to it.

    The home's components (from its ``sbom.cdx.json``), the libraries grafted into the
    site directory (``libraries``: build-machine file -> path in the site dir; their
    licences go to ``_licenses/debian-<package>/copyright``) and the Python distributions."""
    base = site_dir.parent
    components = []
    home_sbom = json.loads((home / SBOM_FILE).read_text(encoding="utf-8"))
    for c in home_sbom.get("components") or []:
        props = [(str(p["name"]), str(p["value"])) for p in c.get("properties") or []]
        license_file = next((v for k, v in props if k == "falco-plugin-sdk:license-file"), "")
        components.append(
            Component(
                name=str(c["name"]),
                version=str(c["version"]),
                purl=str(c["purl"]),
                license=dict(c["licenses"][0]["license"]),
                license_file=f"{home.name}/{license_file}" if license_file else "",
                files=tuple(f"{home.name}/{v}" for k, v in props if k == "falco-plugin-sdk:file"),
            )
        )
    in_site = {src: f"{site_dir.name}/{rel}" for src, rel in libraries.items()}
    grafted = _debian_components(
        base, in_site, lambda package: f"{site_dir.name}/{SITE_LICENSES}/debian-{package}/copyright"
    )
    known = {c.purl for c in components}
    components += [c for c in grafted if c.purl not in known]
    components += _python_components(site_dir)
    subject = {"type": "application", "name": site_dir.name.removeprefix("lib").removesuffix(".site")}
    write_sbom(site_dir / SITE_SBOM_FILE, subject, components)
    return components
