"""dummy_py behaves like the upstream dummy plugin, loaded the way Falco loads it."""

from __future__ import annotations

from collections.abc import Callable

from dummy_chost import Run


def test_produces_max_events_then_ends(run_dummy: Callable[..., Run]) -> None:
    run = run_dummy(params='{"maxEvents": 300}')
    assert run.ok, run.proc.stderr
    assert len(run.events) == 300  # spans several batches of 128
    assert "done events=300 rc=2" in run.proc.stdout  # EOF


def test_defaults_to_twenty_events(run_dummy: Callable[..., Run]) -> None:
    assert len(run_dummy().events) == 20


def test_samples_grow_by_one_without_jitter(run_dummy: Callable[..., Run]) -> None:
    run = run_dummy(config='{"jitter": 0}', params='{"start": 41, "maxEvents": 4}')
    assert [e["dummy.value"] for e in run.events] == ["42", "43", "44", "45"]


def test_samples_grow_by_one_plus_at_most_jitter(run_dummy: Callable[..., Run]) -> None:
    run = run_dummy(config='{"jitter": 3}', params='{"start": 0, "maxEvents": 200}')
    values = [int(e["dummy.value"]) for e in run.events]
    steps = [b - a for a, b in zip([0, *values], values, strict=False)]
    assert all(1 <= s <= 4 for s in steps)
    assert len(set(steps)) > 1  # the jitter is really random


def test_strvalue_is_the_value_as_text(run_dummy: Callable[..., Run]) -> None:
    run = run_dummy(fields="dummy.value,dummy.strvalue", params='{"maxEvents": 5}')
    assert all(e["dummy.value"] == e["dummy.strvalue"] for e in run.events)


def test_divisible_checks_the_value_against_the_index(run_dummy: Callable[..., Run]) -> None:
    run = run_dummy(fields="dummy.value,dummy.divisible[3]", params='{"maxEvents": 50}')
    for e in run.events:
        assert e["dummy.divisible[3]"] == ("1" if int(e["dummy.value"]) % 3 == 0 else "0")


def test_divisible_by_zero_is_an_extraction_error_not_a_crash(run_dummy: Callable[..., Run]) -> None:
    run = run_dummy(fields="dummy.divisible[0],dummy.value", params='{"maxEvents": 3}')
    assert run.ok
    assert len(run.events) == 3
    assert "the divisor must be a positive integer" in run.proc.stdout
    assert all(e["dummy.value"].isdigit() for e in run.events)


def test_negative_jitter_is_rejected_naming_the_key(run_dummy: Callable[..., Run]) -> None:
    run = run_dummy(config='{"jitter": -1}')
    assert run.proc.returncode == 1
    assert "invalid init config: jitter: must be >= 0, got -1" in run.proc.stderr


def test_unknown_open_param_is_rejected_naming_the_key(run_dummy: Callable[..., Run]) -> None:
    run = run_dummy(params='{"maxevents": 3}')
    assert run.proc.returncode == 1
    assert "invalid open params: maxevents: unknown setting" in run.proc.stderr


def test_open_params_must_be_json(run_dummy: Callable[..., Run]) -> None:
    run = run_dummy(params="20")
    assert run.proc.returncode == 1
    assert "invalid open params: expected an object" in run.proc.stderr
