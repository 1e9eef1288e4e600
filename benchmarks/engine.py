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
import statistics
import time
from collections.abc import Callable

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


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def peak_growth_bytes(fn: Callable[[], object]) -> int | None:
    """How far the peak resident set rose above the current one while ``fn`` ran (Linux only)."""
    try:
        gc.collect()
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM (peak RSS) to the current RSS
    except OSError:
        return None
    before = _rss_kib("VmRSS:")
    fn()
    return (_rss_kib("VmHWM:") - before) * 1024


def run(repeats_small: int = 7, repeats_large: int = 3) -> list[dict]:
    cases = []
    for name in ("digits-mlp", "digits-cnn"):
        sample = sample_models.load_sample(name)
        cases.append((name, sample.model, (sample.data.X_test, sample.data.y_test), repeats_small))
    model, data = synthetic_mlp()
    cases.append(("synthetic-10M-mlp", model, data, repeats_large))

    results = []
    for name, model, (X, y), repeats in cases:
        param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        data_bytes = X.numel() * X.element_size() + y.numel() * y.element_size()
        engine = functools.partial(sweep, model, (X, y), ["magnitude"], LEVELS, scope="global")
        engine()  # warm-up: first calls trace and load kernels
        a = median_seconds(engine, repeats)
        b = median_seconds(functools.partial(tutorial_sweep, model, X, y), repeats)
        c = median_seconds(functools.partial(floor, model, X, y), repeats)
        peak = peak_growth_bytes(engine)
        results.append(
            {
                "model": name,
                "params": sum(p.numel() for p in model.parameters()),
                "engine_s": a,
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
        f"{'a/c':>7}{'b/a':>7}{'peak MB':>9}{'budget MB':>11}",
    ]
    for r in results:
        peak = "n/a" if r["peak_growth_mb"] is None else f"{r['peak_growth_mb']:.1f}"
        lines.append(
            f"{r['model']:<19}{r['params']:>11,}{r['engine_s'] * 1e3:>10.1f}ms{r['tutorial_s'] * 1e3:>12.1f}ms"
            f"{r['floor_s'] * 1e3:>9.1f}ms{r['engine_over_floor']:>7.2f}{r['tutorial_over_engine']:>7.1f}"
            f"{peak:>9}{r['memory_budget_mb']:>11.1f}"
        )
    lines.append("Targets: a/c <= 1.5 on every model; b/a >= 5 on digits-mlp; peak <= 3x parameter bytes + data.")
    return "\n".join(lines)
