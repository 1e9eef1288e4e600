"""The shared result cache: one computation per key, across threads and across processes.

Every test waits on events and conditions, never on the clock: ``wait_until`` only guards against
hanging forever, and no assertion depends on how long anything took.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ui.results_cache import ResultCache, key_digest

N_SESSIONS = 30
GUARD_S = 60  # only so that a broken implementation fails instead of hanging


def wait_until(predicate, what: str, timeout_s: float = GUARD_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(0.01)


def run_threads(n: int, target) -> tuple[list, list]:
    """Start ``n`` threads at the same moment (a barrier); return their results and exceptions."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except BaseException as exc:
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUARD_S)
        assert not t.is_alive(), "a caller never returned"
    return results, errors


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def computed_lines():
    recorder = Recorder()
    logger = logging.getLogger("prunelab")
    logger.addHandler(recorder)
    yield recorder.lines
    logger.removeHandler(recorder)


def test_thirty_callers_of_one_key_compute_it_once_and_the_waiters_see_its_progress(computed_lines):
    cache = ResultCache()
    calls = []
    seen: dict[int, list] = {i: [] for i in range(N_SESSIONS)}

    def compute(progress):
        calls.append(threading.get_ident())
        progress(0.5, "half way")
        # Finish only once every other caller is waiting and has been told about the progress.
        wait_until(lambda: cache.stats["waited"] == N_SESSIONS - 1, "29 waiters")
        wait_until(lambda: sum(1 for s in seen.values() if s) >= N_SESSIONS, "progress reached every caller")
        return pd.DataFrame({"sparsity": [0.0, 0.5, 0.9], "accuracy": [0.97, 0.96, 0.86]})

    def session(i: int) -> pd.DataFrame:
        return cache.get_or_compute(
            ("digits-mlp", "magnitude", (0.0, 0.5, 0.9)), compute, lambda f, m: seen[i].append((f, m)), what="sweep"
        )

    results, errors = run_threads(N_SESSIONS, session)
    assert errors == [None] * N_SESSIONS
    assert len(calls) == 1, "one computation for thirty identical requests"
    assert cache.stats["computed"] == 1 and cache.stats["waited"] == N_SESSIONS - 1
    for table in results:
        pd.testing.assert_frame_equal(table, results[0])
    assert all((0.5, "half way") in s for s in seen.values()), "every caller saw the computation's progress"
    assert [line for line in computed_lines if line.startswith("computed sweep key=")] == computed_lines
    assert len(computed_lines) == 1, "one log line per actual computation"

    # Callers get their own copies: modifying one changes neither the others nor the cache.
    results[0]["accuracy"] = 0.0
    assert results[1]["accuracy"].tolist() == [0.97, 0.96, 0.86]
    assert cache.get(("digits-mlp", "magnitude", (0.0, 0.5, 0.9)))["accuracy"].tolist() == [0.97, 0.96, 0.86]
    assert cache.stats["memory_hits"] == 1


def test_a_failure_reaches_every_waiter_and_is_not_cached():
    cache = ResultCache()
    calls = []

    def failing(progress):
        calls.append(1)
        wait_until(lambda: cache.stats["waited"] == N_SESSIONS - 1, "29 waiters")
        raise ValueError("the sweep failed")

    _, errors = run_threads(N_SESSIONS, lambda i: cache.get_or_compute(("k",), failing))
    assert len(calls) == 1
    assert all(isinstance(e, ValueError) and str(e) == "the sweep failed" for e in errors)
    assert len({id(e) for e in errors}) == 1, "the same exception is re-raised to every waiter"
    assert cache.get(("k",)) is None
    assert cache.get_or_compute(("k",), lambda progress: 42) == 42, "a later call computes again"
    assert cache.stats["computed"] == 2


def test_a_computing_caller_that_leaves_hands_the_work_to_a_waiter():
    """Streamlit stops a session's script by raising from its next element update (a progress
    bar): that must stop the leaving caller, not the people waiting for the same result."""

    class Left(BaseException):
        pass

    cache = ResultCache()
    calls = []
    leader_started = threading.Event()

    def compute(progress):
        calls.append(1)
        if len(calls) == 1:
            leader_started.set()
            wait_until(lambda: cache.stats["waited"] == 1, "the waiter")
        progress(0.5, "half way")
        return "table"

    def leaving(fraction, message):
        raise Left()

    outcome = {}

    def waiter():
        leader_started.wait(GUARD_S)
        outcome["waiter"] = cache.get_or_compute(("k",), compute, lambda f, m: None)

    thread = threading.Thread(target=waiter)
    thread.start()
    with pytest.raises(Left):
        cache.get_or_compute(("k",), compute, leaving)
    thread.join(GUARD_S)
    assert outcome["waiter"] == "table"
    assert len(calls) == 2, "the waiter computed it after the first caller left"
    assert cache.get(("k",)) == "table"


def test_memory_is_a_bounded_lru():
    cache = ResultCache(max_entries=3)
    calls = []

    def compute_for(k):
        def compute(progress):
            calls.append(k)
            return k * 10

        return compute

    for k in range(3):
        cache.get_or_compute(("k", k), compute_for(k))
    assert cache.get(("k", 0)) == 0  # 0 is now the most recently used
    cache.get_or_compute(("k", 3), compute_for(3))
    assert len(cache) == 3
    assert cache.get(("k", 1)) is None, "the least recently used entry was dropped"
    assert cache.get(("k", 0)) == 0 and cache.get(("k", 3)) == 30
    assert cache.get_or_compute(("k", 1), compute_for(1)) == 10
    assert calls == [0, 1, 2, 3, 1]


def test_key_digests_are_stable_across_processes_and_tell_floats_apart():
    key = ("digits-mlp", frozenset({"fc1", "fc2", "fc3"}), (0.1, 0.25, 1 / 3), 7, None, True)
    here = key_digest(key)
    code = (
        "from ui.results_cache import key_digest; "
        "print(key_digest(('digits-mlp', frozenset({'fc3', 'fc1', 'fc2'}), (0.1, 0.25, 1 / 3), 7, None, True)))"
    )
    root = Path(__file__).resolve().parents[2]
    for seed in ("1", "2"):  # set order follows the string hash seed; the digest must not
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
        assert out.stdout.strip() == here, out.stderr
    assert key_digest((0.1,)) != key_digest((0.1 + 1e-17 * 8,)), "floats are keyed by their exact value"
    assert key_digest((np.float64(0.5), np.int64(3))) == key_digest((0.5, 3))
    assert key_digest((1,)) != key_digest((1.0,)) != key_digest(("1",))
    assert len(here) == 64 and all(c in "0123456789abcdef" for c in here)
    with pytest.raises(TypeError, match="object"):
        key_digest(("digits-mlp", object()))


def test_the_directory_is_private_and_serves_results_to_a_new_cache(tmp_path):
    directory = tmp_path / "cache"
    first = ResultCache(directory=directory)
    assert directory.stat().st_mode & 0o777 == 0o700
    table = pd.DataFrame({"a": [1.5, 2.5]})
    first.get_or_compute(("t",), lambda progress: table)

    second = ResultCache(directory=directory)
    pd.testing.assert_frame_equal(second.get_or_compute(("t",), lambda progress: pytest.fail("recomputed")), table)
    assert second.stats == {"computed": 0, "memory_hits": 0, "disk_hits": 1, "waited": 0}

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ValueError, match="writable by others"):
        ResultCache(directory=shared)


def test_the_directory_keeps_at_most_max_files_results(tmp_path):
    cache = ResultCache(directory=tmp_path / "c", max_files=2)
    for k in range(5):
        cache.get_or_compute(("k", k), lambda progress, k=k: k)
        os.utime(cache._path(key_digest(("k", k)), ".pkl"), (k, k))  # a clear order of use
    assert len(list((tmp_path / "c").glob("*.pkl"))) == 2
    fresh = ResultCache(directory=tmp_path / "c")
    assert fresh.get(("k", 4)) == 4 and fresh.get(("k", 0)) is None


def test_files_of_other_generations_are_never_read_and_are_retired_when_unused(tmp_path):
    old = ResultCache(directory=tmp_path, name="sweeps", generation="old")
    old.get_or_compute("key", lambda progress: "old result")
    recent = ResultCache(directory=tmp_path, name="sweeps", generation="recent")
    recent.get_or_compute("other", lambda progress: 1)
    new = ResultCache(directory=tmp_path, name="sweeps", generation="new", retire_after=3600)
    assert new.get("key") is None  # another generation's result is not this code's
    new.get_or_compute("key", lambda progress: "new result")
    assert len(list(tmp_path.glob("sweeps-old-*.pkl"))) == 1  # used within the hour: kept
    for path in tmp_path.glob("sweeps-old-*"):
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    new.get_or_compute("another", lambda progress: 2)
    assert not list(tmp_path.glob("sweeps-old-*")) and len(list(tmp_path.glob("sweeps-recent-*.pkl"))) == 1
    assert new.get("key") == "new result" and len(list(tmp_path.glob("sweeps-new-*.pkl"))) == 2


# -- several processes sharing one directory ---------------------------------------------------

KEY = ("digits-cnn", "structured-l1", (0.25, 0.5, 0.75))


def _compute_in_child(directory, started, release, out) -> None:
    """A server process computing KEY: it reports progress, then finishes when told to."""
    cache = ResultCache(directory=directory)

    def compute(progress):
        progress(0.5, "level 2 of 3")
        started.set()
        if not release.wait(GUARD_S):
            raise RuntimeError("never released")
        return pd.DataFrame({"pid": [os.getpid()], "accuracy": [0.9]})

    table = cache.get_or_compute(KEY, compute, what="sweep")
    out.put((table, cache.stats))


def _wait_in_child(directory, saw_progress, out) -> None:
    """Another server process asking for KEY: it must wait for the first one, not compute."""
    cache = ResultCache(directory=directory)
    messages = []

    def progress(fraction, message):
        messages.append((fraction, message))
        saw_progress.set()

    table = cache.get_or_compute(KEY, lambda progress: pd.DataFrame({"pid": [os.getpid()]}), progress)
    out.put((table, cache.stats, messages))


def test_two_processes_sharing_a_directory_compute_a_result_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    started, release, saw_progress = ctx.Event(), ctx.Event(), ctx.Event()
    computed_out, waited_out = ctx.Queue(), ctx.Queue()
    computing = ctx.Process(target=_compute_in_child, args=(tmp_path, started, release, computed_out))
    computing.start()
    try:
        assert started.wait(GUARD_S), "the first process started computing"
        waiting = ctx.Process(target=_wait_in_child, args=(tmp_path, saw_progress, waited_out))
        waiting.start()
        assert saw_progress.wait(GUARD_S), "the second process relays the first one's progress while it waits"
        release.set()
        table_a, stats_a = computed_out.get(timeout=GUARD_S)
        table_b, stats_b, messages = waited_out.get(timeout=GUARD_S)
    finally:
        release.set()
        for p in (computing, waiting):
            p.join(GUARD_S)
    pd.testing.assert_frame_equal(table_a, table_b)
    assert table_b["pid"].item() == computing.pid, "served the result the other process computed"
    assert stats_a["computed"] == 1 and stats_b["computed"] == 0
    assert stats_b["waited"] == 1 and stats_b["disk_hits"] == 1
    assert (0.5, "level 2 of 3") in messages


def _hold_lock_forever(directory, started) -> None:
    cache = ResultCache(directory=directory)

    def compute(progress):
        progress(0.1, "started")
        started.set()
        threading.Event().wait()  # killed here, holding the lock

    cache.get_or_compute(KEY, compute)


def test_a_process_killed_while_computing_is_taken_over(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Event()
    holder = ctx.Process(target=_hold_lock_forever, args=(tmp_path, started))
    holder.start()
    try:
        assert started.wait(GUARD_S)
        cache = ResultCache(directory=tmp_path)
        saw_progress = threading.Event()
        result = {}

        def ask() -> None:
            result["table"] = cache.get_or_compute(
                KEY, lambda progress: pd.DataFrame({"pid": [os.getpid()]}), lambda f, m: saw_progress.set()
            )

        asking = threading.Thread(target=ask)
        asking.start()
        assert saw_progress.wait(GUARD_S), "waiting for the holder, relaying its progress"
        assert cache.stats["computed"] == 0
        os.kill(holder.pid, signal.SIGKILL)
        asking.join(GUARD_S)
    finally:
        holder.kill()
        holder.join(GUARD_S)
    assert result["table"]["pid"].item() == os.getpid(), "this process took over and computed it"
    assert cache.stats["computed"] == 1 and cache.stats["waited"] == 1
    assert ResultCache(directory=tmp_path).get(KEY)["pid"].item() == os.getpid(), "and stored it for the others"


def test_a_computation_that_needs_its_own_result_raises_instead_of_waiting_forever():
    cache = ResultCache()

    def recursive(progress):
        return cache.get_or_compute(("k",), recursive)

    with pytest.raises(RuntimeError, match="needs its own result"):
        cache.get_or_compute(("k",), recursive)
    assert cache.get_or_compute(("k",), lambda progress: 1) == 1


def test_each_computation_logs_one_line_to_stderr_for_the_room_simulator():
    code = (
        "from ui.results_cache import ResultCache; c = ResultCache(); "
        "[c.get_or_compute(('k', i % 2), lambda p: 1, what='sweep digits-mlp/magnitude') for i in range(4)]"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    lines = out.stderr.splitlines()
    assert len(lines) == 2, out.stderr
    pattern = r"prunelab: computed sweep digits-mlp/magnitude key=[0-9a-f]{12} in \d+\.\d\d s"
    assert all(re.fullmatch(pattern, line) for line in lines), lines


def test_a_damaged_cache_file_is_computed_again(tmp_path):
    cache = ResultCache(directory=tmp_path)
    cache.get_or_compute(("k",), lambda progress: "first")
    (path,) = tmp_path.glob("*.pkl")
    path.write_bytes(path.read_bytes()[:10])  # cut short, as by a full disk
    fresh = ResultCache(directory=tmp_path)
    assert fresh.get_or_compute(("k",), lambda progress: "again") == "again"
    assert ResultCache(directory=tmp_path).get(("k",)) == "again", "and the good result replaced it"


def test_a_shared_computation_ignores_the_callers_time_limit():
    """A result every session reads is never cut short by the time limit of the session computing it."""
    from pruning_core.deadline import check_deadline, time_limit

    def compute(progress) -> int:
        check_deadline()
        return 42

    cache = ResultCache()
    with time_limit(0, "one session's upload"):
        assert cache.get_or_compute(("shared",), compute) == 42
