"""The async fixture plugin in the real Falco 0.44.1: listed with its capability,
its async events reach rules, and a capture Falco writes carries its dump_state.

Falco is found through ``FALCO`` or at ``<repo>/../shared/realhost/falco``;
the tests skip when it is absent or cannot run. (That build is a
``MINIMAL_BUILD``, which compiles out the libs metrics collector: plugin
metrics never show in its snapshots, so they are checked with the C host.)
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from harness import REPO, Built


def find_falco() -> Path:
    configured = os.environ.get("FALCO")
    falco = Path(configured) if configured else REPO.parent / "shared" / "realhost" / "falco"
    if not (falco.is_file() and os.access(falco, os.X_OK)):
        pytest.skip(f"real Falco not found (set FALCO; default {falco})")
    probe = subprocess.run([str(falco), "--version"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"{falco} cannot run here (its runtime libraries?): {probe.stderr.strip()[:200]}")
    return falco


RULES = """\
- rule: async sample
  desc: every async sample event of fxt_async
  condition: evt.asynctype = sample
  output: n=%evt.num t=%evt.asynctype
  priority: INFO
  source: fxt_async
"""


def write_config(tmp_path: Path, library: Path, **extra: object) -> Path:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    config = {
        "engine": {"kind": "nodriver"},
        "plugins": [{"name": "fxt_async", "library_path": str(library), "init_config": {"workers": 1, "count": 3}}],
        "load_plugins": ["fxt_async"],
        "rules_files": [str(rules)],
        "stdout_output": {"enabled": True},
        "log_stderr": True,
        "log_syslog": False,
        "watch_config_files": False,
        **extra,
    }
    path = tmp_path / "falco.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def test_falco_lists_the_async_events_capability(built: Built, tmp_path: Path) -> None:
    falco = find_falco()
    config = write_config(tmp_path, built("async_events").library)
    proc = subprocess.run(
        [str(falco), "-c", str(config), "--list-plugins"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    listing = proc.stdout.split("Name: fxt_async", 1)[1]
    assert "  - Event Sourcing (ID=999110, source='fxt_async')\n  - Async Events\n" in listing


def test_async_events_reach_rules_and_a_capture_carries_the_dumped_state(built: Built, tmp_path: Path) -> None:
    falco = find_falco()
    prefix = tmp_path / "cap"
    capture = {"enabled": True, "path_prefix": str(prefix), "mode": "all_rules", "default_duration": 1000}
    config = write_config(tmp_path, built("async_events").library, capture=capture)
    proc = subprocess.Popen(
        [str(falco), "-c", str(config), "--disable-source", "syscall"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    alerts: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while len(alerts) < 3 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if "Informational n=" in line:
                alerts.append(line.split("Informational ", 1)[1].strip())
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert alerts == ["n=1 t=sample", "n=2 t=sample", "n=3 t=sample"], err
    assert "Traceback" not in err and "Error" not in err, err
    files = list(tmp_path.glob("cap_*.scap"))
    assert len(files) == 1, (files, err)
    data = gzip.decompress(files[0].read_bytes())  # Falco writes captures gzip-compressed
    # dump_state ran when Falco opened the capture: its events come before the samples.
    for text in (b"state 0 of 1", b"state 1 of 1", b"stats ", b"w0 0", b"w0 2"):
        assert text in data, text
    assert data.index(b"state 0 of 1") < data.index(b"w0 1")
