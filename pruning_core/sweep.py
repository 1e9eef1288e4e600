"""Sparsity sweeps: many methods x many sparsities, evaluated into one tidy table.

The caller's model is never touched. One working copy is made per sweep; for each level the
masked weights are written into it with ``torch.mul(original, mask, out=working)``, so a level
costs one pass over the pruned weights plus the evaluation, instead of a deepcopy and a re-prune.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from pruning_core.masks import MaskPlan, Sparsity, check_scope, check_sparsity
from pruning_core.methods import get_method
from pruning_core.metrics import ModelProfile, evaluate, nonzero_counts, size_metrics

Progress = Callable[[float, str], None]

COLUMNS = [
    "method",
    "granularity",
    "scope",
    "target_sparsity",
    "actual_sparsity",
    "sparsity_all_params",
    "nonzero_params",
    "total_params",
    "dense_bytes",
    "sparse_bytes",
    "compression_ratio",
    "accuracy",
    "loss",
    "precision",
    "recall",
    "f1",
    "dense_macs",
    "effective_macs",
    "theoretical_speedup",
    "seed",
    "seconds",
]


def split_data(data) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """(X_train, y_train, X_test, y_test) from a DataSplit, a 4-tuple, or an (X_test, y_test) pair."""
    if hasattr(data, "X_test"):
        return data.X_train, data.y_train, data.X_test, data.y_test
    items = tuple(data)
    if len(items) == 4:
        return items  # type: ignore[return-value]
    if len(items) == 2:
        return None, None, items[0], items[1]
    raise ValueError("data must be a DataSplit, (X_train, y_train, X_test, y_test) or (X_test, y_test)")


def _level_value(level: Sparsity) -> float | dict:
    return level if isinstance(level, dict) else check_sparsity(level)


def sweep(
    model: nn.Module,
    data,
    methods: Sequence[str] = ("magnitude",),
    sparsities: Sequence[Sparsity] = (0.0, 0.5, 0.9),
    scope: str = "global",
    exclude: Iterable[str] = (),
    seed: int = 0,
    progress: Progress | None = None,
    batch_size: int = 512,
    calibration_samples: int = 256,
) -> pd.DataFrame:
    """Prune ``model`` with each method at each sparsity and evaluate on the test split.

    Returns one row per (method, scope, target sparsity) with the columns in ``COLUMNS``. A
    fixed-pattern method (N:M) gives one row at its own sparsity. ``progress(fraction, message)`` is
    called after every row. The caller's model is not modified.
    """
    check_scope(scope)
    resolved = [get_method(m) for m in methods]
    if not resolved:
        raise ValueError("give at least one method")
    levels = [_level_value(level) for level in sparsities]
    if not levels:
        raise ValueError("give at least one sparsity")
    exclude = tuple(exclude)
    X_train, y_train, X_test, y_test = split_data(data)
    X_calib = X_train[:calibration_samples] if X_train is not None else None
    y_calib = y_train[:calibration_samples] if y_train is not None else None

    working = copy.deepcopy(model).eval()
    originals = {n: p.detach() for n, p in model.named_parameters()}
    working_params = dict(working.named_parameters())
    profile = ModelProfile.of(model, X_test)

    plans = [(m, m.fixed_sparsity) for m in resolved]
    total_rows = sum(1 if fixed is not None else len(levels) for _, fixed in plans)
    columns: dict[str, list] = {name: [] for name in COLUMNS}
    done = 0
    for method, fixed in plans:
        method_scope = scope if scope in method.scopes else method.scopes[0]
        method_levels = [fixed] if fixed is not None else levels
        start = time.perf_counter()
        plan = MaskPlan.build(model, method, exclude=exclude, seed=seed, X_calib=X_calib, y_calib=y_calib)
        prep_seconds = time.perf_counter() - start
        with torch.no_grad():
            for p_name, p in working_params.items():
                p.copy_(originals[p_name])
        request = [0.0] if fixed is not None else levels  # a fixed pattern ignores the sparsity asked
        for level, (masks, pruned) in zip(method_levels, plan.masks_and_counts(request, method_scope), strict=False):
            t0 = time.perf_counter()
            with torch.no_grad():
                for p_name, mask in masks.items():
                    torch.mul(originals[p_name], mask, out=working_params[p_name])
            metrics = evaluate(working, X_test, y_test, batch_size=batch_size)
            sizes = size_metrics(profile, _nonzero_after(masks, pruned, profile, working_params))
            seconds = time.perf_counter() - t0 + prep_seconds / len(method_levels)
            target = level if not isinstance(level, dict) else _mean_target(level, profile)
            row = {
                "method": method.name,
                "granularity": method.granularity,
                "scope": method_scope,
                "target_sparsity": float(target),
                **sizes,
                **metrics,
                "seed": seed,
                "seconds": seconds,
            }
            for name in COLUMNS:
                columns[name].append(row[name])
            done += 1
            if progress is not None:
                progress(done / total_rows, f"{method.label} at {float(target):.0%} sparsity")
    return pd.DataFrame(columns)


def _nonzero_after(masks, pruned, profile: ModelProfile, working_params) -> dict[str, int]:
    """Nonzero elements of every masked parameter: from the ranking's pruned counts where the dense
    tensor had no zeros (then nonzero = elements - pruned), else counted."""
    known, to_count = {}, {}
    for name in masks:
        numel = profile.params[name][0]
        total = math.prod(numel)
        if pruned is not None and name in pruned and profile.nonzero[name] == total:
            known[name] = total - pruned[name]
        elif pruned is not None and name not in pruned and profile.nonzero[name] == total:
            known[name] = total  # a target the method leaves alone: its all-True mask prunes nothing
        else:
            to_count[name] = working_params[name]
    return {**known, **nonzero_counts(to_count)}


def _mean_target(level: dict, profile: ModelProfile) -> float:
    """A per-layer allocation's overall target: the weight-count-weighted mean over its layers."""
    total = pruned = 0.0
    for name, numel in profile.prunable_weights.items():
        layer = name[: -len(".weight")]
        s = level.get(layer, level.get(name, 0.0))
        total += numel
        pruned += s * numel
    return pruned / total if total else 0.0
