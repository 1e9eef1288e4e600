"""One choice, one path: the one function that applies a :class:`PruningChoice` to a model.

The sweep, the recipe's ``apply``, the app's views, sensitivity proposals and the CLI all prune
through :func:`apply_choice` (or :func:`masks_for` / :func:`mask_plan` for masks alone), so they
read the same calibration samples, make the same adjustments (``PruningChoice.resolved``) and
cannot disagree. Nothing here modifies the caller's model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pruning_core import graph
from pruning_core.choice import Calibration, PruningChoice
from pruning_core.masks import MaskPlan, apply_masks
from pruning_core.methods import get_method
from pruning_core.schedules import run_schedule

Progress = Callable[[float, str], None]
Masks = dict[str, torch.Tensor]


@dataclass
class Applied:
    """A choice carried out: the pruned model (zeros in place; trained when the schedule trains),
    its keep-masks, the notes on what was adjusted, and the resolved choice that was applied."""

    model: nn.Module
    masks: Masks
    notes: list[str]
    choice: PruningChoice
    control: nn.Module | None = None  # lottery: the random re-initialisation control, when asked
    history: list[dict] = field(default_factory=list)


def train_split(data: Any) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(X_train, y_train) of a DataSplit, a 4-tuple (X_train, y_train, X_test, y_test) or an
    (X_train, y_train) pair; (None, None) when ``data`` is None (data-free use)."""
    if data is None:
        return None, None
    if hasattr(data, "X_train"):
        return data.X_train, data.y_train
    items = tuple(data)
    if len(items) in (2, 4):
        return items[0], items[1]
    raise ValueError("data must be a DataSplit, (X_train, y_train, X_test, y_test), (X_train, y_train) or None")


def calibration_for(choice: PruningChoice, data: object) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The calibration inputs and labels the choice reads: always ``choice.calibration.select`` on
    the train split, the one place calibration samples are taken."""
    X_train, y_train = train_split(data)
    return choice.calibration.select(X_train, y_train)


def mask_plan(model: nn.Module, data: object, choice: PruningChoice) -> MaskPlan:
    """The scored plan of ``choice``'s method (exclusions, seed and calibration applied), from which
    masks at any sparsity of the choice's scope are cut; for sweeps and sensitivity analyses that
    read many levels of one choice. Pass a resolved choice."""
    X_calib, y_calib = calibration_for(choice, data)
    return MaskPlan.build(
        model, choice.method, exclude=choice.exclude, seed=choice.seed, X_calib=X_calib, y_calib=y_calib
    )


def masks_for(model: nn.Module, data: object, choice: PruningChoice) -> Masks:
    """One-shot keep-masks (True = kept) of ``choice`` resolved, keyed by parameter name."""
    resolved, _ = choice.resolved()
    return mask_plan(model, data, resolved).masks(resolved.sparsity_argument, resolved.scope)


def pairing_notes(model: nn.Module, data: object, choice: PruningChoice) -> list[str]:
    """For a structured method, a note when the model's BatchNorms could not be paired with its
    layers from the recorded dataflow (``graph.norm_pairing``); none otherwise."""
    if get_method(choice.method).granularity != "structured":
        return []
    X_train, _ = train_split(data)  # any one sample: the dataflow does not depend on which
    example = X_train[:1] if X_train is not None and len(X_train) else None
    note = graph.norm_pairing(model, example).note
    return [note] if note is not None else []


def apply_choice(
    model: nn.Module,
    data: object,
    choice: PruningChoice,
    *,
    init_state: Mapping[str, torch.Tensor] | None = None,
    reinit: Callable[[int], Mapping[str, torch.Tensor]] | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Applied:
    """Prune a copy of ``model`` as ``choice`` says, and train it when its schedule trains.

    ``data`` gives the train split (a DataSplit or tuple; None for data-free methods): the
    calibration samples come from it through ``choice.calibration``, and fine-tuning sees only it.
    ``init_state`` (lottery) is the weights the model was trained from; ``reinit(seed)`` asks for
    the lottery's random re-initialisation control. The notes say how the request was adjusted.
    """
    resolved, notes = choice.resolved()
    notes += pairing_notes(model, data, resolved)
    if resolved.trains and resolved.schedule is not None:
        X_train, y_train = train_split(data)
        if X_train is None or y_train is None:
            raise ValueError("a schedule that trains needs train data: pass a DataSplit or a 4-tuple")
        X_calib, y_calib = resolved.calibration.select(X_train, y_train)
        result = run_schedule(
            model, X_train, y_train, resolved.method, resolved.scope, resolved.sparsity_argument,
            resolved.schedule, exclude=resolved.exclude, seed=resolved.seed, init_state=init_state,
            reinit=reinit, progress=progress, should_stop=should_stop, X_calib=X_calib, y_calib=y_calib,
        )  # fmt: skip
        return Applied(result.model, result.masks, notes, resolved, result.control, result.history)
    masks = mask_plan(model, data, resolved).masks(resolved.sparsity_argument, resolved.scope)
    if progress is not None:
        progress(1.0, f"{resolved.method} pruned")
    return Applied(apply_masks(model, masks).eval(), masks, notes, resolved)


__all__ = ["Applied", "Calibration", "PruningChoice", "apply_choice", "calibration_for", "mask_plan", "masks_for"]
