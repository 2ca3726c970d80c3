"""The async fixture plugin (tests/plugins/async_events) in the real Falco 0.44.1.

It is listed with its capability, its async events reach rules
(``evt.asynctype``; Falco 0.44 has no ``evt.type`` for plugin sources), and a
capture Falco writes (``capture.enabled``) starts with what its
``dump_state`` emitted. Plugin metrics are not checked here: this Falco is a
``MINIMAL_BUILD``, which compiles the libs metrics collector out of its
metrics snapshots (they are checked with the C host instead).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

from falco_plugin_tools.build import BuildResult
from falco_runner import REPO, PluginConf, falco_config, run_falco, write_config

RULES = """\
- rule: async sample
  desc: every async sample event of fxt_async
  condition: evt.asynctype = sample
  output: n=%evt.num t=%evt.asynctype
  priority: INFO
  source: fxt_async
"""


def async_plugin(build: Callable[[str | Path], BuildResult]) -> PluginConf:
    library = build(REPO / "tests" / "plugins" / "async_events").library
    # three events at once; the source ends after 3 s, long enough for Falco to take them
    return PluginConf("fxt_async", library, init_config={"workers": 1, "count": 3}, open_params="eof:3")


def test_falco_lists_the_async_events_capability(
    falco: Path, build_plugin_project: Callable[[str | Path], BuildResult], tmp_path: Path
) -> None:
    config = write_config(tmp_path / "falco.yaml", falco_config([async_plugin(build_plugin_project)]))
    run = run_falco(falco, config, "--list-plugins")
    assert run.returncode == 0, run.describe()
    listing = run.stdout.split("Name: fxt_async", 1)[1]
    assert "  - Event Sourcing (ID=999110, source='fxt_async')\n  - Async Events\n" in listing


def test_async_events_reach_rules_and_a_capture_carries_the_dumped_state(
    falco: Path, build_plugin_project: Callable[[str | Path], BuildResult], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    capture = {"enabled": True, "path_prefix": str(tmp_path / "cap"), "mode": "all_rules", "default_duration": 1000}
    plugin = async_plugin(build_plugin_project)
    config = write_config(tmp_path / "falco.yaml", falco_config([plugin], rules=[rules], capture=capture))
    run = run_falco(falco, config, "--disable-source", "syscall")
    assert run.returncode == 0, run.describe()
    assert [a["output"].split(": Informational ", 1)[-1] for a in run.alerts] == [
        f"n={n} t=sample" for n in (1, 2, 3)
    ], run.describe()
    assert run.noise() == [], run.describe()
    (capture_file,) = tmp_path.glob("cap_*.scap")
    data = gzip.decompress(capture_file.read_bytes())  # Falco writes captures gzip-compressed
    # dump_state ran when Falco opened the capture: its events come before the samples.
    for text in (b"state 0 of 1", b"state 1 of 1", b"stats ", b"w0 0", b"w0 2"):
        assert text in data, text
    assert data.index(b"state 0 of 1") < data.index(b"w0 1")


def test_falco_survives_workers_writing_to_a_peer_that_closes_while_it_stops_them(
    falco: Path, build_plugin_project: Callable[[str | Path], BuildResult], tmp_path: Path, closing_peer: str
) -> None:
    """Falco keeps SIGPIPE at its default action. A worker writes to a peer that closes each connection
    (EPIPE, again and again) until Falco stops at the source's end, when stop_async shuts its socket
    under a sendall: five runs, each must end normally (Falco died of SIGPIPE, rc -13, before the
    workers blocked it)."""
    library = build_plugin_project(REPO / "tests" / "plugins" / "async_events").library
    conf = PluginConf("fxt_async", library, init_config={"workers": 0, "sink": closing_peer}, open_params="eof:1")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    config = write_config(tmp_path / "falco.yaml", falco_config([conf], rules=[rules]))
    for _ in range(5):
        run = run_falco(falco, config, "--disable-source", "syscall")
        assert run.returncode == 0, run.describe()
