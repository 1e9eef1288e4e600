"""One pruning choice as one frozen value: what the sidebar, a recipe, the CLI and every page produce.

A choice says everything needed to prune a model the same way anywhere: the method, the scope, the
sparsity (one fraction or one per layer), the layers left dense, the seed, the schedule with its
fine-tuning, and which calibration samples a data-driven criterion reads. ``resolved()`` is the
one place where a request is adjusted to what the method can do (an N:M pattern's fixed sparsity,
a scope the method does not support), and each adjustment comes back as a note for the user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from pruning_core.masks import check_scope, check_sparsity
from pruning_core.methods import PruningMethod, get_method
from pruning_core.schedules import Schedule

CALIBRATION_SPLITS = ("train",)
CALIBRATION_ORDERS = ("first", "shuffled")


@dataclass(frozen=True)
class Calibration:
    """Which samples a data-driven criterion (Taylor, Wanda, APoZ, ...) reads: always from the train
    split, never the test split; the first ``samples`` in the split's order, or ``samples`` drawn
    without replacement with ``seed``. Part of a choice, so a recipe reproduces the same masks."""

    split: Literal["train"] = "train"
    samples: int = 256
    order: Literal["first", "shuffled"] = "first"
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.split not in CALIBRATION_SPLITS:
            problems.append(f"calibration split {self.split!r} is unknown; valid: {', '.join(CALIBRATION_SPLITS)}")
        if not _is_int(self.samples) or not 1 <= self.samples <= 100_000:
            problems.append(f"calibration samples must be an integer from 1 to 100000, not {self.samples!r}")
        if self.order not in CALIBRATION_ORDERS:
            problems.append(f"calibration order {self.order!r} is unknown; valid: {', '.join(CALIBRATION_ORDERS)}")
        if not _is_int(self.seed) or self.seed < 0:
            problems.append(f"calibration seed must be a non-negative integer, not {self.seed!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def select(self, X: torch.Tensor | None, y: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The calibration inputs and labels taken from the split's tensors ``X``, ``y`` (None, None
        without data: data-free methods and views still work)."""
        if X is None:
            return None, None
        n = min(self.samples, len(X))
        if self.order == "first":
            index = torch.arange(n)
        else:
            generator = torch.Generator().manual_seed(self.seed)
            index = torch.randperm(len(X), generator=generator)[:n]
        return X[index], (y[index] if y is not None else None)

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "samples": self.samples, "order": self.order, "seed": self.seed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Calibration:
        if not data:
            return cls()
        unknown = set(data) - {"split", "samples", "order", "seed"}
        if unknown:
            raise ValueError(f"calibration: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        return cls(**dict(data))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


LayerSparsities = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class PruningChoice:
    """A complete, hashable pruning choice. ``sparsity`` is one fraction, or with scope
    ``per-layer`` a tuple of (layer, fraction) pairs sorted by layer (use :meth:`per_layer`)."""

    method: str
    scope: str = "global"
    sparsity: float | LayerSparsities = 0.5
    exclude: tuple[str, ...] = ()
    seed: int = 0
    schedule: Schedule | None = None
    calibration: Calibration = field(default_factory=Calibration)

    def __post_init__(self) -> None:
        get_method(self.method)  # an unknown method raises, naming the valid ones
        check_scope(self.scope)
        if isinstance(self.sparsity, tuple):
            if self.scope != "per-layer":
                raise ValueError(f"per-layer sparsities need scope 'per-layer', not {self.scope!r}")
            for layer, value in self.sparsity:
                check_sparsity(value)
                if not isinstance(layer, str):
                    raise ValueError(f"a per-layer sparsity names a layer by its name, not {layer!r}")
        else:
            if self.scope == "per-layer":
                raise ValueError("scope 'per-layer' needs a sparsity for each layer")
            check_sparsity(self.sparsity)
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {self.seed!r}")
        if isinstance(self.exclude, str) or not all(isinstance(e, str) for e in self.exclude):
            raise ValueError(f"exclude must be a tuple of layer names, not {self.exclude!r}")

    @classmethod
    def per_layer(cls, method: str, sparsities: Mapping[str, float], **kwargs: Any) -> PruningChoice:
        """A choice with an explicit sparsity for each named layer."""
        pairs = tuple(sorted((str(k), float(v)) for k, v in sparsities.items()))
        return cls(method=method, scope="per-layer", sparsity=pairs, **kwargs)

    @property
    def method_object(self) -> PruningMethod:
        return get_method(self.method)

    @property
    def sparsity_argument(self) -> float | dict[str, float]:
        """What the mask functions take: one fraction, or a mapping of layer name to fraction."""
        return dict(self.sparsity) if isinstance(self.sparsity, tuple) else float(self.sparsity)

    @property
    def trains(self) -> bool:
        return self.schedule is not None and self.schedule.finetune_epochs > 0

    def resolved(self) -> tuple[PruningChoice, list[str]]:
        """This choice adjusted to what its method can do, with a note for every adjustment.

        The one place where such rules live: a fixed-pattern method (N:M) always prunes its own
        pattern at its own sparsity, and a scope the method does not support falls back to the
        method's first scope.
        """
        method = self.method_object
        notes: list[str] = []
        choice = self
        if method.fixed_sparsity is not None and choice.sparsity != method.fixed_sparsity:
            requested = "a per-layer allocation" if isinstance(choice.sparsity, tuple) else f"{choice.sparsity:g}"
            notes.append(
                f"{method.name} always prunes its fixed pattern: sparsity {method.fixed_sparsity:g}, not {requested}"
            )
            scope = choice.scope if choice.scope != "per-layer" else method.scopes[0]
            choice = replace(choice, scope=scope, sparsity=float(method.fixed_sparsity))
        if choice.scope not in method.scopes:
            fallback = method.scopes[0]
            notes.append(f"{method.name} does not support scope {choice.scope!r}; using {fallback!r}")
            choice = replace(choice, scope=fallback)
        return choice, notes

    def calibration_data(self, X_train: torch.Tensor | None, y_train: torch.Tensor | None) -> dict[str, Any]:
        """``X_calib``/``y_calib`` keyword arguments for the mask functions, per ``calibration``."""
        X, y = self.calibration.select(X_train, y_train)
        return {"X_calib": X, "y_calib": y}
