"""Where the build finds yyjson's C source for plugins with JSON fields (falco_plugin_tools.build.yyjson)."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from falco_plugin_tools.build import yyjson
from falco_plugin_tools.build.yyjson import ENV, YyjsonError, source_dir


def complete(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in yyjson.FILES:
        (directory / name).write_text("/* stand-in */\n")
    return directory


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "falco-plugin" / f"yyjson-{yyjson.YYJSON_VERSION}"


def test_the_variable_names_a_directory_that_must_hold_both_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "empty"))
    with pytest.raises(YyjsonError, match=r"does not hold yyjson\.c and yyjson\.h"):
        source_dir()
    monkeypatch.setenv(ENV, str(complete(tmp_path / "given")))
    assert source_dir() == tmp_path / "given"


def test_a_filled_cache_is_used_without_fetching(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    complete(cache)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("fetched although cached"))
    assert source_dir() == cache
    assert source_dir(fetch=False) == cache


def test_an_empty_cache_is_an_error_when_fetching_is_not_allowed(cache: Path) -> None:
    with pytest.raises(YyjsonError, match="is not in"):
        source_dir(fetch=False)


def fake_pip(returncode: int, sdist: bytes | None) -> Any:
    def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        dest = Path(cmd[cmd.index("--dest") + 1])
        if sdist is not None:
            (dest / f"{yyjson.PYPI_PACKAGE}-{yyjson.PYPI_VERSION}.tar.gz").write_bytes(sdist)
        return subprocess.CompletedProcess(cmd, returncode, "", "ERROR: no matching distribution")

    return run


def sdist_bytes() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name in ("yyjson/yyjson.c", "yyjson/yyjson.h", "LICENSE"):
            data = b"/* tampered */\n"
            info = tarfile.TarInfo(f"{yyjson.PYPI_PACKAGE}-{yyjson.PYPI_VERSION}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_a_failed_download_says_what_failed_and_how_to_do_without(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "run", fake_pip(1, None))
    with pytest.raises(YyjsonError, match=rf"yyjson=={yyjson.PYPI_VERSION} from PyPI\) failed: .*set \${ENV}"):
        source_dir()
    assert not cache.exists()


def test_a_download_with_another_checksum_is_refused_and_not_cached(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subprocess, "run", fake_pip(0, sdist_bytes()))
    with pytest.raises(YyjsonError, match=f"expected {yyjson.SDIST_SHA256}"):
        source_dir()
    assert not cache.exists()
