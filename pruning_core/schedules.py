"""Pruning schedules, one class each behind one registry (``SCHEDULES``), as methods are: one-shot,
iterative prune-and-fine-tune, gradual (Zhu & Gupta), lottery tickets.

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

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import torch
from torch import nn

from pruning_core import kernels
from pruning_core.finetune import FineTuneConfig, masked_steps, steps_per_epoch
from pruning_core.masks import Sparsity, check_sparsity, compute_masks

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Schedule:
    """A pruning schedule and its fine-tuning settings (per round for iterative and lottery): the
    frozen value recipes and choices hold; ``kind`` names the registered class that runs it."""

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
        if (
            self.kind in SCHEDULES
            and SCHEDULES[self.kind].trains_between_steps
            and (self.finetune is None or self.finetune.epochs < 1)
        ):
            problems.append(
                f"schedule {self.kind!r} trains between pruning steps: give fine-tuning with at least 1 epoch"
            )
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def kind_object(self) -> ScheduleKind:
        """The registered class that runs this schedule."""
        return SCHEDULES[self.kind]

    @property
    def finetune_epochs(self) -> int:
        """Epochs of training after the first pruning step, in total (the training budget)."""
        return self.kind_object.budget_epochs(self)

    @property
    def label(self) -> str:
        return self.kind_object.label_of(self)

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


zhu_gupta_sparsity = kernels.zhu_gupta_sparsity
gradual_timing = kernels.gradual_timing
round_sparsities = kernels.round_sparsities


@dataclass
class ScheduleResult:
    """What a schedule produced: the pruned, trained model and its masks, plus the control."""

    model: nn.Module
    masks: dict[str, torch.Tensor]
    history: list[dict] = field(default_factory=list)
    control: nn.Module | None = None  # lottery: same mask, random re-initialisation, the ticket's last round


@dataclass
class ScheduleRun:
    """Everything a schedule's ``run`` needs: a private working copy, the train split, how to get
    masks at a sparsity, how to train, and the caller's callbacks."""

    model: nn.Module  # the caller's model: read only
    work: nn.Module  # a private copy: pruned and trained in place
    X_train: torch.Tensor
    y_train: torch.Tensor
    sparsity: Sparsity
    schedule: Schedule
    masks_at: Callable[[Sparsity], dict[str, torch.Tensor]]
    seed: int = 0
    init_state: Mapping[str, torch.Tensor] | None = None
    reinit: Callable[[int], Mapping[str, torch.Tensor]] | None = None
    progress: Progress | None = None
    should_stop: Callable[[], bool] | None = None

    def report(self, fraction: float, message: str) -> None:
        if self.progress is not None:
            self.progress(min(1.0, fraction), message)

    def train(self, model: nn.Module, masks: Mapping[str, torch.Tensor], on_step=None, epochs: int | None = None):
        """Masked fine-tuning of ``model`` with the schedule's settings (``epochs`` overrides them)."""
        ft = self.schedule.finetune or FineTuneConfig()
        if epochs is not None:
            ft = FineTuneConfig(**{**ft.to_dict(), "epochs": epochs})
        return masked_steps(model, masks, self.X_train, self.y_train, ft, on_step=on_step, should_stop=self.should_stop)

    def target(self) -> float:
        """The one overall sparsity a multi-step schedule reaches (a per-layer mapping is refused)."""
        if isinstance(self.sparsity, Mapping):
            raise ValueError(f"schedule {self.schedule.kind!r} takes one overall sparsity, not a per-layer mapping")
        return check_sparsity(self.sparsity)


class ScheduleKind(ABC):
    """A pruning schedule. Subclasses set the class attributes and implement ``run`` and ``curve``.
    Adding a schedule is one subclass decorated with ``@register_schedule`` (and its script support
    in ``pruning_core.script_driver``, which a test checks)."""

    name: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str]
    trains_between_steps: ClassVar[bool] = True  # needs fine-tuning of at least one epoch
    per_round_budget: ClassVar[bool] = False  # the budget is rounds x epochs

    def budget_epochs(self, schedule: Schedule) -> int:
        """Epochs of training after the first pruning step, in total: the training budget."""
        if schedule.finetune is None:
            return 0
        return schedule.finetune.epochs * (schedule.rounds if self.per_round_budget else 1)

    @abstractmethod
    def label_of(self, schedule: Schedule) -> str:
        """A short human label of ``schedule`` with its settings."""

    @abstractmethod
    def curve(self, schedule: Schedule, target: float, n_train: int) -> list[tuple[int, float]]:
        """The schedule as (optimiser step, sparsity) points, for plotting."""

    @abstractmethod
    def run(self, run: ScheduleRun) -> ScheduleResult:
        """Prune and train ``run.work`` (a private copy) as the schedule says."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


SCHEDULES: dict[str, ScheduleKind] = {}


def register_schedule(cls: type[ScheduleKind]) -> type[ScheduleKind]:
    """Add a schedule class (one instance) to the registry under its ``name``."""
    if cls.name in SCHEDULES:
        raise ValueError(f"a schedule named {cls.name!r} is already registered")
    SCHEDULES[cls.name] = cls()
    return cls


def schedule_names() -> list[str]:
    return list(SCHEDULES)


def schedules_table() -> str:
    """The README's schedules table, generated from the registry (one row per schedule)."""
    rows = ["| schedule | label | training budget | description |", "| --- | --- | --- | --- |"]
    for name, kind in SCHEDULES.items():
        budget = "rounds × epochs" if kind.per_round_budget else "epochs"
        budget += "" if kind.trains_between_steps else " (0: no fine-tuning)"
        rows.append(f"| `{name}` | {kind.label} | {budget} | {kind.description} |")
    return "\n".join(rows) + "\n"


def _steps_per_epoch(schedule: Schedule, n_train: int) -> int:
    return steps_per_epoch(n_train, schedule.finetune.batch_size) if schedule.finetune else 1


def _round_curve(schedule: Schedule, target: float, n_train: int) -> list[tuple[int, float]]:
    epochs = schedule.finetune.epochs if schedule.finetune else 0
    per_epoch = _steps_per_epoch(schedule, n_train)
    points, step = [(0, 0.0)], 0
    for s in round_sparsities(target, schedule.rounds):
        points.append((step, s))
        step += epochs * per_epoch
        points.append((step, s))
    return points


@register_schedule
class OneShot(ScheduleKind):
    name = "oneshot"
    label = "One-shot"
    description = "Prune to the target once, then (optionally) fine-tune."
    trains_between_steps = False

    def label_of(self, schedule):
        epochs = self.budget_epochs(schedule)
        return "one-shot" + (f" + {schedule.finetune.epochs} ep fine-tuning" if epochs else "")

    def curve(self, schedule, target, n_train):
        epochs = schedule.finetune.epochs if schedule.finetune else 0
        end = epochs * _steps_per_epoch(schedule, n_train)
        return [(0, 0.0), (0, target), (end, target)]

    def run(self, run):
        masks = run.masks_at(run.sparsity)
        ft = run.schedule.finetune
        if ft is not None and ft.epochs > 0:
            run.train(run.work, masks)
        kernels.apply_keep(run.work, masks)
        run.report(1.0, "one-shot done")
        return ScheduleResult(run.work.eval(), masks, [])


class _RoundsSchedule(ScheduleKind):
    """A schedule of rounds (prune, then train ``finetune.epochs`` each round): label, curve and
    budget shared by iterative pruning and lottery tickets."""

    per_round_budget = True

    def label_of(self, schedule):
        return f"{self.name} ({schedule.rounds} rounds × {schedule.finetune.epochs} ep)"

    def curve(self, schedule, target, n_train):
        return _round_curve(schedule, target, n_train)


@register_schedule
class Iterative(_RoundsSchedule):
    name = "iterative"
    label = "Iterative"
    description = (
        "Reach the target in k rounds of prune-then-fine-tune, the same fraction of the remaining weights each round."
    )

    def run(self, run):
        history: list[dict] = []
        masks = kernels.run_rounds(
            run.work, run.masks_at, run.train, run.target(), run.schedule.rounds, None, history, run.report, self.name
        )
        return ScheduleResult(run.work.eval(), masks, history)


@register_schedule
class Gradual(ScheduleKind):
    name = "gradual"
    label = "Gradual (Zhu & Gupta)"
    description = "Raise sparsity during training along Zhu & Gupta's cubic schedule."

    def label_of(self, schedule):
        return f"gradual ({schedule.finetune.epochs} ep, {schedule.pruning_steps} steps)"

    def curve(self, schedule, target, n_train):
        epochs = schedule.finetune.epochs if schedule.finetune else 0
        total = epochs * _steps_per_epoch(schedule, n_train)
        t0, dt = gradual_timing(total, schedule.pruning_steps)
        points = [(0, schedule.initial_sparsity)]
        for j in range(schedule.pruning_steps + 1):
            t = t0 + j * dt
            points.append((t, zhu_gupta_sparsity(t, target, schedule.initial_sparsity, t0, schedule.pruning_steps, dt)))
        points.append((total, target))
        return points

    def run(self, run):
        schedule, target = run.schedule, run.target()
        if schedule.initial_sparsity > target:
            raise ValueError(
                f"gradual pruning only raises sparsity: initial_sparsity {schedule.initial_sparsity:g} "
                f"is above the target {target:g}"
            )
        total = schedule.finetune.epochs * steps_per_epoch(len(run.X_train), schedule.finetune.batch_size)
        history: list[dict] = []
        masks = kernels.run_gradual(
            run.work,
            run.masks_at,
            run.train,
            total,
            target,
            schedule.initial_sparsity,
            schedule.pruning_steps,
            history,
            run.report,
        )
        kernels.apply_keep(run.work, masks)
        return ScheduleResult(run.work.eval(), masks, history)


@register_schedule
class Lottery(_RoundsSchedule):
    name = "lottery"
    label = "Lottery ticket"
    description = (
        "Iterative magnitude pruning, rewinding survivors to their initial values before retraining; "
        "with a random re-initialisation control."
    )

    def run(self, run):
        if run.init_state is None:
            raise ValueError("the lottery schedule needs the model's initial weights (init_state) to rewind to")
        target = run.target()
        rewind_state = self._rewound(run, run.init_state)
        history: list[dict] = []
        masks = kernels.run_rounds(
            run.work, run.masks_at, run.train, target, run.schedule.rounds, rewind_state, history, run.report, self.name
        )
        result = ScheduleResult(run.work.eval(), masks, history)
        if run.reinit is not None:
            # Exactly the ticket's training: the reported ticket is its rewind point trained for one
            # round (ft.epochs) under the final mask; earlier rounds only chose the mask. The control
            # gets the same mask and the same training from its own random initialisation (rewound
            # the same way when rewind_iteration > 0), so only the initial values differ.
            control = copy.deepcopy(run.model)
            control.load_state_dict(self._rewound(run, run.reinit(run.seed + 1)))
            run.train(control, masks)
            result.control = control.eval()
            run.report(1.0, "lottery: random re-initialisation control trained")
        return result

    @staticmethod
    def _rewound(run: ScheduleRun, init_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weights to rewind to: the initial ones, or those after ``rewind_iteration`` steps of dense training."""
        iteration = run.schedule.rewind_iteration
        batch_size = (run.schedule.finetune or FineTuneConfig()).batch_size
        epochs = -(-iteration // steps_per_epoch(len(run.X_train), batch_size))
        return kernels.rewound_state(
            copy.deepcopy(run.model),
            dict(init_state),
            iteration,
            lambda dense, on_step: run.train(dense, {}, on_step=on_step, epochs=epochs),
        )


def schedule_curve(schedule: Schedule, target: float, n_train: int) -> list[tuple[int, float]]:
    """The schedule as (optimiser step, sparsity) points, for plotting."""
    return schedule.kind_object.curve(schedule, target, n_train)


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

    run = ScheduleRun(
        model=model,
        work=work,
        X_train=X_train,
        y_train=y_train,
        sparsity=sparsity,
        schedule=schedule,
        masks_at=masks_at,
        seed=seed,
        init_state=init_state,
        reinit=reinit,
        progress=progress,
        should_stop=should_stop,
    )
    return schedule.kind_object.run(run)
