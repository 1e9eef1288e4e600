"""Sensitivity analysis: prune one layer at a time and watch the accuracy; then propose per-layer
sparsities that reach an overall target within an accuracy budget (Li et al. 2017; Distiller).

The proposal raises every layer's sparsity together, each up to the highest swept level whose
*individual* accuracy drop stays within a common tolerance, and searches the smallest tolerance
that reaches the overall target. Layer drops do not add up exactly, so the proposal is then
evaluated with all layers pruned at once and the tolerance lowered until the *joint* drop fits the
budget: a proposal never claims a budget it does not meet. It is an explicit per-layer allocation
that sweeps, recipes and exports take like any other.

Everything that chooses (the per-layer drops, the tolerance search, the budget check) is measured
on the validation split; the test split only reports (``test_accuracy``/``test_drop`` columns, and
the proposal's ``test_drop``). Data without a validation split falls back to test, and says so.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from pruning_core.apply import mask_plan
from pruning_core.choice import Calibration, PruningChoice
from pruning_core.deadline import check_deadline
from pruning_core.masks import MaskPlan, check_sparsity, write_masked
from pruning_core.metrics import evaluate
from pruning_core.sweep import split_data, validation_data

DEFAULT_LEVELS = tuple(round(0.1 * i, 2) for i in range(1, 10)) + (0.95,)


def _plan(model, X_train, y_train, method, exclude, seed, calibration: Calibration | None) -> MaskPlan:
    """The method's scored plan through the one apply path (``pruning_core.apply.mask_plan``):
    the same exclusions, seed and calibration samples as a sweep or a recipe of this choice."""
    choice = PruningChoice(
        method=method,
        scope="layerwise",
        sparsity=0.0,
        exclude=tuple(exclude),
        seed=seed,
        calibration=calibration if calibration is not None else Calibration(),
    )
    return mask_plan(model, (X_train, y_train) if X_train is not None else None, choice)


def selection_split(data) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(X, y, name) of the split that selects: validation when ``data`` has one, else test."""
    X_val, y_val = validation_data(data)
    if X_val is not None and y_val is not None:
        return X_val, y_val, "validation"
    _, _, X_test, y_test = split_data(data)
    return X_test, y_test, "test"


def layer_sensitivity(
    model: nn.Module,
    data,
    method: str = "magnitude",
    sparsities: Sequence[float] = DEFAULT_LEVELS,
    exclude: Iterable[str] = (),
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
    calibration: Calibration | None = None,
) -> pd.DataFrame:
    """Accuracy with each prunable layer pruned alone at each sparsity (the others dense).

    Columns: layer, params, sparsity, accuracy, accuracy_drop (dense minus pruned, in [−1, 1]) on
    the selection split (validation, or test when there is none; column ``split``), and
    test_accuracy, test_drop on the test split, for reporting only. The caller's model is not modified.
    """
    levels = sorted({check_sparsity(s) for s in sparsities})
    X_train, y_train, X_test, y_test = split_data(data)
    X_sel, y_sel, split = selection_split(data)
    plan = _plan(model, X_train, y_train, method, exclude, seed, calibration)
    working = copy.deepcopy(model).eval()
    params = dict(working.named_parameters())
    originals = {n: p.detach().clone() for n, p in model.named_parameters()}
    dense = evaluate(model, X_sel, y_sel)["accuracy"]
    dense_test = evaluate(model, X_test, y_test)["accuracy"]
    layers = [t for t in plan.scored]
    rows, total, done = [], len(layers) * len(levels), 0
    for target in layers:
        for s in levels:
            check_deadline()
            masks = plan.masks({target.layer: s}, "per-layer")
            with torch.no_grad():
                for name, mask in masks.items():
                    write_masked(originals[name], mask, params[name])
            accuracy = evaluate(working, X_sel, y_sel)["accuracy"]
            test_accuracy = evaluate(working, X_test, y_test)["accuracy"]
            rows.append(
                {
                    "layer": target.layer,
                    "params": target.weight.numel(),
                    "sparsity": s,
                    "accuracy": accuracy,
                    "accuracy_drop": dense - accuracy,
                    "split": split,
                    "test_accuracy": test_accuracy,
                    "test_drop": dense_test - test_accuracy,
                }
            )
            done += 1
            if progress is not None:
                progress(done / total, f"layer {target.layer} at {s * 100:.4g} % sparsity ({done}/{total})")
        with torch.no_grad():
            for name in masks:
                params[name].copy_(originals[name])
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Proposal:
    """Per-layer sparsities that meet an accuracy budget, and how close they come to the target."""

    layer_sparsities: dict[str, float]
    target_sparsity: float
    budget: float  # largest accepted drop in accuracy (fraction, 0.01 = 1 point)
    overall_sparsity: float  # over the analysed layers' weights
    tolerance: float  # the per-layer drop tolerance that produced it
    measured_drop: float  # accuracy drop with every layer pruned at once, on the selection split
    test_drop: float = float("nan")  # the same drop on the test split: reported, never used to choose
    split: str = "validation"  # the split that chose it and checked the budget

    @property
    def meets_target(self) -> bool:
        return self.overall_sparsity >= self.target_sparsity - 1e-9


def _allocation(table: pd.DataFrame, tolerance: float) -> dict[str, float]:
    """Per layer, the highest swept sparsity whose own drop is within ``tolerance`` (0 if none)."""
    ok = table[table["accuracy_drop"] <= tolerance + 1e-12]
    chosen = ok.groupby("layer", sort=False)["sparsity"].max().to_dict()
    return {layer: float(chosen.get(layer, 0.0)) for layer in table["layer"].unique()}


def _overall(table: pd.DataFrame, allocation: dict[str, float]) -> float:
    params = table.groupby("layer", sort=False)["params"].first()
    return float(sum(params[layer] * s for layer, s in allocation.items()) / params.sum())


def propose(
    model: nn.Module,
    data,
    table: pd.DataFrame,
    target_sparsity: float,
    budget: float = 0.01,
    method: str = "magnitude",
    exclude: Iterable[str] = (),
    seed: int = 0,
    calibration: Calibration | None = None,
) -> Proposal:
    """Per-layer sparsities from a sensitivity ``table`` reaching ``target_sparsity`` if the
    ``budget`` allows, verified jointly so the measured drop is within the budget.

    The table should come from :func:`layer_sensitivity` on the same data: both choose on the
    validation split; the proposal's ``test_drop`` reports the test split's drop."""
    target_sparsity = check_sparsity(target_sparsity)
    X_train, y_train, X_test, y_test = split_data(data)
    X_sel, y_sel, split = selection_split(data)
    plan = _plan(model, X_train, y_train, method, exclude, seed, calibration)
    dense = evaluate(model, X_sel, y_sel)["accuracy"]

    def joint_drop(allocation: dict[str, float], X: torch.Tensor = X_sel, y: torch.Tensor = y_sel) -> float:
        from pruning_core.masks import apply_masks

        pruned = apply_masks(model, plan.masks(allocation, "per-layer"))
        reference = dense if X is X_sel else evaluate(model, X, y)["accuracy"]
        return reference - evaluate(pruned, X, y)["accuracy"]

    # Candidate tolerances: every distinct individual drop, smallest first.
    tolerances = sorted({max(0.0, float(d)) for d in table["accuracy_drop"]} | {0.0})
    within = [t for t in tolerances if t <= budget + 1e-12]
    reaching = [t for t in within if _overall(table, _allocation(table, t)) >= target_sparsity - 1e-9]
    # The smallest tolerance that reaches the target, else the largest the budget allows.
    order = [reaching[0]] + [t for t in reversed(within) if t < reaching[0]] if reaching else list(reversed(within))
    for tolerance in order:
        check_deadline()
        allocation = _allocation(table, tolerance)
        drop = joint_drop(allocation)
        if drop <= budget + 1e-12:
            return Proposal(
                layer_sparsities=allocation,
                target_sparsity=target_sparsity,
                budget=budget,
                overall_sparsity=_overall(table, allocation),
                tolerance=tolerance,
                measured_drop=drop,
                test_drop=joint_drop(allocation, X_test, y_test),
                split=split,
            )
    allocation = {layer: 0.0 for layer in table["layer"].unique()}
    return Proposal(allocation, target_sparsity, budget, 0.0, 0.0, 0.0, 0.0, split)
