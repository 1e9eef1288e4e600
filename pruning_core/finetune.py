"""Masked fine-tuning: train a pruned model on the train split with pruned weights held at zero.

Gradients of pruned weights are masked before each step and the masks are re-applied after it
(optimisers with momentum or weight decay would otherwise move a zero). Shuffling is seeded, so a
run is deterministic on a given machine. Only the train tensors are ever passed in here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn

from pruning_core import kernels
from pruning_core.deadline import check_deadline

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class FineTuneConfig:
    """How to retrain after (or between) pruning steps."""

    epochs: int = 1
    lr: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 64
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self):
        problems = []
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 0:
            problems.append(f"epochs must be a non-negative integer, not {self.epochs!r}")
        if not (isinstance(self.lr, int | float) and not isinstance(self.lr, bool) and 0 < self.lr <= 10):
            problems.append(f"lr must be a number in (0, 10], not {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer {self.optimizer!r} is unknown; valid: {', '.join(OPTIMIZERS)}")
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            problems.append(f"batch_size must be a positive integer, not {self.batch_size!r}")
        if not (isinstance(self.momentum, int | float) and 0 <= self.momentum < 1):
            problems.append(f"momentum must be a number in [0, 1), not {self.momentum!r}")
        if not (isinstance(self.weight_decay, int | float) and 0 <= self.weight_decay <= 1):
            problems.append(f"weight_decay must be a number in [0, 1], not {self.weight_decay!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            problems.append(f"seed must be a non-negative integer, not {self.seed!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)


Stopped = kernels.Stopped  # raised inside a long run when the caller's ``should_stop()`` says so


def make_optimizer(model: nn.Module, config: FineTuneConfig) -> torch.optim.Optimizer:
    return kernels.make_optimizer(model, config.optimizer, config.lr, config.momentum, config.weight_decay)


def masked_steps(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor],
    X_train: torch.Tensor,
    y_train: torch.Tensor,
    config: FineTuneConfig,
    on_step: Callable[[int], Mapping[str, torch.Tensor] | None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> nn.Module:
    """Train ``model`` in place for ``config.epochs`` epochs, pruned weights held at zero
    (``kernels.masked_training``).

    ``on_step(step)`` is called before every optimiser step and may return new masks (gradual
    pruning raises the sparsity during training); they are applied at once and used from then on.
    """
    unknown = set(masks) - set(dict(model.named_parameters()))
    if unknown:
        raise ValueError(f"masks name parameters the model lacks: {', '.join(sorted(unknown))}")
    return kernels.masked_training(
        model,
        dict(masks),
        X_train,
        y_train,
        optimizer or make_optimizer(model, config),
        config.epochs,
        config.batch_size,
        config.seed,
        on_step=on_step,  # type: ignore[arg-type]
        should_stop=_checking(should_stop),
    )


def _checking(should_stop: Callable[[], bool] | None) -> Callable[[], bool]:
    """``should_stop``, polled before every training batch, after a time-limit check
    (``pruning_core.deadline``: raises ``TimeLimitExceeded`` once a caller's limit has passed)."""

    def poll() -> bool:
        check_deadline()
        return should_stop is not None and should_stop()

    return poll


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return kernels.steps_per_epoch(n_train, batch_size)
