"""Several Python plugin libraries in one process share one interpreter but
nothing else: Falco loads every configured plugin into the same process."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from falco_plugin_tools.host import Rc
from falco_plugin_tools.host.raw import Library
from harness import Built, RunChost


def test_two_plugins_in_this_process_run_interleaved(loaded: Callable[[str], Library]) -> None:
    full = loaded("full").init('{"batch": 2}')
    dummy = loaded("dummy").init('{"jitter": 0}')
    assert (full.rc, dummy.rc) == (Rc.SUCCESS, Rc.SUCCESS)
    _, full_src = full.open('{"count": 4, "start": 10}')
    _, dummy_src = dummy.open('{"start": 100, "maxEvents": 3}')
    assert full_src is not None and dummy_src is not None
    seen: dict[str, list[object]] = {"full": [], "dummy": []}
    done = {"full": False, "dummy": False}
    while not all(done.values()):
        for name, st, src, spec in (
            ("full", full, full_src, "full.counter"),
            ("dummy", dummy, dummy_src, "dummy.value"),
        ):
            if done[name]:
                continue
            rc, events = src.next_batch()
            done[name] = rc == Rc.EOF
            seen[name] += [st.values(e, spec)[0][0] for e in events]
    assert seen == {"full": [10, 11, 12, 13], "dummy": [101, 102, 103]}


def test_an_extract_plugin_reads_another_plugins_events(loaded: Callable[[str], Library]) -> None:
    full = loaded("full").init("")
    xo = loaded("extract_only").init('{"name": "cross"}')
    _, src = full.open('{"count": 3}')
    assert src is not None
    _rc, events = src.next_batch()
    assert [xo.values(e, "xo.payload", "xo.source")[0:2] for e in events] == [
        [[full.values(e, "full.payload")[0][0]], ["fxt_full"]] for e in events
    ]


def test_one_plugins_failure_leaves_the_others_error_and_state_alone(loaded: Callable[[str], Library]) -> None:
    full = loaded("full").init("")
    faulty = loaded("faulty").init('{"fail": ["open"]}')
    assert faulty.open()[0] == Rc.FAILURE
    assert full.last_error == ""
    assert full.open('{"count": 1}')[0] == Rc.SUCCESS


def test_two_states_of_one_plugin_keep_their_own_config(loaded: Callable[[str], Library]) -> None:
    lib = loaded("full")
    a, b = lib.init('{"prefix": "aaa"}'), lib.init('{"prefix": "bbb"}')
    _, src_a = a.open('{"count": 1}')
    _, src_b = b.open('{"count": 1}')
    assert src_a is not None and src_b is not None
    ev_a, ev_b = src_a.next_batch()[1][0], src_b.next_batch()[1][0]
    assert (a.values(ev_a, "full.prefix"), b.values(ev_b, "full.prefix")) == ([["aaa"]], [["bbb"]])


def run_two(
    run_chost: RunChost,
    built: Built,
    dummy_params: str,
    full_params: str,
    *options: str,
    fields: tuple[str, str] = ("dummy.strvalue", "full.payload"),
) -> list[str]:
    """dummy and full (extracting ``fields``) in one C host process, empty environment."""
    out = run_chost(
        built("dummy").library,
        "--open",
        dummy_params,
        "--fields",
        fields[0],
        "--lib",
        str(built("full").library),
        "--open",
        full_params,
        "--fields",
        fields[1],
        *options,
        timeout=60,
    )
    assert (out.returncode, out.stderr) == (0, "")
    return out.stdout.splitlines()


def test_a_c_host_loads_two_python_plugins_runs_both_and_exits_cleanly(built: Built, run_chost: RunChost) -> None:
    lines = run_two(run_chost, built, '{"start": 0, "maxEvents": 200}', '{"count": 9, "start": 1}')
    assert lines[:3] == ["plugin dummy_py 0.1.0", "plugin fxt_full 1.2.3", "signals: unchanged"]
    assert lines[-2:] == ["dummy_py done events=200 rc=2", "fxt_full done events=9 rc=2"]
    full_lines = [ln for ln in lines if ln.startswith("fxt_full evt ")]
    assert full_lines[0] == "fxt_full evt 1 full.payload=full 1 t0,t1"
    assert len(full_lines) == 9
    # Batches alternate: dummy (128 events), full (4), dummy (72), full (4), full (1).
    owners = [ln.split(" ", 1)[0] for ln in lines if " evt " in ln]
    runs = [owners[0]] + [b for a, b in itertools.pairwise(owners) if a != b]
    assert runs == ["dummy_py", "fxt_full", "dummy_py", "fxt_full"]


def test_two_python_plugins_read_concurrently_on_two_c_host_threads(built: Built, run_chost: RunChost) -> None:
    lines = run_two(run_chost, built, '{"start": 0, "maxEvents": 3000}', '{"count": 2000}', "--threads")
    assert lines[-2:] == ["dummy_py done events=3000 rc=2", "fxt_full done events=2000 rc=2"]
    full_payloads = [ln.split("=", 1)[1] for ln in lines if ln.startswith("fxt_full evt ")]
    assert [int(p.split(" ")[1]) for p in full_payloads] == list(range(2000))
    dummy_values = [int(ln.split("=", 1)[1]) for ln in lines if ln.startswith("dummy_py evt ")]
    assert len(dummy_values) == 3000 and dummy_values == sorted(dummy_values)


def test_one_library_twice_in_the_c_host_gets_two_states(built: Built, run_chost: RunChost) -> None:
    lib = str(built("full").library)
    out = run_chost(
        lib, "--config", '{"prefix": "aaa"}', "--open", '{"count": 2}', "--fields", "full.prefix",
        "--lib", lib, "--config", '{"prefix": "bbb"}', "--open", '{"count": 1}', "--fields", "full.prefix",
    )  # fmt: skip
    assert (out.returncode, out.stderr) == (0, "")
    assert [ln for ln in out.stdout.splitlines() if " evt " in ln] == [
        "fxt_full evt 1 full.prefix=aaa",
        "fxt_full evt 2 full.prefix=aaa",
        "fxt_full#2 evt 1 full.prefix=bbb",
    ]


def test_a_failing_library_in_a_multi_library_c_host_is_named(built: Built, run_chost: RunChost) -> None:
    out = run_chost(
        built("full").library, "--open", '{"count": 1}',
        "--lib", str(built("dummy").library), "--open", '{"maxEvents": -1}',
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr == "error: dummy_py: open: open: invalid open params: maxEvents: must be >= 0, got -1\n"


def test_host_threads_that_come_and_go_leave_no_python_thread_state_behind(built: Built, run_chost: RunChost) -> None:
    # Every batch (next_batch and the extraction of its events) runs on a new host thread that ends
    # before the next starts. Each thread's Python state is kept while it lives and deleted when it
    # ends, so the interpreter's count of states never grows; two libraries share each thread.
    lines = run_two(
        run_chost,
        built,
        '{"start": 0, "maxEvents": 1000}',
        '{"count": 200}',
        "--thread-per-batch",
        fields=("dummy.value", "full.counter,full.thread_states"),
    )
    assert lines[-2:] == ["dummy_py done events=1000 rc=2", "fxt_full done events=200 rc=2"]
    full = [dict(kv.split("=") for kv in ln.split(" ")[3:]) for ln in lines if ln.startswith("fxt_full evt ")]
    assert [int(e["full.counter"]) for e in full] == list(range(200))
    # the host's main thread (which started Python) and the thread of the batch
    assert {e["full.thread_states"] for e in full} == {"2"}
    dummy_values = [int(ln.split("=", 1)[1]) for ln in lines if ln.startswith("dummy_py evt ")]
    assert len(dummy_values) == 1000 and dummy_values == sorted(dummy_values)
