"""Besides a source plugin's own fields, libsinsp gives its events the generic event fields
(``evt.num``, ``evt.source``, ``evt.plugininfo``...), but not the syscall ones (``evt.type``):
found by comparing our hosts with the libsinsp host. The Python host now answers them as libsinsp
does; the C host is the raw ABI driver and knows only the plugin's own fields.
"""

from __future__ import annotations

from falco_plugin_tools.host.runners import Failure, Host
from harness import Built

GENERIC = ["evt.num", "evt.source", "evt.pluginname", "evt.plugininfo", "evt.is_async", "evt.asynctype"]
SYSCALL_ONLY = ["evt.type", "evt.dir", "proc.name"]


def test_a_plugin_source_has_libsinsps_generic_event_fields(host: Host, built: Built) -> None:
    run = host.run(
        built("dummy").library,
        init_config='{"jitter": 0}',
        open_params='{"start": 0, "maxEvents": 2}',
        fields=[*GENERIC, "evt.rawtime", "evt.rawtime.s", "evt.rawtime.ns", *SYSCALL_ONLY, "dummy.value"],
    )
    if host.name == "c":  # it refuses any name that is not one of the plugin's fields
        assert (run.failure, run.events) == (Failure("fields", "unknown field evt.num"), [])
        return
    assert run.failure is None
    assert [{f: e.values[f] for f in GENERIC} for e in run.events] == [
        {
            "evt.num": str(i),
            "evt.source": "dummy_py",
            "evt.pluginname": "dummy_py",
            "evt.plugininfo": f'{{"sample": "{i}"}}',
            "evt.is_async": "false",
            "evt.asynctype": None,
        }
        for i in (1, 2)
    ]
    assert [e.errors for e in run.events] == [{f: f"unknown field '{f}'" for f in SYSCALL_ONLY}] * 2
    assert run.column("dummy.value") == ["1", "2"]
    # The event's timestamp in ns (the host's clock when the plugin leaves it to the host), and its parts.
    for e in run.events:
        ts = int(e.values["evt.rawtime"] or 0)
        assert ts > 1_600_000_000 * 10**9
        assert (e.values["evt.rawtime.s"], e.values["evt.rawtime.ns"]) == (str(ts // 10**9), str(ts % 10**9))
