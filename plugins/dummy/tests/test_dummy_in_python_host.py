"""dummy_py's optional entry points, driven by the SDK's Python host as libsinsp drives them."""

from __future__ import annotations

import json
import re

import pytest
from dummy_py.plugin import DummyPlugin
from falco_plugin_tools.build import BuildResult
from falco_plugin_tools.host import ExtractionError, PluginHandle, PluginLibrary


def test_info_matches_the_plugin_class(dummy_plugin: PluginHandle) -> None:
    info = dummy_plugin.info
    assert (info.name, info.id, info.event_source) == (DummyPlugin.name, DummyPlugin.id, DummyPlugin.event_source)
    assert info.capabilities == frozenset({"sourcing", "extraction"})
    assert [f.name for f in info.fields] == ["dummy.value", "dummy.strvalue", "dummy.divisible"]


def test_events_are_numbered_from_one_and_carry_the_sample(dummy_plugin: PluginHandle) -> None:
    with dummy_plugin.open('{"start": 10, "maxEvents": 3}') as capture:
        events = list(capture.events())
    assert [e.num for e in events] == [1, 2, 3]
    assert [e.payload for e in events] == [b"11", b"12", b"13"]
    assert [dummy_plugin.extract(e, "dummy.value") for e in events] == [11, 12, 13]


def test_event_to_string_shows_the_sample_as_json(dummy_plugin: PluginHandle) -> None:
    with dummy_plugin.open('{"start": 41, "maxEvents": 1}') as capture:
        (event,) = list(capture.events())
    assert json.loads(dummy_plugin.event_to_string(event)) == {"sample": "42"}


def test_progress_goes_from_zero_to_complete(dummy_plugin: PluginHandle) -> None:
    with dummy_plugin.open('{"maxEvents": 200}') as capture:
        assert capture.progress()[0] == 0.0
        first = next(capture.events())  # one batch of 128 is read
        assert first.num == 1
        assert capture.progress()[0] == pytest.approx(64.0)
        list(capture.events())
        assert capture.progress()[0] == 100.0


def test_open_params_suggestion_opens_a_stream(dummy_plugin: PluginHandle) -> None:
    (suggestion,) = dummy_plugin.list_open_params()
    with dummy_plugin.open(suggestion["value"]) as capture:
        assert len(list(capture.events())) == 20


def test_divisible_by_zero_fails_only_that_extraction(dummy_plugin: PluginHandle) -> None:
    with dummy_plugin.open('{"maxEvents": 1}') as capture:
        (event,) = list(capture.events())
    with pytest.raises(
        ExtractionError, match=re.escape("extracting dummy.divisible[0]: the divisor must be a positive")
    ):
        dummy_plugin.extract(event, "dummy.divisible[0]")
    assert dummy_plugin.extract(event, "dummy.divisible[1]") == 1


def test_an_empty_config_means_the_defaults(dummy: BuildResult) -> None:
    with PluginLibrary.load(dummy.library) as lib, lib.init("") as plugin:
        with plugin.open() as capture:
            assert len(list(capture.events())) == 20
