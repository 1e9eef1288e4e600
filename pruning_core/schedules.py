"""Pruning schedules: one-shot, iterative prune-and-fine-tune, gradual (Zhu & Gupta), lottery tickets.

Every schedule starts from the caller's trained model (never modified: work happens on a copy),
prunes with the chosen method and scope, and fine-tunes on the train split only.

- ``oneshot``: prune to the target once, then optionally fine-tune.
- ``iterative``: reach the target in k rounds, pruning the same fraction of the remaining weights
  each round, fine-tuning after each (Han et al. 2015).
- ``gradual``: raise sparsity during training along s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3
  at steps t0, t0 + dt, ..., t0 + n dt (Zhu & Gupta 2017), then train on at the final sparsity.
- ``lottery``: iterative magnitude pruning where, after each pruning round, the surviving weights
  are rewound to their initial values (or to iteration k of training) and retrained (Frankle &
  Carbin 2019); a control run re-initialises the same final mask at random and trains it exactly as
  the reported ticket was trained from its rewind point (one round: ``finetune.epochs``).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from pruning_core.finetune import FineTuneConfig, masked_steps, steps_per_epoch
from pruning_core.masks import Sparsity, check_sparsity, compute_masks

SCHEDULES = {
    "oneshot": "Prune to the target once, then (optionally) fine-tune.",
    "iterative": "Reach the target in k rounds of prune-then-fine-tune, the same fraction of the remaining weights each round.",
    "gradual": "Raise sparsity during training along Zhu & Gupta's cubic schedule.",
    "lottery": "Iterative magnitude pruning, rewinding survivors to their initial values before retraining; with a random re-initialisation control.",
}

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Schedule:
    """A pruning schedule and its fine-tuning settings (per round for iterative and lottery)."""

    kind: str = "oneshot"
    finetune: FineTuneConfig | None = None
    rounds: int = 3
    initial_sparsity: float = 0.0  # gradual: s_i
    pruning_steps: int = 10  # gradual: n
    rewind_iteration: int = 0  # lottery: k (0 = the initial weights)

    def __post_init__(self):
        problems = []
        if self.kind not in SCHEDULES:
            problems.append(f"unknown schedule {self.kind!r}; valid: {', '.join(SCHEDULES)}")
        if not _is_int(self.rounds) or not 1 <= self.rounds <= 50:
            problems.append(f"rounds must be an integer from 1 to 50, not {self.rounds!r}")
        if not _is_int(self.pruning_steps) or not 1 <= self.pruning_steps <= 1000:
            problems.append(f"pruning_steps must be an integer from 1 to 1000, not {self.pruning_steps!r}")
        if not _is_int(self.rewind_iteration) or self.rewind_iteration < 0:
            problems.append(f"rewind_iteration must be a non-negative integer, not {self.rewind_iteration!r}")
        try:
            check_sparsity(self.initial_sparsity)
        except ValueError as exc:
            problems.append(f"initial_sparsity: {exc}")
        if self.kind in ("iterative", "lottery", "gradual") and (self.finetune is None or self.finetune.epochs < 1):
            problems.append(
                f"schedule {self.kind!r} trains between pruning steps: give fine-tuning with at least 1 epoch"
            )
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def finetune_epochs(self) -> int:
        """Epochs of training after the first pruning step, in total."""
        if self.finetune is None:
            return 0
        return self.finetune.epochs * (self.rounds if self.kind in ("iterative", "lottery") else 1)

    @property
    def label(self) -> str:
        if self.kind == "oneshot":
            return "one-shot" + (f" + {self.finetune.epochs} ep fine-tuning" if self.finetune_epochs else "")
        if self.kind in ("iterative", "lottery"):
            return f"{self.kind} ({self.rounds} rounds × {self.finetune.epochs} ep)"
        return f"gradual ({self.finetune.epochs} ep, {self.pruning_steps} steps)"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["finetune"] = self.finetune.to_dict() if self.finetune else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> Schedule:
        data = dict(data)
        finetune = data.pop("finetune", None)
        return cls(finetune=FineTuneConfig(**finetune) if finetune else None, **data)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def zhu_gupta_sparsity(
    step: int, final: float, initial: float = 0.0, start: int = 0, n: int = 10, every: int = 1
) -> float:
    """Sparsity at ``step`` of the Zhu & Gupta cubic schedule (constant before start and after the end)."""
    if step <= start:
        return initial
    progress = min(1.0, (step - start) / (n * every))
    return final + (initial - final) * (1.0 - progress) ** 3


def gradual_timing(total_steps: int, n: int) -> tuple[int, int]:
    """(t0, dt): prune from step 0, every dt steps, so that the last of n increases lands at about
    three quarters of training, leaving the rest to recover at the final sparsity."""
    return 0, max(1, int(0.75 * total_steps) // n)


def round_sparsities(target: float, rounds: int) -> list[float]:
    """Sparsity after each round when every round prunes the same fraction of what remains."""
    keep = (1.0 - target) ** (1.0 / rounds)
    # The last round lands exactly; earlier ones never pass it, whatever the float rounding.
    return [min(target, 1.0 - keep**i) for i in range(1, rounds)] + [target]


def schedule_curve(schedule: Schedule, target: float, n_train: int) -> list[tuple[int, float]]:
    """The schedule as (optimiser step, sparsity) points, for plotting."""
    epochs = schedule.finetune.epochs if schedule.finetune else 0
    per_epoch = steps_per_epoch(n_train, schedule.finetune.batch_size) if schedule.finetune else 1
    if schedule.kind == "oneshot":
        end = epochs * per_epoch
        return [(0, 0.0), (0, target), (end, target)]
    if schedule.kind == "gradual":
        total = epochs * per_epoch
        t0, dt = gradual_timing(total, schedule.pruning_steps)
        points = [(0, schedule.initial_sparsity)]
        for j in range(schedule.pruning_steps + 1):
            t = t0 + j * dt
            points.append((t, zhu_gupta_sparsity(t, target, schedule.initial_sparsity, t0, schedule.pruning_steps, dt)))
        points.append((total, target))
        return points
    points, step = [(0, 0.0)], 0
    for s in round_sparsities(target, schedule.rounds):
        points.append((step, s))
        step += epochs * per_epoch
        points.append((step, s))
    return points


@dataclass
class ScheduleResult:
    """What a schedule produced: the pruned, trained model and its masks, plus the control."""

    model: nn.Module
    masks: dict[str, torch.Tensor]
    history: list[dict] = field(default_factory=list)
    control: nn.Module | None = None  # lottery: same mask, random re-initialisation, the ticket's last round


def _and(previous: Mapping[str, torch.Tensor] | None, masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if previous is None:
        return dict(masks)
    return {name: mask & previous[name] if name in previous else mask for name, mask in masks.items()}


def run_schedule(
    model: nn.Module,
    X_train: torch.Tensor,
    y_train: torch.Tensor,
    method: str,
    scope: str,
    sparsity: Sparsity,
    schedule: Schedule,
    exclude=(),
    seed: int = 0,
    init_state: Mapping[str, torch.Tensor] | None = None,
    reinit: Callable[[int], Mapping[str, torch.Tensor]] | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    X_calib: torch.Tensor | None = None,
    y_calib: torch.Tensor | None = None,
) -> ScheduleResult:
    """Run ``schedule`` from the trained ``model`` (left untouched) using only the train tensors.

    ``init_state`` (lottery) holds the weights the model was trained from; ``reinit(seed)`` gives a
    fresh random initialisation for the lottery's control run. ``X_calib``/``y_calib`` are what a
    data-driven criterion reads (``pruning_core.apply.apply_choice`` passes the choice's
    calibration samples); by default the default ``Calibration`` of the train split.
    """
    work = copy.deepcopy(model)
    if X_calib is None:
        from pruning_core.choice import Calibration

        X_calib, y_calib = Calibration().select(X_train, y_train)
    calib = {"X_calib": X_calib, "y_calib": y_calib}

    def masks_at(s: Sparsity) -> dict[str, torch.Tensor]:
        return compute_masks(work, method, scope, s, exclude=exclude, seed=seed, **calib)

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(min(1.0, fraction), message)

    ft = schedule.finetune
    history: list[dict] = []
    if schedule.kind == "oneshot":
        masks = masks_at(sparsity)
        if ft is not None and ft.epochs > 0:
            masked_steps(work, masks, X_train, y_train, ft, should_stop=should_stop)
        with torch.no_grad():
            _apply_masks(work, masks)
        report(1.0, "one-shot done")
        return ScheduleResult(work.eval(), masks, history)

    if isinstance(sparsity, Mapping):
        raise ValueError(f"schedule {schedule.kind!r} takes one overall sparsity, not a per-layer mapping")
    target = check_sparsity(sparsity)

    if schedule.kind == "gradual":
        if schedule.initial_sparsity > target:
            raise ValueError(
                f"gradual pruning only raises sparsity: initial_sparsity {schedule.initial_sparsity:g} "
                f"is above the target {target:g}"
            )
        total = ft.epochs * steps_per_epoch(len(X_train), ft.batch_size)
        t0, dt = gradual_timing(total, schedule.pruning_steps)
        state = {"masks": None}

        def on_step(step: int):
            if step < t0 or (step - t0) % dt or (step - t0) // dt > schedule.pruning_steps:
                return None
            s = zhu_gupta_sparsity(step, target, schedule.initial_sparsity, t0, schedule.pruning_steps, dt)
            state["masks"] = _and(state["masks"], masks_at(s))
            history.append({"step": step, "sparsity": s})
            report(step / max(total, 1), f"gradual: step {step} of {total}, sparsity {s:.0%}")
            return state["masks"]

        masked_steps(work, {}, X_train, y_train, ft, on_step=on_step, should_stop=should_stop)
        masks = _and(state["masks"], masks_at(target))  # land exactly on the target
        with torch.no_grad():
            _apply_masks(work, masks)
        return ScheduleResult(work.eval(), masks, history)

    # iterative and lottery: rounds of prune, (rewind,) train.
    rewind_state = None
    if schedule.kind == "lottery":
        if init_state is None:
            raise ValueError("the lottery schedule needs the model's initial weights (init_state) to rewind to")
        rewind_state = _rewound_state(model, init_state, schedule.rewind_iteration, X_train, y_train, ft)
    masks = None
    sparsities = round_sparsities(target, schedule.rounds)
    for i, s in enumerate(sparsities, start=1):
        masks = _and(masks, masks_at(s))
        if rewind_state is not None:
            work.load_state_dict(rewind_state)
        masked_steps(work, masks, X_train, y_train, ft, should_stop=should_stop)
        history.append({"round": i, "sparsity": s})
        report(
            i / (len(sparsities) + (1 if schedule.kind == "lottery" else 0)),
            f"{schedule.kind}: round {i} of {len(sparsities)}, sparsity {s:.0%}",
        )
    result = ScheduleResult(work.eval(), masks, history)
    if schedule.kind == "lottery" and reinit is not None:
        # Exactly the ticket's training: the reported ticket is its rewind point trained for one
        # round (ft.epochs) under the final mask; earlier rounds only chose the mask. The control
        # gets the same mask and the same training from its own random initialisation (rewound
        # the same way when rewind_iteration > 0), so only the initial values differ.
        control = copy.deepcopy(model)
        control.load_state_dict(
            _rewound_state(model, reinit(seed + 1), schedule.rewind_iteration, X_train, y_train, ft)
        )
        masked_steps(control, masks, X_train, y_train, ft, should_stop=should_stop)
        result.control = control.eval()
        report(1.0, "lottery: random re-initialisation control trained")
    return result


def _rewound_state(model, init_state, iteration: int, X_train, y_train, ft: FineTuneConfig) -> dict[str, torch.Tensor]:
    """The weights to rewind to: the initial ones, or those after ``iteration`` steps of dense training."""
    state = {k: v.clone() for k, v in init_state.items()}
    if iteration == 0:
        return state
    dense = copy.deepcopy(model)
    dense.load_state_dict(state)
    stop_after = {"n": iteration}

    def on_step(step: int):
        if step >= stop_after["n"]:
            raise _RewindReached()
        return None

    epochs = -(-iteration // steps_per_epoch(len(X_train), ft.batch_size))
    with contextlib.suppress(_RewindReached):
        masked_steps(dense, {}, X_train, y_train, FineTuneConfig(**{**ft.to_dict(), "epochs": epochs}), on_step=on_step)
    return {k: v.detach().clone() for k, v in dense.state_dict().items()}


class _RewindReached(Exception):
    pass


def _apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        params[name].mul_(mask)
