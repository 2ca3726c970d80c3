"""What an AsyncPlugin class declares, checked at build time, and the symbols it gets."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from falco_plugin import AsyncPlugin, Emit, SpecError
from falco_plugin._internal.spec import resolve


def plugin(**attrs: Any) -> type[AsyncPlugin]:
    return type("P", (AsyncPlugin,), {"name": "p", **attrs})


def test_an_async_only_plugin_exports_exactly_the_required_symbols() -> None:
    spec = resolve(plugin(async_events=("a", "b.c")))
    assert spec.capabilities == ("async",)
    assert set(spec.symbols()) >= {"plugin_get_async_events", "plugin_set_async_event_handler"}
    assert "plugin_dump_state" not in spec.symbols()
    assert "plugin_get_async_event_sources" not in spec.symbols()
    assert spec.required_api_version == "3.6.0"


def test_sources_and_dump_state_add_their_symbols() -> None:
    def dump_state(self: AsyncPlugin, emit: Emit) -> None:
        emit("a")

    spec = resolve(plugin(async_events=("a",), async_event_sources=("syscall", "k8s"), dump_state=dump_state))
    assert {"plugin_get_async_event_sources", "plugin_dump_state"} <= set(spec.symbols())
    assert spec.required_api_version == "3.10.0"


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({}, "P.async_events must be a non-empty tuple of event names, got ()"),
        ({"async_events": "abc"}, "P.async_events must be a non-empty tuple"),
        ({"async_events": ("ok", "not ok")}, "P.async_events: 'not ok' is not a valid event name"),
        ({"async_events": ("x" * 32,)}, "at most 31 characters"),
        ({"async_events": ("a", "a")}, "P.async_events: duplicate names"),
        ({"async_events": ("a",), "async_event_sources": ("Bad",)}, "P.async_event_sources: 'Bad' must match"),
        ({"async_events": ("a",), "async_stop_timeout": -1}, "P.async_stop_timeout must be a number of seconds"),
    ],
)
def test_bad_declarations_are_spec_errors(attrs: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as info:
        resolve(plugin(**attrs))
    assert message in str(info.value)


def test_outside_a_host_emit_drops() -> None:
    p = plugin(async_events=("a",))()
    assert p.emit("a", b"x") is False
    assert tuple(p.async_stats()) == (0, 0, 0)


def test_a_session_joins_its_workers_and_refuses_new_ones_once_ended() -> None:
    from falco_plugin import AsyncSession, PluginError

    p = plugin(async_events=("a",))()
    p.log = logging.getLogger("test")
    session = AsyncSession(p.emit, p)
    seen: list[bool] = []
    session.spawn(lambda: seen.append(session.wait(30)))
    session._end(5.0)
    assert seen == [True] and session.stopped
    with pytest.raises(PluginError, match="the session has ended"):
        session.spawn(lambda: None)
