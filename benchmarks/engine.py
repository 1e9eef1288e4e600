"""Engine benchmark: the 20-level global magnitude sweep against the tutorial way and the floor.

(a) ``pruning_core.sweep``; (b) what PyTorch's pruning tutorial does per level: ``deepcopy`` the
model, ``prune.global_unstructured``, evaluate; (c) the floor: 20 dense evaluations of the same test
set. All three evaluate with the same ``pruning_core.evaluate``, so the ratios measure pruning
overhead only. Peak memory is the growth of the process's peak resident set during one sweep.
"""

from __future__ import annotations

import copy
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.utils.prune as prune
from torch import nn

import sample_models
from pruning_core import evaluate, prunable_layers, sweep

LEVELS = [round(0.05 * i, 2) for i in range(20)]  # 0.00 .. 0.95


def synthetic_mlp(seed: int = 0) -> tuple[nn.Module, tuple]:
    """A ~10.5 M-parameter MLP (1024-2048-2048-2048-10) with a random 1000-sample test set."""
    torch.manual_seed(seed)
    from sample_models.architectures import MLP

    model = MLP([1024, 2048, 2048, 2048, 10]).eval()
    X = torch.randn(1000, 1024)
    with torch.inference_mode():
        y = model(X).argmax(1)
    return model, (X, y)


def tutorial_sweep(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> list[dict]:
    rows = []
    for level in LEVELS:
        pruned = copy.deepcopy(model)
        modules = dict(pruned.named_modules())
        params = [(modules[name], "weight") for name in prunable_layers(pruned)]
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=level)
        rows.append(evaluate(pruned, X, y))
    return rows


def floor(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> list[dict]:
    return [evaluate(model, X, y) for _ in LEVELS]


def interleaved_medians(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median seconds of each function, run in turn within every repeat so that drift in the
    machine's speed (a shared VM) affects all of them alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times):
            gc.collect()
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_growth_bytes(fn: Callable[[], object], interval_s: float = 0.0005) -> int | None:
    """How far the resident set rose above its level before ``fn`` ran, sampled by a thread (Linux)."""
    if not os.path.exists("/proc/self/statm"):
        return None
    gc.collect()
    baseline = _rss_bytes()
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_bytes())
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    return max(peak, _rss_bytes()) - baseline


def _load_case(name: str):
    if name == "synthetic-10M-mlp":
        return synthetic_mlp()
    sample = sample_models.load_sample(name)
    return sample.model, (sample.data.X_test, sample.data.y_test)


def sweep_peak_in_fresh_process(name: str) -> int | None:
    """Peak resident growth of one sweep, measured in a new process: in this one, memory freed by
    earlier runs stays with the allocator and would hide the sweep's own allocations."""
    code = (
        "import json, functools; from benchmarks import engine; from pruning_core import sweep; "
        f"model, (X, y) = engine._load_case({name!r}); "
        # Warm up on a tiny model first, so one-time library imports are not counted as the sweep's.
        "import torch; tiny = torch.nn.Sequential(torch.nn.Linear(4, 3)); "
        "sweep(tiny, (torch.randn(8, 4), torch.randint(0, 3, (8,))), ['magnitude'], [0, 0.5]); "
        "print(json.dumps(engine.peak_growth_bytes(functools.partial("
        "sweep, model, (X, y), ['magnitude'], engine.LEVELS, scope='global', generalisation=False))))"
    )
    root = Path(__file__).resolve().parents[1]
    # Large blocks through mmap are returned to the system when freed, so RSS follows live memory.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(repeats_small: int = 15, repeats_large: int = 3) -> list[dict]:
    cases = []
    for name, repeats in (
        ("digits-mlp", repeats_small),
        ("digits-cnn", repeats_small),
        ("synthetic-10M-mlp", repeats_large),
    ):
        model, data = _load_case(name)
        cases.append((name, model, data, repeats))

    results = []
    for name, model, (X, y), repeats in cases:
        param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        data_bytes = X.numel() * X.element_size() + y.numel() * y.element_size()
        # The sweep's own train/noisy-accuracy columns are two more evaluations per level that the
        # floor does not do; (a) leaves them out so a/c measures pruning overhead, (a+) includes them.
        engine = functools.partial(sweep, model, (X, y), ["magnitude"], LEVELS, scope="global", generalisation=False)
        engine_full = functools.partial(sweep, model, (X, y, X, y), ["magnitude"], LEVELS, scope="global")
        engine()  # warm-up: first calls trace and load kernels
        a, b, c, a_full = interleaved_medians(
            [
                engine,
                functools.partial(tutorial_sweep, model, X, y),
                functools.partial(floor, model, X, y),
                engine_full,
            ],
            repeats,
        )
        peak = sweep_peak_in_fresh_process(name)
        results.append(
            {
                "model": name,
                "params": sum(p.numel() for p in model.parameters()),
                "engine_s": a,
                "engine_full_s": a_full,
                "tutorial_s": b,
                "floor_s": c,
                "engine_over_floor": a / c,
                "tutorial_over_engine": b / a,
                "peak_growth_mb": None if peak is None else peak / 2**20,
                "peak_over_params": None if peak is None else peak / param_bytes,
                "memory_budget_mb": (3 * param_bytes + data_bytes) / 2**20,
            }
        )
    return results


def report(results: list[dict]) -> str:
    lines = [
        "Engine: 20-level global magnitude sweep (medians)",
        f"{'model':<19}{'params':>11}{'(a) engine':>12}{'(b) tutorial':>14}{'(c) floor':>11}"
        f"{'a/c':>7}{'b/a':>7}{'peak MB':>9}{'budget MB':>11}{'(a+) full table':>17}",
    ]
    for r in results:
        peak = "n/a" if r["peak_growth_mb"] is None else f"{r['peak_growth_mb']:.1f}"
        lines.append(
            f"{r['model']:<19}{r['params']:>11,}{r['engine_s'] * 1e3:>10.1f}ms{r['tutorial_s'] * 1e3:>12.1f}ms"
            f"{r['floor_s'] * 1e3:>9.1f}ms{r['engine_over_floor']:>7.2f}{r['tutorial_over_engine']:>7.1f}"
            f"{peak:>9}{r['memory_budget_mb']:>11.1f}{r['engine_full_s'] * 1e3:>15.1f}ms"
        )
    lines.append("Targets: a/c <= 1.5 on every model; b/a >= 5 on digits-mlp; peak <= 3x parameter bytes + data.")
    lines.append("(a+) is the same sweep with the train and noisy-test accuracy columns: 3 evaluations per level.")
    return "\n".join(lines)


# --- the lean default sweep ----------------------------------------------------------------------------
# What the app and the CLI run: ``sweep(model, data, [method], levels)`` with its defaults on a split
# that has a validation set (so each level also evaluates validation, what knees select on), against
# 20 bare evaluations of the same test set, and the tutorial loop on a ~4 M-parameter MLP.

LEAN_TARGET_OVER_FLOOR = 1.5
LEAN_TARGET_TUTORIAL_OVER_SWEEP = 5.0


def synthetic_4m_split(seed: int = 0) -> tuple[nn.Module, sample_models.DataSplit]:
    """A ~4.2 M-parameter MLP (1024-2048-1024-10) with random train/validation/test inputs labelled
    by the model itself (1000 test, 250 validation, 256 train samples)."""
    from sample_models.architectures import MLP

    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # the layers' default initialisation draws from the global RNG
        torch.manual_seed(seed)
        model = MLP([1024, 2048, 1024, 10]).eval()
    X = torch.randn(1506, 1024, generator=generator)
    with torch.inference_mode():
        y = model(X).argmax(1)
    return model, sample_models.DataSplit(X[:256], y[:256], X[256:1256], y[256:1256], X[1256:], y[1256:])


def _lean_case(name: str) -> tuple[nn.Module, sample_models.DataSplit]:
    if name == "synthetic-4M-mlp":
        return synthetic_4m_split()
    sample = sample_models.load_sample(name)
    return sample.model, sample.data


def level_profile(model: nn.Module, data: sample_models.DataSplit, method: str = "magnitude") -> dict[str, float]:
    """Seconds per level of each stage of the default sweep's loop, timed separately with the
    engine's own functions: writing the masked weights, the test and validation evaluations, the
    effective accounting (``effective_counts``) and the size metrics."""
    from pruning_core.effective import Dataflow, effective_counts
    from pruning_core.masks import MaskPlan
    from pruning_core.metrics import ModelProfile, size_metrics
    from pruning_core.sweep import _nonzero_after

    stages = dict.fromkeys(("ranking", "masking", "test eval", "val eval", "effective", "sizes"), 0.0)
    start = time.perf_counter()
    profile, flow = ModelProfile.of(model, data.X_test), Dataflow.of(model)
    plan = MaskPlan.build(model, method)
    working = copy.deepcopy(model).eval()
    originals = {n: p.detach() for n, p in model.named_parameters()}
    params = dict(working.named_parameters())
    levels = plan.masks_and_counts(LEVELS, "global")
    stages["ranking"] = time.perf_counter() - start
    for _ in LEVELS:
        t0 = time.perf_counter()
        masks, pruned = next(levels)
        t1 = time.perf_counter()
        with torch.no_grad():
            for name, mask in masks.items():
                torch.mul(originals[name], mask, out=params[name])
        t2 = time.perf_counter()
        evaluate(working, data.X_test, data.y_test)
        t3 = time.perf_counter()
        evaluate(working, data.X_val, data.y_val)
        t4 = time.perf_counter()
        effective = effective_counts(flow, params)
        t5 = time.perf_counter()
        size_metrics(profile, _nonzero_after(masks, pruned, profile, params), effective)
        t6 = time.perf_counter()
        stages["ranking"] += t1 - t0
        stages["masking"] += t2 - t1
        stages["test eval"] += t3 - t2
        stages["val eval"] += t4 - t3
        stages["effective"] += t5 - t4
        stages["sizes"] += t6 - t5
    return {stage: seconds / len(LEVELS) for stage, seconds in stages.items()}


def floor_with_validation(model: nn.Module, data: sample_models.DataSplit) -> list[tuple[dict, dict]]:
    """20 bare evaluations of test and validation: what the default sweep must evaluate anyway."""
    return [(evaluate(model, data.X_test, data.y_test), evaluate(model, data.X_val, data.y_val)) for _ in LEVELS]


def run_lean(repeats: int = 7, method: str = "magnitude") -> list[dict]:
    """The default sweep against the floor (both models) and the tutorial loop (the 4 M MLP)."""
    results = []
    for name in ("digits-cnn", "synthetic-4M-mlp"):
        model, data = _lean_case(name)
        X, y = data.X_test, data.y_test
        default_sweep = functools.partial(sweep, model, data, [method], LEVELS)
        default_sweep()  # warm-up: the first call records the dataflow and loads kernels
        fns = [
            default_sweep,
            functools.partial(floor, model, X, y),
            functools.partial(floor_with_validation, model, data),
        ]
        if name == "synthetic-4M-mlp":
            fns.append(functools.partial(tutorial_sweep, model, X, y))
        medians = interleaved_medians(fns, repeats)
        results.append(
            {
                "model": name,
                "params": sum(p.numel() for p in model.parameters()),
                "sweep_s": medians[0],
                "floor_s": medians[1],
                "floor_val_s": medians[2],
                "tutorial_s": medians[3] if len(medians) > 3 else None,
                "sweep_over_floor": medians[0] / medians[1],
                "sweep_over_floor_val": medians[0] / medians[2],
                "tutorial_over_sweep": medians[3] / medians[0] if len(medians) > 3 else None,
                "per_level_s": level_profile(model, data, method),
            }
        )
    return results


def report_lean(results: list[dict]) -> str:
    lines = [
        "Lean default sweep: sweep(model, data, ['magnitude'], 20 levels) with its defaults (test + validation",
        "evaluated per level) vs 20 bare test evaluations (floor) and the tutorial loop (medians, interleaved)",
        f"{'model':<18}{'params':>11}{'sweep':>10}{'floor':>10}{'tutorial':>11}{'sweep/floor':>13}"
        f"{'tutorial/sweep':>16}{'sweep/(test+val floor)':>24}",
    ]
    for r in results:
        tutorial = "-" if r["tutorial_s"] is None else f"{r['tutorial_s'] * 1e3:.1f}ms"
        speedup = "-" if r["tutorial_over_sweep"] is None else f"{r['tutorial_over_sweep']:.1f}"
        lines.append(
            f"{r['model']:<18}{r['params']:>11,}{r['sweep_s'] * 1e3:>8.1f}ms{r['floor_s'] * 1e3:>8.1f}ms"
            f"{tutorial:>11}{r['sweep_over_floor']:>13.2f}{speedup:>16}{r['sweep_over_floor_val']:>24.2f}"
        )
    lines.append(
        f"Targets: sweep/floor <= {LEAN_TARGET_OVER_FLOOR} on both; tutorial/sweep >= "
        f"{LEAN_TARGET_TUTORIAL_OVER_SWEEP} on the 4 M MLP."
    )
    lines.append("Per level, ms (stages of the sweep's loop timed alone):")
    for r in results:
        parts = ", ".join(f"{stage} {seconds * 1e3:.2f}" for stage, seconds in r["per_level_s"].items())
        lines.append(f"  {r['model']:<18}{parts}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report_lean(run_lean()))
