"""Heavy engine work in worker processes, so a shared server's cores compute side by side.

Streamlit runs every session in a thread of one process, and the engine's work on small models is
mostly Python between small torch kernels: it holds the interpreter lock, so in threads thirty
sweeps queue behind one lock on one core while page reruns wait behind them. A pool of worker
processes (one per core, each with one torch thread, started once with the server) computes in
parallel and leaves the server's own threads free to draw pages.

Progress travels back over one queue; the session waiting for a job reports it from its own
script thread (Streamlit elements may only be updated there). This module never imports Streamlit:
it is imported by the workers.
"""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

import pandas as pd

Progress = Callable[[float, str], None]
POLL_S = 0.1

_worker_queue: Any = None  # set in each worker process by _init_worker


def _init_worker(progress_queue: Any) -> None:
    global _worker_queue
    _worker_queue = progress_queue
    import torch

    # A worker's own process: one intra-op thread each, so two workers use two cores, not four
    # threads fighting over them. Nothing else runs in this process.
    torch.set_num_threads(1)


def _run_job(job_id: int, fn: Callable, args: tuple, kwargs: dict) -> Any:
    def progress(fraction: float, message: str) -> None:
        _worker_queue.put((job_id, float(fraction), str(message)))

    return fn(*args, progress=progress, **kwargs)


def _ready() -> bool:
    import sample_models  # noqa: F401 - imports torch and the zoo before the first real job

    return True


class WorkerPool:
    """A process pool whose jobs report progress to the thread waiting for them."""

    def __init__(self, workers: int):
        context = multiprocessing.get_context("spawn")  # fork is unsafe in a multi-threaded server
        self._queue = context.Queue()
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(self._queue,)
        )
        self._ids = itertools.count()
        self._latest: dict[int, tuple[float, str]] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._pump, name="prunelab-progress", daemon=True).start()
        self.workers = workers

    def _pump(self) -> None:
        while True:
            try:
                job_id, fraction, message = self._queue.get()
            except (EOFError, OSError):  # the pool was shut down
                return
            with self._lock:
                if job_id in self._latest:
                    self._latest[job_id] = (fraction, message)

    def start(self) -> None:
        """Start every worker now (imports included) rather than on the first request."""
        for future in [self._pool.submit(_ready) for _ in range(self.workers)]:
            future.result()

    def run(self, fn: Callable, *args: Any, progress: Progress | None = None, **kwargs: Any) -> Any:
        """``fn(*args, progress=..., **kwargs)`` in a worker; this thread reports its progress."""
        job_id = next(self._ids)
        with self._lock:
            self._latest[job_id] = (0.0, "")
        seen: tuple[float, str] | None = None
        try:
            future = self._pool.submit(_run_job, job_id, fn, args, kwargs)
            while True:
                try:
                    return future.result(timeout=POLL_S)
                except concurrent.futures.TimeoutError:
                    with self._lock:
                        latest = self._latest.get(job_id)
                    if progress is not None and latest is not None and latest != seen and latest[1]:
                        seen = latest
                        progress(*latest)
        finally:
            with self._lock:
                self._latest.pop(job_id, None)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


_POOL: WorkerPool | None = None


def start_pool(n_workers: int) -> WorkerPool:
    """Start this process's worker pool (the server does, once, before it listens)."""
    global _POOL
    if _POOL is None:
        _POOL = WorkerPool(n_workers)
        _POOL.start()
    return _POOL


def pool() -> WorkerPool | None:
    """The server's worker pool, or None when the app runs without one (tests, plain streamlit run)."""
    return _POOL


# --- the jobs: module-level functions, so a worker can import them ------------------------------


@functools.cache
def _sample(name: str):
    import sample_models

    return sample_models.load_sample(name)


def sample_sweep(
    name: str, method: str, scope: str, levels: tuple, exclude: tuple, seed: int, progress: Progress | None = None
) -> pd.DataFrame:
    """One method's one-shot sweep of a sample model (the trade-off page's unit of work)."""
    import pruning_core

    s = _sample(name)
    return pruning_core.sweep(
        s.model, s.data, [method], list(levels), scope=scope, exclude=exclude, seed=seed, progress=progress
    )


SCHEDULE_CURVES = ("oneshot", "oneshot+ft", "iterative", "gradual", "lottery")


def curve_schedule(curve: str, epochs: int, lr: float, rounds: int):
    """The Schedule behind one curve of the schedules page; every trained curve gets the same
    training budget (rounds x epochs) so the comparison is fair."""
    from pruning_core.finetune import FineTuneConfig
    from pruning_core.schedules import SCHEDULES, Schedule

    if curve == "oneshot":
        return None
    kind = "oneshot" if curve == "oneshot+ft" else curve
    if SCHEDULES[kind].per_round_budget:  # the registry says how a schedule spends its budget
        return Schedule(kind, FineTuneConfig(epochs=epochs, lr=lr), rounds=rounds)
    return Schedule(kind, FineTuneConfig(epochs=epochs * rounds, lr=lr))


def sample_schedule_sweep(
    name: str, method: str, scope: str, levels: tuple, exclude: tuple, seed: int,
    curve: str, epochs: int, lr: float, rounds: int, progress: Progress | None = None,
) -> pd.DataFrame:  # fmt: skip
    """One schedule's sweep of a sample model, with a ``curve`` column (the schedules page's unit)."""
    import pruning_core
    import sample_models

    s = _sample(name)
    table = pruning_core.sweep(
        s.model, s.data, [method], list(levels), scope=scope, exclude=exclude, seed=seed, progress=progress,
        schedule=curve_schedule(curve, epochs, lr, rounds), generalisation=True,
        init_state=sample_models.initial_state(name),
        reinit=functools.partial(sample_models.initial_state, name),
    )  # fmt: skip
    table["curve"] = [curve if kind != "lottery-reinit" else kind for kind in table["schedule"]]
    return table
