"""An async plugin's events in the stream the host reads: found with the libsinsp host, which,
like Falco, sets the handler when the capture opens and returns queued async events from
``next`` before the source's own (``evt.is_async``, ``evt.asynctype``). The Python host now does
the same in :meth:`PythonHost.run`; the C host's run reads the source only (it has its own
``--async-seconds`` mode, tests/test_async_events.py).
"""

from __future__ import annotations

import pytest
from falco_plugin_tools.host.runners import Host
from harness import Built

FIELDS = ["evt.num", "evt.is_async", "evt.asynctype", "evt.source", "evt.pluginname", "evt.plugininfo"]


def test_an_async_plugins_events_reach_the_stream_numbered_with_the_rest(host: Host, built: Built) -> None:
    if host.name == "c":
        pytest.skip("the C host's run reads the source only; its async mode is --async-seconds")
    run = host.run(
        built("async_events").library,
        init_config='{"workers": 1, "count": 2}',
        open_params="eof:60",  # the source has no events of its own; it ends after 60 s at the latest
        fields=FIELDS,
        n=2,  # the run ends with the second async event
    )
    assert run.failure is None
    assert [e.values for e in run.events] == [
        {
            "evt.num": str(i),
            "evt.is_async": "true",
            "evt.asynctype": "sample",
            "evt.source": "fxt_async",
            "evt.pluginname": None,
            "evt.plugininfo": None,
        }
        for i in (1, 2)
    ]
    assert all(e.errors == {} for e in run.events)
