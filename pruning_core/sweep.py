"""Sparsity sweeps: many methods x many sparsities, evaluated into one tidy table.

The caller's model is never touched. One working copy is made per sweep; for each level the
masked weights are written into it (``masks.write_masked(original, mask, working)``), so a level
costs one pass over the pruned weights plus the evaluation, instead of a deepcopy and a re-prune.
"""

from __future__ import annotations

import concurrent.futures
import copy
import functools
import math
import multiprocessing
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from pruning_core.apply import apply_choice, mask_plan
from pruning_core.choice import Calibration, PruningChoice
from pruning_core.deadline import check_deadline
from pruning_core.effective import Dataflow, effective_counts
from pruning_core.finetune import Stopped
from pruning_core.masks import Sparsity, check_scope, check_sparsity, write_masked
from pruning_core.methods import get_method
from pruning_core.metrics import ModelProfile, evaluate, nonzero_counts, size_metrics
from pruning_core.schedules import Schedule
from pruning_core.stats import wilson_interval

Progress = Callable[[float, str], None]

# Selection (knees, proposals) reads the validation columns; the interval is the test accuracy's
# Wilson 95 % interval over ``test_samples``.
VALIDATION_COLUMNS = [
    "val_accuracy",
    "val_loss",
    "val_precision",
    "val_recall",
    "val_f1",
    "accuracy_low",
    "accuracy_high",
    "test_samples",
    "val_samples",
]

COLUMNS = [
    "method",
    "granularity",
    "scope",
    "target_sparsity",
    "actual_sparsity",
    "effective_sparsity",
    "sparsity_all_params",
    "nonzero_params",
    "effective_params",
    "total_params",
    "dense_bytes",
    "sparse_bytes",
    "effective_sparse_bytes",
    "compression_ratio",
    "direct_compression_ratio",
    "accuracy",
    "loss",
    "precision",
    "recall",
    "f1",
    "dense_macs",
    "direct_macs",
    "effective_macs",
    "theoretical_speedup",
    "direct_speedup",
    "schedule",
    "finetune_epochs",
    "train_accuracy",
    "noisy_accuracy",
    *VALIDATION_COLUMNS,
    "seed",
    "seconds",
]


def split_data(data) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """(X_train, y_train, X_test, y_test) from a DataSplit, a 4-tuple, or an (X_test, y_test) pair."""
    if hasattr(data, "X_test"):
        return data.X_train, data.y_train, data.X_test, data.y_test
    items = tuple(data)
    if len(items) == 4:
        return items
    if len(items) == 2:
        return None, None, items[0], items[1]
    raise ValueError("data must be a DataSplit, (X_train, y_train, X_test, y_test) or (X_test, y_test)")


def validation_data(data) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(X_val, y_val) of a DataSplit that has a validation split, else (None, None)."""
    X_val, y_val = getattr(data, "X_val", None), getattr(data, "y_val", None)
    return (X_val, y_val) if X_val is not None and y_val is not None else (None, None)


def _level_value(level: Sparsity) -> float | dict:
    return level if isinstance(level, dict) else check_sparsity(level)


def choice_at(
    method: str,
    scope: str,
    level: Sparsity,
    exclude: Iterable[str] = (),
    seed: int = 0,
    schedule: Schedule | None = None,
    calibration: Calibration | None = None,
) -> PruningChoice:
    """The choice one sweep level stands for (a mapping level is a per-layer allocation)."""
    calibration = calibration if calibration is not None else Calibration()
    if isinstance(level, Mapping):
        if scope != "per-layer":
            raise ValueError(f"a per-layer sparsity mapping needs scope 'per-layer', not {scope!r}")
        return PruningChoice.per_layer(
            method, level, exclude=tuple(exclude), seed=seed, schedule=schedule, calibration=calibration
        )
    return PruningChoice(
        method=method, scope=scope, sparsity=float(level), exclude=tuple(exclude), seed=seed, schedule=schedule,
        calibration=calibration,
    )  # fmt: skip


def sweep(  # noqa: C901 - the public entry point: its signature and docstring document 17 options; the body delegates
    model: nn.Module,
    data,
    methods: Sequence[str] = ("magnitude",),
    sparsities: Sequence[Sparsity] = (0.0, 0.5, 0.9),
    scope: str = "global",
    exclude: Iterable[str] = (),
    seed: int = 0,
    progress: Progress | None = None,
    batch_size: int = 512,
    calibration: Calibration | None = None,
    schedule: Schedule | None = None,
    generalisation: bool = False,
    noise_std: float | None = None,
    workers: int = 1,
    init_state: Mapping[str, torch.Tensor] | None = None,
    reinit: Callable[[int], Mapping[str, torch.Tensor]] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> pd.DataFrame:
    """Prune ``model`` with each method at each sparsity and evaluate on the test split (and on the
    validation split when ``data`` has one: the ``val_*`` columns that knees are selected on).

    Returns one row per (method, scope, target sparsity, schedule) with the columns in
    ``COLUMNS``. A fixed-pattern method (N:M) gives one row at its own sparsity.
    ``progress(fraction, message)`` is called after every row. The caller's model is not modified.

    With a ``schedule`` that trains (fine-tuning, iterative, gradual, lottery), each level is pruned
    and trained on the train split only; ``workers`` > 1 runs levels in that many processes.
    The lottery schedule needs ``init_state`` and adds a "lottery-reinit" control row per level
    when ``reinit(seed)`` is given. ``generalisation=True`` adds train accuracy and accuracy on test
    inputs with Gaussian noise (``noise_std``, default 0.2 x the train inputs' std; fixed seed);
    they cost two more evaluations per row, so only views that show them ask (else NaN).
    ``should_stop()`` is polled during training; when it returns True the rows so far are returned.
    ``calibration`` says which train samples data-driven criteria read (default: the first 256).

    Each (method, level) is a :class:`PruningChoice` resolved like everywhere else (an N:M
    pattern's own sparsity, a scope the method lacks falls back) and pruned through
    ``pruning_core.apply``, so a row describes exactly what ``apply_choice`` gives for that choice.
    """
    check_scope(scope)
    resolved = [get_method(m) for m in methods]
    if not resolved:
        raise ValueError("give at least one method")
    levels = [_level_value(level) for level in sparsities]
    if not levels:
        raise ValueError("give at least one sparsity")
    exclude = tuple(exclude)
    calibration = calibration if calibration is not None else Calibration()
    X_train, y_train, X_test, y_test = split_data(data)
    X_val, y_val = validation_data(data)

    profile = ModelProfile.of(model, X_test)
    flow = Dataflow.of(model)
    noisy = _noisy(X_test, X_train, noise_std) if generalisation else None
    measure = functools.partial(
        _measure, X_test=X_test, y_test=y_test, X_train=X_train if generalisation else None,
        y_train=y_train, noisy=noisy, batch_size=batch_size, X_val=X_val, y_val=y_val,
    )  # fmt: skip
    if schedule is not None and (schedule.kind != "oneshot" or schedule.finetune_epochs > 0):
        if X_train is None:
            raise ValueError("a schedule that trains needs train data: pass a DataSplit or a 4-tuple")
        return _scheduled_sweep(
            model, X_train, y_train, resolved, levels, scope, exclude, seed, schedule, profile, flow, measure,
            progress, workers, init_state, reinit, should_stop, calibration,
        )  # fmt: skip

    return _oneshot_sweep(
        model, X_train, y_train, resolved, levels, scope, exclude, seed, calibration, profile, flow, measure, progress
    )  # fmt: skip


def _oneshot_sweep(
    model, X_train, y_train, resolved, levels, scope, exclude, seed, calibration, profile, flow, measure, progress
) -> pd.DataFrame:  # fmt: skip
    """Every method at every level without training: one mask plan per method, masks applied to
    one working copy in place, one row per distinct resolved level."""
    working = copy.deepcopy(model).eval()
    originals = {n: p.detach() for n, p in model.named_parameters()}
    working_params = dict(working.named_parameters())
    plans = [(method, _distinct_choices(method, scope, levels, exclude, seed, calibration)) for method in resolved]
    total_rows = sum(len(choices) for _, choices in plans)
    columns: dict[str, list] = {name: [] for name in COLUMNS}
    done = 0
    for method, choices in plans:
        method_scope = choices[0].scope
        method_levels = [c.sparsity_argument for c in choices]
        check_deadline()
        start = time.perf_counter()
        plan = mask_plan(model, (X_train, y_train) if X_train is not None else None, choices[0])
        prep_seconds = time.perf_counter() - start
        with torch.no_grad():
            for p_name, p in working_params.items():
                p.copy_(originals[p_name])
        # next() rather than zip: zip keeps its last tuple, and with it a level's masks, until the next one
        outcomes = plan.masks_and_counts(method_levels, method_scope)
        for level in method_levels:
            masks, pruned = next(outcomes)
            check_deadline()
            t0 = time.perf_counter()
            with torch.no_grad():
                for p_name, mask in masks.items():
                    write_masked(originals[p_name], mask, working_params[p_name])
            masked = list(masks)
            del masks  # written into the working copy: freed before the evaluation's activations exist
            metrics = measure(working)
            effective = effective_counts(flow, working_params)
            sizes = size_metrics(profile, _nonzero_after(masked, pruned, profile, working_params), effective)
            seconds = time.perf_counter() - t0 + prep_seconds / len(method_levels)
            target = level if not isinstance(level, dict) else _mean_target(level, profile)
            row = {
                "method": method.name,
                "granularity": method.granularity,
                "scope": method_scope,
                "target_sparsity": float(target),
                **sizes,
                **metrics,
                "schedule": "oneshot",
                "finetune_epochs": 0,
                "seed": seed,
                "seconds": seconds,
            }
            for name in COLUMNS:
                columns[name].append(row[name])
            del pruned, effective
            done += 1
            if progress is not None:
                progress(done / total_rows, progress_message(method.label, target, done, total_rows))
    return pd.DataFrame(columns)


def _distinct_choices(method, scope, levels, exclude, seed, calibration) -> list[PruningChoice]:
    """Every level of a method is the same choice but for its sparsity: each one resolved, then the
    distinct resolved levels kept (a fixed pattern such as N:M resolves them all to one)."""
    choices = [choice_at(method.name, scope, level, exclude, seed, None, calibration).resolved()[0] for level in levels]
    return list(dict.fromkeys(choices))


def progress_message(label: str, target: float, done: int, total: int) -> str:
    """What a sweep's progress callback reads, e.g. ``Magnitude at 90 % sparsity (3/20)``: readable
    on its own, so ``progress=print`` says where the sweep is."""
    return f"{label} at {float(target) * 100:.4g} % sparsity ({done}/{total})"


def _noisy(X_test: torch.Tensor, X_train: torch.Tensor | None, noise_std: float | None) -> torch.Tensor:
    """Test inputs plus fixed Gaussian noise, to show robustness to variation in the data."""
    reference = X_train if X_train is not None else X_test
    std = float(reference.std()) * 0.2 if noise_std is None else float(noise_std)
    generator = torch.Generator().manual_seed(1234)
    return X_test + std * torch.randn(X_test.shape, generator=generator)


def _measure(model, X_test, y_test, X_train, y_train, noisy, batch_size, X_val=None, y_val=None) -> dict[str, float]:
    metrics = evaluate(model, X_test, y_test, batch_size=batch_size)
    n_test = len(y_test)
    metrics["accuracy_low"], metrics["accuracy_high"] = wilson_interval(round(metrics["accuracy"] * n_test), n_test)
    metrics["test_samples"] = n_test
    if X_val is not None:
        metrics |= {f"val_{k}": v for k, v in evaluate(model, X_val, y_val, batch_size=batch_size).items()}
        metrics["val_samples"] = len(y_val)
    else:
        metrics |= {f"val_{k}": float("nan") for k in ("accuracy", "loss", "precision", "recall", "f1")}
        metrics["val_samples"] = 0
    metrics["train_accuracy"] = (
        evaluate(model, X_train, y_train, batch_size=batch_size)["accuracy"] if X_train is not None else float("nan")
    )
    metrics["noisy_accuracy"] = (
        evaluate(model, noisy, y_test, batch_size=batch_size)["accuracy"] if noisy is not None else float("nan")
    )
    return metrics


def _schedule_level(
    model, X_train, y_train, choice: PruningChoice, init_state, reinit, *, threads: int, should_stop=None
):  # fmt: skip
    """One level of a scheduled sweep (a resolved choice that trains), through the one apply path;
    runs in a worker process when the sweep is parallel."""
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    applied = apply_choice(
        model, (X_train, y_train), choice, init_state=init_state, reinit=reinit, should_stop=should_stop
    )
    return applied.model, applied.masks, applied.control, time.perf_counter() - start


def _scheduled_sweep(
    model, X_train, y_train, resolved, levels, scope, exclude, seed, schedule, profile, flow, measure,
    progress, workers, init_state, reinit, should_stop, calibration,
) -> pd.DataFrame:  # fmt: skip
    jobs = []
    for method in resolved:
        choices = [
            choice_at(method.name, scope, lv, exclude, seed, schedule, calibration).resolved()[0] for lv in levels
        ]
        for choice in dict.fromkeys(choices):
            jobs.append((method, choice.scope, choice.sparsity_argument, choice))
    rows: list[dict] = []
    start = time.perf_counter()

    def add_rows(job, outcome) -> None:
        method, method_scope, level, _ = job
        trained, masks, control, seconds = outcome
        target = level if not isinstance(level, dict) else _mean_target(level, profile)
        for kind, trained_model in ((schedule.kind, trained), ("lottery-reinit", control)):
            if trained_model is None:
                continue
            params = dict(trained_model.named_parameters())
            rows.append(
                {
                    "method": method.name,
                    "granularity": method.granularity,
                    "scope": method_scope,
                    "target_sparsity": float(target),
                    **size_metrics(
                        profile, nonzero_counts({n: params[n] for n in masks}), effective_counts(flow, params)
                    ),
                    **measure(trained_model),
                    "schedule": kind,
                    # the control trains as the ticket's last round did (see run_schedule)
                    "finetune_epochs": schedule.finetune_epochs if kind == schedule.kind else schedule.finetune.epochs,
                    "seed": seed,
                    "seconds": seconds,
                }
            )
        if progress is not None:
            done = len({(r["method"], r["target_sparsity"]) for r in rows})
            elapsed = time.perf_counter() - start
            left = elapsed / done * (len(jobs) - done)
            progress(
                done / len(jobs),
                f"{progress_message(method.label, target, done, len(jobs))}, {schedule.label}; about {left:.0f} s left",
            )

    args = [(model, X_train, y_train, choice, init_state, reinit) for *_, choice in jobs]
    _run_levels(args, jobs, workers, should_stop, add_rows)
    order = {m.name: i for i, m in enumerate(resolved)}
    rows.sort(key=lambda r: (order[r["method"]], r["schedule"] != schedule.kind, r["target_sparsity"]))
    return pd.DataFrame(rows, columns=COLUMNS)


def _run_levels(args: list[tuple], jobs: list[tuple], workers: int, should_stop, on_outcome) -> None:
    """Run each scheduled level (in ``workers`` forked processes when more than one), handing each
    outcome to ``on_outcome`` as it arrives; a stop request ends the run with what is done."""
    stop = should_stop if should_stop is not None else (lambda: False)
    if workers > 1 and len(jobs) > 1:
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(_schedule_level, *a, threads=1): job for a, job in zip(args, jobs)}
            try:
                for future in concurrent.futures.as_completed(futures):
                    on_outcome(futures[future], future.result())
                    check_deadline()
                    if stop():
                        return
            finally:  # stopped, out of time or failed: levels not started yet are dropped
                for pending in futures:
                    pending.cancel()
        return
    try:
        for a, job in zip(args, jobs):
            check_deadline()
            if stop():
                return
            on_outcome(job, _schedule_level(*a, threads=0, should_stop=should_stop))
    except Stopped:
        return


def _nonzero_after(masked, pruned, profile: ModelProfile, working_params) -> dict[str, int]:
    """Nonzero elements of every masked parameter (``masked``: their names): from the ranking's
    pruned counts where the dense tensor had no zeros (then nonzero = elements - pruned), else counted."""
    known, to_count = {}, {}
    for name in masked:
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
