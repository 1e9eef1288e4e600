"""Thirty people press the same button: the engine's work in many threads at once, on shared models.

A workshop server runs every session in a thread of one process, all reading the same cached
sample models. Each task below is run once alone, then many times at once in threads, mixed with
the others; every concurrent result must equal the serial one and nothing may raise. Tasks that
used to patch torch for the whole process (tracing for structured pruning, FLOP counting) run
beside tasks that evaluate and train, so a global patch would hand the others proxies.
"""

from __future__ import annotations

import concurrent.futures
import functools

import pytest
import torch

import sample_models
from pruning_core import compute_masks, evaluate, shrink, sweep
from pruning_core.finetune import FineTuneConfig
from pruning_core.metrics import ModelProfile
from pruning_core.schedules import Schedule, run_schedule

SHARED = {name: sample_models.load_sample(name) for name in ("digits-mlp", "digits-cnn", "mnist1d-cnn")}


def _calibration(name: str) -> dict:
    data = SHARED[name].data
    return {"X_calib": data.X_train[:64], "y_calib": data.y_train[:64]}


def structured_masks(name: str):
    return compute_masks(SHARED[name].model, "structured-l1", "layerwise", 0.5)


def structured_sweep(name: str):
    s = SHARED[name]
    table = sweep(s.model, s.data, ["structured-l2", "magnitude"], [0.0, 0.5, 0.8], scope="layerwise")
    return table.drop(columns=["seconds"])


def evaluation(name: str):
    s = SHARED[name]
    return evaluate(s.model, s.data.X_test, s.data.y_test)


def data_driven_masks(name: str):
    s = SHARED[name]
    out = {}
    for method in ("wanda", "apoz", "taylor"):
        out[method] = compute_masks(s.model, method, "layerwise", 0.5, **_calibration(name))
    return out


def random_masks(name: str):
    return compute_masks(SHARED[name].model, "random", "global", 0.7, seed=3)


def shrunk_outputs(name: str):
    s = SHARED[name]
    small = shrink(s.model, structured_masks(name))
    with torch.inference_mode():
        return small(s.data.X_test[:32])


def profile(name: str):
    s = SHARED[name]
    p = ModelProfile.of(s.model, s.data.X_test)
    return p.dense_macs, p.macs


def fine_tuning(name: str):
    s = SHARED[name]
    schedule = Schedule("oneshot", FineTuneConfig(epochs=1, lr=1e-3, batch_size=128))
    result = run_schedule(s.model, s.data.X_train, s.data.y_train, "magnitude", "global", 0.8, schedule)
    return result.model.state_dict()


def initial_weights(name: str):
    return sample_models.initial_state(name, seed=11)


TASKS = [
    structured_masks,
    structured_sweep,
    evaluation,
    data_driven_masks,
    random_masks,
    shrunk_outputs,
    profile,
    fine_tuning,
    initial_weights,
]


def assert_same(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key}]")
    elif isinstance(a, tuple | list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif hasattr(a, "equals"):  # a DataFrame
        assert a.equals(b), where
    else:
        assert a == b, where


@pytest.mark.slow
def test_engine_tasks_in_many_threads_at_once_equal_the_serial_results_on_shared_models():
    jobs = [(task, name) for task in TASKS for name in SHARED]
    serial = {(task.__name__, name): task(name) for task, name in jobs}
    shared_before = {n: {k: v.clone() for k, v in s.model.state_dict().items()} for n, s in SHARED.items()}

    rounds = 2
    work = [(task, name) for _ in range(rounds) for task, name in jobs]
    # Interleave so that tracing/profiling tasks overlap with evaluation and training ones.
    work.sort(key=lambda job: (hash((job[0].__name__, job[1])) % 7, job[0].__name__))
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        futures = {pool.submit(functools.partial(task, name)): (task.__name__, name) for task, name in work}
        errors = []
        for future in concurrent.futures.as_completed(futures):
            key = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # every failure is reported, not just the first
                errors.append(f"{key}: {type(exc).__name__}: {exc}")
                continue
            assert_same(serial[key], result, f"{key}")
    assert not errors, "\n".join(errors[:10])

    for name, sample in SHARED.items():
        state = sample.model.state_dict()
        assert all(torch.equal(state[k], v) for k, v in shared_before[name].items()), f"{name} was modified"
        assert not sample.model.training
        assert evaluate(sample.model, sample.data.X_test, sample.data.y_test)["accuracy"] == pytest.approx(
            sample.recorded_accuracy, abs=1e-6
        )


def test_initial_state_leaves_the_global_random_state_alone():
    before = torch.random.get_rng_state()
    sample_models.initial_state("digits-cnn", seed=5)
    assert torch.equal(torch.random.get_rng_state(), before)
