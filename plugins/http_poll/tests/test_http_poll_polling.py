"""Polling against real HTTP(S) servers on 127.0.0.1, through the plugin classes."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable

import pytest
from falco_plugin import PluginError
from http_poll.config import HttpPollParams
from http_poll.poller import Poller
from httppoll_kit import DEADLINE, FakeApi, Reply, Stream, TlsFiles, free_port, plugin_threads, record, wait_for

pytest_plugins = ["httppoll_fixtures"]

AUDIT = {"records": "/data", "id": "/id", "timestamp": "/published"}
"""Open params for the fake audit API."""


def trickling(seconds: float = 0.1, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """A response that announces a megabyte and sends one byte every ``seconds``: never silent, never done."""
    return Reply(status, b'{"data": [', headers or {}, length=10**6, trickle=seconds)


def test_each_record_becomes_one_event_carrying_url_status_id_and_record(
    api: FakeApi, open_stream: Callable[..., Stream]
) -> None:
    api.records = [record(1), record(2)]
    s = open_stream(url=api.url, max_polls=1, **AUDIT)
    events = s.until_end()
    assert [e.envelope.record for e in events] == api.records
    assert [e.envelope.id for e in events] == ["evt-1", "evt-2"]
    assert {(e.envelope.url, e.envelope.status) for e in events} == {(api.url, 200)}


def test_event_time_is_the_record_timestamp(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    api.records = [record(1, published="2024-05-01T12:00:01.5Z")]
    events = open_stream(url=api.url, max_polls=1, **AUDIT).until_end()
    assert [e.ts for e in events] == [1714564801_500000000]


def test_without_a_timestamp_pointer_the_host_stamps_events(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    api.records = [record(1)]
    events = open_stream(url=api.url, max_polls=1, records="/data").until_end()
    assert [e.ts for e in events] == [None]


def test_record_with_an_unusable_timestamp_is_still_delivered(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    api.records = [record(1, published="last tuesday")]
    s = open_stream(url=api.url, max_polls=1, **AUDIT)
    assert [e.ts for e in s.until_end()] == [None]
    assert s.stats.bad_timestamps == 1


def test_follows_link_next_through_every_page(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    api.records = [record(n) for n in range(1, 8)]
    api.page_size = 3
    s = open_stream(url=api.url, max_polls=1, **AUDIT)
    events = s.until_end()
    assert s.ids(events) == [f"evt-{n}" for n in range(1, 8)]
    assert [r.query.get("page") for r in api.seen] == [None, "2", "3"]
    assert len({e.envelope.url for e in events}) == 3  # each event names its own page


def test_a_chain_longer_than_max_pages_goes_on_at_the_next_poll(
    api: FakeApi, open_stream: Callable[..., Stream]
) -> None:
    api.records = [record(n) for n in range(1, 6)]
    api.page_size = 1
    s = open_stream(config={"max_pages": 2}, url=api.url, max_polls=3, **AUDIT)
    assert s.ids(s.until_end()) == [f"evt-{n}" for n in range(1, 6)]
    assert [r.query.get("page") for r in api.seen] == [None, "2", "3", "4", "5"]


def test_link_next_to_another_origin_is_not_followed(
    api: FakeApi, other_api: FakeApi, open_stream: Callable[..., Stream]
) -> None:
    api.records = [record(1)]
    api.link_override = f'<{other_api.url}?page=2>; rel="next"'
    s = open_stream(config={"headers": [{"name": "X-Api-Key", "value": "k-123456"}]}, url=api.url, max_polls=1, **AUDIT)
    assert s.ids(s.until_end()) == ["evt-1"]
    assert other_api.seen == []
    assert any("points to another origin" in line for line in s.logs.lines)


def test_redirect_to_another_origin_does_not_carry_the_configured_headers(
    api: FakeApi, other_api: FakeApi, open_stream: Callable[..., Stream]
) -> None:
    other_api.records = [record(1)]
    api.script.append(Reply(302, headers={"Location": other_api.url}))
    s = open_stream(
        config={"headers": [{"name": "X-Api-Key", "value": "k-123456"}, {"name": "Authorization", "value": "t-1234"}]},
        url=api.url, max_polls=1, **AUDIT,
    )  # fmt: skip
    assert s.ids(s.until_end()) == ["evt-1"]
    assert api.seen[0].headers["x-api-key"] == "k-123456"
    assert "x-api-key" not in other_api.seen[0].headers
    assert "authorization" not in other_api.seen[0].headers


def test_429_waits_as_long_as_retry_after_says_within_the_cap(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    api.records = [record(1)]
    api.script.append(Reply(429, headers={"Retry-After": "3600"}))
    s = open_stream(config={"max_retry_after": 0.1}, url=api.url, max_polls=1, **AUDIT)
    assert s.ids(s.until_end()) == ["evt-1"]
    assert s.stats.rate_limited == 1
    assert any("HTTP 429; retry 1/3 in 0.10s" in line for line in s.logs.lines)  # not the 0.01 s backoff


def test_server_errors_back_off_and_recover_without_loss(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    api.records = [record(1), record(2)]
    api.script.extend([Reply(500), Reply(503)])
    s = open_stream(url=api.url, max_polls=1, **AUDIT)
    assert s.ids(s.until_end()) == ["evt-1", "evt-2"]
    assert (s.stats.server_errors, s.stats.retries, s.stats.failed_polls) == (2, 2, 0)


def test_a_poll_that_runs_out_of_retries_fails_and_the_next_poll_catches_up(
    api: FakeApi, open_stream: Callable[..., Stream]
) -> None:
    api.records = [record(1)]
    api.script.extend([Reply(500)] * 4)  # the first try and its 3 retries
    s = open_stream(url=api.url, max_polls=2, **AUDIT)
    assert s.ids(s.until_end()) == ["evt-1"]
    assert s.stats.failed_polls == 1
    assert any("gave up after 4 attempts" in line for line in s.logs.lines)


def test_client_errors_are_not_retried(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    api.script.append(Reply(401))
    s = open_stream(url=api.url, max_polls=1, **AUDIT)
    assert s.until_end() == []
    assert (s.stats.client_errors, s.stats.retries, s.stats.failed_polls) == (1, 0, 1)
    assert any("HTTP 401 Unauthorized" in line for line in s.logs.lines)


def test_server_down_then_up_delivers_everything(open_stream: Callable[..., Stream]) -> None:
    down = FakeApi(port=free_port())
    down.records = [record(1), record(2)]
    s = open_stream(url=down.url, **AUDIT)
    s.until(lambda: s.stats.network_errors >= 2)
    assert any("connection error: Connection refused" in line for line in s.logs.lines)
    down.start()
    try:
        assert s.ids(s.take(2)) == ["evt-1", "evt-2"]
    finally:
        down.stop()


def test_slow_server_times_out_and_the_retry_gets_the_records(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    api.records = [record(1)]
    api.script.append(Reply(hold=True))
    s = open_stream(config={"read_timeout": 0.2}, url=api.url, max_polls=1, **AUDIT)
    assert s.ids(s.until_end()) == ["evt-1"]
    assert any("read timed out; retry 1/3" in line for line in s.logs.lines)


def test_next_batch_returns_at_once_while_a_request_is_in_flight(
    api: FakeApi, open_stream: Callable[..., Stream]
) -> None:
    api.records = [record(1)]
    api.script.append(Reply(200, b'{"data": [{"id": "slow"}]}', hold=True))
    s = open_stream(url=api.url, max_polls=1, **AUDIT)
    s.until(lambda: len(api.seen) == 1)
    assert s.batch() == []  # the server still holds the response
    api.release.set()
    assert s.ids(s.until_end()) == ["slow"]


def test_malformed_json_is_counted_and_logged_and_polling_goes_on(
    api: FakeApi, open_stream: Callable[..., Stream]
) -> None:
    api.records = [record(1)]
    api.script.append(Reply(200, b'{"data": [tru'))
    s = open_stream(url=api.url, max_polls=2, **AUDIT)
    assert s.ids(s.until_end()) == ["evt-1"]
    assert s.stats.malformed == 1
    assert any("the body is not JSON (Expecting value)" in line for line in s.logs.lines)


@pytest.mark.parametrize(
    ("body", "found"),
    [
        (b'{"items": []}', "found nothing"),
        (b'{"data": {"id": 1}}', "found dict"),
        (b"", "not JSON (Expecting value)"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON (RecursionError)"),
    ],
)
def test_a_body_without_the_records_array_is_malformed(
    api: FakeApi, open_stream: Callable[..., Stream], body: bytes, found: str
) -> None:
    api.script.append(Reply(200, body))
    s = open_stream(url=api.url, max_polls=1, **AUDIT)
    assert s.until_end() == []
    assert s.stats.malformed == 1
    assert any(found in line for line in s.logs.lines)


def test_a_record_with_a_lone_surrogate_is_delivered_losslessly_and_the_stream_goes_on(
    api: FakeApi, open_stream: Callable[..., Stream]
) -> None:
    odd = r'{"id": "evt-1", "published": "2024-05-01T12:00:01Z", "note": "\ud800 then \udfff"}'
    api.script.append(Reply(200, ('{"data": [' + odd + ", " + json.dumps(record(2)) + "]}").encode()))
    api.records = [record(2), record(3)]
    s = open_stream(url=api.url, cursor_param="since", max_polls=2, **AUDIT)
    events = s.until_end()
    assert s.ids(events) == ["evt-1", "evt-2", "evt-3"]
    assert events[0].record == json.loads(odd)  # the very record the API sent, lone surrogates included
    assert events[0].payload.decode("utf-8")  # and the payload is UTF-8, as Falco needs
    assert s.stats.malformed == 0
    assert api.seen[1].query["since"] == "2024-05-01T12:00:02Z"  # the cursor moved past it


def test_a_timestamp_with_a_lone_surrogate_dates_its_event_but_is_never_sent_as_the_cursor(
    api: FakeApi, open_stream: Callable[..., Stream]
) -> None:
    odd = r'{"id": "evt-9", "published": "2024-05-01\ud80012:00:09"}'  # any character may separate the two
    api.script.append(Reply(200, ('{"data": [' + json.dumps(record(1)) + ", " + odd + "]}").encode()))
    s = open_stream(url=api.url, cursor_param="since", max_polls=2, **AUDIT)
    events = s.until_end()
    assert s.ids(events) == ["evt-1", "evt-9"]
    assert events[1].ts == 1714564809_000000000
    assert [r.query.get("since") for r in api.seen] == [None, "2024-05-01T12:00:01Z"]


def test_an_id_with_a_lone_surrogate_is_delivered_but_never_sent_as_the_cursor(
    api: FakeApi, open_stream: Callable[..., Stream]
) -> None:
    api.script.extend(
        [
            Reply(200, rb'{"data": [{"id": "evt-1"}, {"id": "evt-\ud800"}]}'),
            Reply(200, rb'{"data": [{"id": "evt-\ud800"}, {"id": "evt-3"}]}'),
        ]
    )
    s = open_stream(url=api.url, records="/data", id="/id", cursor_param="after", cursor_from="id", max_polls=3)
    events = s.until_end()
    assert [e.envelope.id for e in events] == ["evt-1", "evt-\ud800", "evt-3"]
    assert [r.query.get("after") for r in api.seen] == [None, "evt-1", "evt-3"]  # a URL cannot carry it


def test_records_repeated_by_every_poll_are_delivered_once(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    api.records = [record(1), record(2)]
    s = open_stream(url=api.url, max_polls=3, **AUDIT)
    assert s.ids(s.until_end()) == ["evt-1", "evt-2"]
    assert s.stats.duplicates == 4


def test_records_without_ids_are_deduplicated_by_content(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    api.records = [{"msg": "a"}, {"msg": "b"}]
    s = open_stream(url=api.url, max_polls=2, records="/data")
    assert [e.record for e in s.until_end()] == [{"msg": "a"}, {"msg": "b"}]


def test_cursor_is_the_newest_timestamp_and_overlap_loses_nothing_at_second_granularity(
    api: FakeApi, open_stream: Callable[..., Stream]
) -> None:
    api.records = [record(1, second=10), record(2, second=10), record(3, second=9)]
    s = open_stream(url=api.url, cursor_param="since", **AUDIT)
    assert s.ids(s.take(3)) == ["evt-1", "evt-2", "evt-3"]
    # A record stamped with the same second arrives after the first poll.
    api.records.append(record(4, second=10))
    assert s.ids(s.take(1)) == ["evt-4"]
    since = [r.query.get("since") for r in api.seen]
    assert since[0] is None and since[-1] == "2024-05-01T12:00:10Z"
    assert s.stats.duplicates >= 2  # evt-1 and evt-2 came again, and were dropped


def test_cursor_start_is_sent_on_the_first_poll(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    api.records = [record(1, second=1), record(2, second=2)]
    s = open_stream(url=api.url, cursor_param="since", cursor_start="2024-05-01T12:00:02Z", max_polls=1, **AUDIT)
    assert s.ids(s.until_end()) == ["evt-2"]


def test_id_cursor_is_the_last_record_id(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    api.records = [record(1), record(2)]
    s = open_stream(url=api.url, cursor_param="after", cursor_from="id", max_polls=2, **AUDIT)
    s.until_end()
    assert [r.query.get("after") for r in api.seen] == [None, "evt-2"]


def test_a_failed_poll_does_not_move_the_cursor(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    api.records = [record(1), record(2), record(3)]
    api.page_size = 2
    api.script.extend([Reply(200, json.dumps({"data": [record(5, second=50)]}).encode(), {"Link": "<p2>; rel=next"})])
    api.script.extend([Reply(500)] * 4)  # page 2 fails for good
    s = open_stream(url=api.url, cursor_param="since", max_polls=2, **AUDIT)
    assert s.ids(s.until_end()) == ["evt-5", "evt-1", "evt-2", "evt-3"]
    assert [r.query.get("since") for r in api.requests_to() if "page" not in r.query] == [None, None]


def test_max_polls_ends_the_stream_and_reports_progress(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    api.records = [record(1)]
    s = open_stream(url=api.url, max_polls=3, **AUDIT)
    assert s.instance.progress() == (0.0, "0/3 polls")
    s.until_end()
    assert s.instance.progress() == (100.0, "3/3 polls")
    assert len(api.seen) == 3


def test_endless_stream_reports_no_progress(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    assert open_stream(url=api.url, **AUDIT).instance.progress() is None


def test_batches_are_at_most_max_batch_events(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    api.records = [record(n) for n in range(1, 11)]
    s = open_stream(config={"max_batch": 4}, url=api.url, max_polls=1, **AUDIT)
    sizes = []
    while not s.ended:
        if batch := s.batch():
            sizes.append(len(batch))
    assert sizes == [4, 4, 2]


def test_rate_limit_spaces_requests(
    api: FakeApi, open_stream: Callable[..., Stream], monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    real = Poller._sleep

    def recording(self: Poller, seconds: float) -> None:
        pauses.append(seconds)
        real(self, seconds)

    monkeypatch.setattr(Poller, "_sleep", recording)
    api.records = [record(n) for n in range(1, 4)]
    api.page_size = 1
    s = open_stream(config={"rate_limit": 5}, url=api.url, max_polls=1, **AUDIT)
    s.until_end()
    assert len([p for p in pauses if p > 0.1]) == 2  # before pages 2 and 3, about 1/5 s each


def test_a_crashed_worker_fails_next_batch_instead_of_hanging(
    api: FakeApi, open_stream: Callable[..., Stream], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Poller, session: object) -> bool:
        raise RuntimeError("bug")

    monkeypatch.setattr(Poller, "poll", broken)
    s = open_stream(url=api.url, **AUDIT)
    with pytest.raises(PluginError, match="the polling worker failed: RuntimeError: bug"):
        s.until(lambda: False)


def test_close_stops_the_worker_promptly(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    s = open_stream(url=api.url, interval=3600, **AUDIT)
    s.until(lambda: len(api.seen) == 1)
    s.close()
    assert not s.instance.poller.alive


def test_a_compressed_body_is_decompressed_as_it_is_read(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    body = json.dumps({"data": [record(n) for n in range(1, 4)]}).encode()
    api.script.append(Reply(200, gzip.compress(body), {"Content-Encoding": "gzip"}))
    s = open_stream(url=api.url, max_polls=1, **AUDIT)
    assert s.ids(s.until_end()) == ["evt-1", "evt-2", "evt-3"]


@pytest.mark.parametrize("status", [200, 302])  # requests reads a redirect's body itself
def test_a_trickling_response_is_cut_at_request_timeout_and_the_retry_gets_the_records(
    api: FakeApi, open_stream: Callable[..., Stream], status: int
) -> None:
    api.records = [record(1)]
    api.script.append(trickling(0.05, status, {"Location": api.url}))  # never silent for read_timeout (5 s)
    s = open_stream(config={"request_timeout": 0.5}, url=api.url, max_polls=1, **AUDIT)
    assert s.ids(s.until_end()) == ["evt-1"]
    assert any("took longer than request_timeout (0.5 s); retry 1/3" in line for line in s.logs.lines)
    assert s.stats.network_errors == 1


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_open_close_cycles_against_a_trickling_server_leave_no_thread_behind(
    scheme: str, request: pytest.FixtureRequest, open_stream: Callable[..., Stream]
) -> None:
    api: FakeApi = request.getfixturevalue("api" if scheme == "http" else "tls_api")
    config = {"ca_bundle": str(request.getfixturevalue("tls_files").ca)} if scheme == "https" else {}
    baseline = len(plugin_threads())
    for cycle in range(1, 4):
        api.script.append(trickling())
        s = open_stream(config=config, url=api.url, **AUDIT)
        wait_for(lambda n=cycle: len(api.seen) == n, "the request")
        started = time.monotonic()
        s.close()  # while the worker reads a body that will not end for days
        assert time.monotonic() - started < DEADLINE, "close hung"
        wait_for(lambda: len(plugin_threads()) == baseline, "the worker to end")
    assert not s.instance.poller.alive


def test_destroy_ends_the_workers_of_instances_left_open(api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    baseline = len(plugin_threads())
    api.script.extend([trickling(), trickling()])
    s = open_stream(url=api.url, **AUDIT)
    other = s.plugin.open(HttpPollParams.from_dict({"url": api.url, "interval": 0.05, **AUDIT}))
    wait_for(lambda: len(api.seen) == 2, "both requests")
    started = time.monotonic()
    s.plugin.destroy()  # without closing the instances first
    assert time.monotonic() - started < DEADLINE, "destroy hung"
    wait_for(lambda: len(plugin_threads()) == baseline, "the workers to end")
    assert not s.instance.poller.alive and not other.poller.alive


# -- TLS ---------------------------------------------------------------------------------------


def test_https_with_the_ca_bundle_of_a_private_ca(
    tls_api: FakeApi, tls_files: TlsFiles, open_stream: Callable[..., Stream]
) -> None:
    tls_api.records = [record(1)]
    s = open_stream(config={"ca_bundle": str(tls_files.ca)}, url=tls_api.url, max_polls=1, **AUDIT)
    assert s.ids(s.until_end()) == ["evt-1"]


def test_https_with_an_unknown_ca_is_refused(tls_api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    tls_api.records = [record(1)]
    s = open_stream(config={"retries": 0}, url=tls_api.url, max_polls=1, **AUDIT)
    assert s.until_end() == []
    assert any("TLS error: certificate verify failed" in line for line in s.logs.lines)


def test_https_without_verification_works_and_says_so(tls_api: FakeApi, open_stream: Callable[..., Stream]) -> None:
    tls_api.records = [record(1)]
    s = open_stream(config={"tls_verify": False}, url=tls_api.url, max_polls=1, **AUDIT)
    assert s.ids(s.until_end()) == ["evt-1"]
    assert any("tls_verify is off" in line for line in s.logs.lines)
