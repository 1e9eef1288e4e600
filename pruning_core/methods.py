"""Pruning methods: one small class per criterion, behind one registry.

A method scores what it may prune; allocation (``pruning_core.masks``) turns scores into masks for
a scope and sparsity. The registry is the single source of truth for names, labels, descriptions
and options: the UI, the CLI and the docs all read it. Adding a criterion is adding one class
decorated with ``@register``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from pruning_core.targets import Target

Granularity = Literal["unstructured", "structured", "n:m"]


@dataclass(frozen=True)
class ScoringContext:
    """What a criterion may look at: the model (read-only), calibration data, and a seed."""

    model: nn.Module
    seed: int = 0
    X_calib: torch.Tensor | None = None
    y_calib: torch.Tensor | None = None


class PruningMethod(ABC):
    """A pruning criterion. Subclasses set the class attributes and implement :meth:`scores`.

    ``scores`` returns one non-negative tensor per target: element scores (shaped like the weight)
    for unstructured and N:M methods, one score per output neuron/filter for structured methods.
    Lower scores are pruned first. It must not modify the model.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str]
    granularity: ClassVar[Granularity] = "unstructured"
    needs_data: ClassVar[bool] = False
    uses_seed: ClassVar[bool] = False
    scopes: ClassVar[tuple[str, ...]] = ("global", "layerwise", "per-layer")

    @abstractmethod
    def scores(self, targets: list[Target], context: ScoringContext) -> list[torch.Tensor]: ...

    @property
    def fixed_sparsity(self) -> float | None:
        """The sparsity a fixed-pattern method always produces (N:M), else None."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


METHODS: dict[str, PruningMethod] = {}


def register(method: PruningMethod) -> PruningMethod:
    """Add a method instance to the registry under its ``name``."""
    if method.name in METHODS:
        raise ValueError(f"a method named {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


_NM_NAME = re.compile(r"^nm-(\d+):(\d+)$")


def method_names() -> list[str]:
    return list(METHODS)


def get_method(name: str) -> PruningMethod:
    """The registered method called ``name``; any ``nm-N:M`` pattern is built on demand.

    An unknown name raises ValueError listing the valid names.
    """
    if isinstance(name, PruningMethod):
        return name
    if name in METHODS:
        return METHODS[name]
    match = _NM_NAME.match(str(name))
    if match:
        n, m = int(match.group(1)), int(match.group(2))
        if not 0 < n < m <= 64:
            raise ValueError(f"invalid N:M pattern {name!r}: need 0 < N < M <= 64, e.g. nm-2:4")
        return NMMagnitude(n, m)
    raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)} (or any nm-N:M, e.g. nm-1:8)")


class Magnitude(PruningMethod):
    name = "magnitude"
    label = "Magnitude"
    description = "Unstructured: remove the individual weights with the smallest |w| (Han et al. 2015)."

    def scores(self, targets, context):
        return [t.weight.detach().abs() for t in targets]


class Random(PruningMethod):
    name = "random"
    label = "Random"
    description = "Unstructured: remove weights chosen uniformly at random (seeded). The baseline to beat."
    uses_seed = True

    def scores(self, targets, context):
        generator = torch.Generator().manual_seed(int(context.seed))
        return [torch.rand(t.weight.shape, generator=generator) for t in targets]


class StructuredNorm(PruningMethod):
    """Whole output neurons/filters ranked by the Lp norm of their weights (Li et al. 2017)."""

    granularity = "structured"

    def __init__(self, p: int):
        self.p = p
        self.name = f"structured-l{p}"
        self.label = f"Structured L{p}"
        self.description = (
            f"Structured: remove whole neurons/filters with the smallest L{p} norm of their weights, "
            "with their bias and BatchNorm entries (Li et al. 2017)."
        )

    def scores(self, targets, context):
        # Same norm call as torch.nn.utils.prune.ln_structured(dim=0), so rankings agree exactly.
        out = []
        for t in targets:
            w = t.weight.detach()
            out.append(torch.norm(w, p=self.p, dim=tuple(range(1, w.dim()))) if w.dim() > 1 else w.abs())
        return out

    def normalised_scores(self, targets: list[Target], context: ScoringContext) -> list[torch.Tensor]:
        """Scores comparable across layers for global ranking: each layer's norms over their mean.

        Raw norms grow with fan-in, so a global ranking of them would empty the widest-input layer
        first; dividing by the layer mean (Torch-Pruning's "mean" normaliser) ranks neurons by how
        they compare with their own layer.
        """
        return [s / s.mean().clamp_min(1e-12) for s in self.scores(targets, context)]


class NMMagnitude(PruningMethod):
    """N:M sparsity: in every group of M consecutive input weights, keep the N largest |w|."""

    granularity = "n:m"
    scopes = ("layerwise",)

    def __init__(self, n: int, m: int):
        self.n, self.m = n, m
        self.name = f"nm-{n}:{m}"
        self.label = f"N:M {n}:{m}"
        self.description = (
            f"Semi-structured: in every group of {m} consecutive input weights keep the {n} largest |w| "
            f"(fixed {1 - n / m:.0%} sparsity; {n}:{m} runs on sparse tensor cores)."
        )

    @property
    def fixed_sparsity(self) -> float:
        return 1 - self.n / self.m

    def scores(self, targets, context):
        return [t.weight.detach().abs() for t in targets]


for _method in (Magnitude(), Random(), StructuredNorm(1), StructuredNorm(2), NMMagnitude(2, 4), NMMagnitude(1, 4)):
    register(_method)
