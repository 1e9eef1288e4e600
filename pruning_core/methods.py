"""Pruning methods: one small class per criterion, behind one registry.

A method scores what it may prune; allocation (``pruning_core.masks``) turns scores into masks for
a scope and sparsity. The registry is the single source of truth for names, labels, descriptions
and options: the UI, the CLI and the docs all read it. Adding a criterion is adding one class
decorated with ``@register``.
"""

from __future__ import annotations

import copy
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from pruning_core import graph, kernels, selection
from pruning_core.dataflow import guess_input
from pruning_core.deadline import check_deadline
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

    A criterion whose mask is not "the lowest scores" for a given sparsity (iterative SynFlow,
    row-wise Wanda) also overrides :meth:`masks`.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str]
    granularity: ClassVar[Granularity] = "unstructured"
    needs_data: ClassVar[bool] = False
    uses_seed: ClassVar[bool] = False
    scopes: ClassVar[tuple[str, ...]] = ("global", "layerwise", "per-layer", "erk")

    @abstractmethod
    def scores(self, targets: list[Target], context: ScoringContext) -> list[torch.Tensor]: ...

    def masks(
        self,
        targets: list[Target],
        context: ScoringContext,
        sparsity: float | Sequence[float],
        scope: str,
        scores: list[torch.Tensor],
    ) -> list[torch.Tensor] | None:
        """Keep-masks (True = kept, shaped like each target's weight) for one sparsity, or None to let
        allocation prune the lowest ``scores`` (the default).

        ``sparsity`` is one fraction of all targets' weights together when ``scope`` is "global",
        else one fraction per target (layerwise, per-layer and ERK scopes allocate them). ``scores``
        are this method's own scores, computed once. Called once per sparsity, for unstructured
        methods only; it must not modify the model.
        """
        return None

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
        # |w| computed where it is read, not kept beside the weights (a model's worth of memory)
        return selection.Magnitudes(t.weight for t in targets)


class Random(PruningMethod):
    name = "random"
    label = "Random"
    description = (
        "Unstructured: remove weights chosen uniformly at random (seeded). The baseline: without retraining, "
        "a criterion that cannot beat it is not finding unimportant weights; after retraining, random masks "
        "with sensible per-layer ratios are a strong baseline (Liu et al. 2019; Frankle et al. 2021)."
    )
    uses_seed = True

    def scores(self, targets, context):
        return kernels.random_scores([t.weight.shape for t in targets], context.seed)


class RandomMatched(Random):
    """Random pruning with magnitude's per-layer allocation: a control that separates the criterion
    (which weights inside a layer) from the allocation (how many per layer).

    Under global scope magnitude prunes some layers far more than others, while plain random
    spreads sparsity uniformly; comparing the two mixes both effects. This method takes, at each
    level, exactly the number of weights global magnitude prunes in each layer and picks that many
    at random (seeded) inside the layer. Under the other scopes the allocation is already fixed per
    layer, so it is plain random.
    """

    name = "random-matched"
    label = "Random (magnitude's allocation)"
    description = (
        "Unstructured control: in global scope, prune in each layer exactly as many weights as global "
        "magnitude does, chosen at random (seeded); other scopes are plain random. Separates the criterion "
        "from the per-layer allocation."
    )

    def masks(self, targets, context, sparsity, scope, scores):
        if scope != "global":
            return None
        magnitudes = [t.weight.detach().abs() for t in targets]  # ranked as global magnitude ranks them
        total = sum(m.numel() for m in magnitudes)
        (threshold,) = selection.thresholds(magnitudes, [round(float(sparsity) * total)])
        out = []
        for s, k in zip(scores, threshold.pruned_per_tensor, strict=True):
            (own,) = selection.thresholds([s], [int(k)])
            out.append(selection.kept_masks([s], own)[0])
        return out


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
        return kernels.structured_norms([t.weight for t in targets], self.p)


class NMMagnitude(PruningMethod):
    """N:M sparsity: in every group of M consecutive inputs, keep the N largest |w|.

    Groups run along a Linear's input features, and along a convolution's input channels at each
    kernel position, as NVIDIA's sparse tensor cores (cuSPARSELt) group them. Those accelerate one
    pattern, 50 %: 2:4 for FP16/BF16/INT8 (FP8 on newer GPUs), 1:2 for TF32/FP32.
    """

    granularity = "n:m"
    scopes = ("layerwise",)

    def __init__(self, n: int, m: int):
        self.n, self.m = n, m
        self.name = f"nm-{n}:{m}"
        groups = (
            f"in every group of {m} consecutive inputs (a Linear's input features; a convolution's input "
            f"channels at each kernel position) keep the {n} largest |w|, a fixed {1 - n / m:.0%} sparsity."
        )
        if (n, m) == (2, 4):
            self.label = "N:M 2:4 (GPU sparse cores)"
            runs_on = (
                " 2:4 is the pattern NVIDIA's sparse tensor cores run faster (Ampere and later GPUs, "
                "via cuSPARSELt/TensorRT; up to 2x on the matrix multiplies), for FP16, BF16 and INT8 "
                "weights (FP8 on newer GPUs); for TF32/FP32 weights they need 1:2. On a CPU it is "
                "zeros in a dense tensor: no faster."
            )
        elif (n, m) == (1, 2):
            self.label = "N:M 1:2 (GPU sparse cores, FP32)"
            runs_on = (
                " 1:2 is the pattern NVIDIA's sparse tensor cores (Ampere and later, cuSPARSELt) "
                "accelerate for TF32/FP32 weights; FP16/BF16/INT8 need 2:4. On a CPU it is zeros in a "
                "dense tensor: no faster."
            )
        else:
            self.label = f"N:M {n}:{m} (no hardware support)"
            runs_on = (
                f" {n}:{m} is a sparsity pattern with no common hardware support: dense kernels on GPUs "
                "and CPUs run it exactly as slow as the dense model (only the 50 % patterns 2:4 and 1:2 "
                "are accelerated, by NVIDIA's sparse tensor cores)."
            )
        self.description = "Semi-structured: " + groups + runs_on

    @property
    def fixed_sparsity(self) -> float:
        return 1 - self.n / self.m

    def scores(self, targets, context):
        return [t.weight.detach().abs() for t in targets]


# --- helpers of the data-driven criteria -------------------------------------------------------------

CALIBRATION_BATCH = kernels.CALIBRATION_BATCH


def _working_copy(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """A deep copy in eval mode (BatchNorm uses its running statistics) with no gradients recorded,
    so a criterion may run forward/backward passes without touching the caller's model. Every
    forward pass of the copy (one per calibration batch) first checks the caller's time limit
    (``pruning_core.deadline``)."""
    work = kernels.prepare_copy(copy.deepcopy(model), dtype)
    work.register_forward_pre_hook(_check_deadline_hook)
    return work


def _check_deadline_hook(module: nn.Module, args: tuple) -> None:
    check_deadline()


def _calibration(context: ScoringContext, method: str, labels: bool = False) -> Iterator[tuple]:
    """Calibration batches of ``CALIBRATION_BATCH`` samples: (X,) or (X, y) with ``labels``."""
    return kernels.calibration_batches(context.X_calib, context.y_calib, method, labels)


_row_l1 = kernels.row_l1
_keep_lowest_pruned = kernels.prune_lowest_kept


class Taylor(PruningMethod):
    name = "taylor"
    label = "Taylor / SNIP"
    description = (
        "Unstructured, needs data: remove the weights with the smallest |w * dL/dw|, the first-order "
        "estimate of the loss change when a weight is removed (Molchanov et al. 2017; SNIP, Lee et al. 2019); "
        "cross-entropy gradients summed over calibration batches of 64."
    )
    needs_data = True

    def scores(self, targets, context):
        if context.X_calib is None or len(context.X_calib) == 0:
            raise ValueError(f"method {self.name!r} needs calibration data (X_calib)")
        work = _working_copy(context.model)
        return kernels.taylor_scores(work, [t.param_name for t in targets], context.X_calib, context.y_calib)


class SynFlow(PruningMethod):
    """Iterative synaptic flow (Tanaka et al. 2020): data-free, and it avoids layer collapse."""

    name = "synflow"
    label = "SynFlow"
    description = (
        "Unstructured, data-free: score (dR/dw) * w, where R is the summed output of the network with "
        "|w| everywhere on an all-ones input; prune in 100 rounds to densities d^(k/100), rescoring the "
        "survivors each round, so no layer is emptied at extreme sparsity (Tanaka et al. 2020)."
    )
    rounds: ClassVar[int] = 100

    def scores(self, targets, context):
        """Single-shot SynFlow scores (the first round), scaled to a maximum of 1 so float32 holds them."""
        work, x = self._linearised(context)
        return kernels.synflow_scores(work, [t.param_name for t in targets], x)

    def masks(self, targets, context, sparsity, scope, scores):
        work, x = self._linearised(context)
        return kernels.synflow_keep(work, [t.param_name for t in targets], x, sparsity, self.rounds)

    @staticmethod
    def _linearised(context):
        """A float64 eval-mode copy with |.| of every parameter and buffer, and an all-ones input of
        the model's input shape."""
        work = kernels.synflow_linearise(_working_copy(context.model, torch.float64))
        return work, torch.ones(_input_shape(context), dtype=torch.float64)


def _example(context: ScoringContext) -> torch.Tensor | None:
    """One calibration input, to record the model's dataflow on, or None."""
    X = context.X_calib
    return X[:1] if X is not None and len(X) else None


def _input_shape(context: ScoringContext) -> tuple[int, ...]:
    """One input's shape (batch of 1): from the calibration data, else the model's declared
    ``input_shape`` or its first Linear layer (``pruning_core.dataflow.guess_input``)."""
    if context.X_calib is not None:
        return (1, *context.X_calib.shape[1:])
    guessed = guess_input(context.model)
    if guessed is not None:
        return tuple(guessed.shape)
    raise ValueError("synflow needs the model's input shape: pass calibration data (X_calib), one sample is enough")


class Wanda(PruningMethod):
    name = "wanda"
    label = "Wanda"
    description = (
        "Unstructured, needs data: score |W_ij| * ||X_j||_2, the weight magnitude times the norm of its input "
        "feature over the calibration inputs (Sun et al. 2023). Layerwise, every output row loses the same "
        "fraction, as in the paper; global ranks all scores together."
    )
    needs_data = True

    def scores(self, targets, context):
        if context.X_calib is None or len(context.X_calib) == 0:
            raise ValueError(f"method {self.name!r} needs calibration data (X_calib)")
        work = _working_copy(context.model)
        return kernels.wanda_scores(work, [t.layer for t in targets], context.X_calib)

    def masks(self, targets, context, sparsity, scope, scores):
        if scope == "global":
            return None
        return [_row_wise_keep(s, f) for s, f in zip(scores, sparsity, strict=True)]


_row_wise_keep = kernels.row_wise_keep
_input_column_squares = kernels.input_column_squares


def activation_watch(
    model: nn.Module, targets: Sequence[Target], example: torch.Tensor | None
) -> list[tuple[str, str, bool, int]]:
    """What APoZ and mean activation watch, per target: (layer, watched module, channels last,
    channels). The watched module is the BatchNorm whose input is the layer's output, as the recorded
    dataflow shows it (``graph.norm_pairing``, also on models that are no chain), else the layer itself."""
    norms = graph.norm_of(model, example)
    watch = []
    for t in targets:
        watched = norms.get(t.layer, t.layer)
        channel_last = watched == t.layer and isinstance(t.module, nn.Linear)
        watch.append((t.layer, watched, channel_last, t.out_channels))
    return watch


def _activation_statistics(targets: Sequence[Target], context: ScoringContext, method: str):
    """Per target and output channel: (fraction of pre-ReLU values <= 0, mean of relu(value)) over the
    calibration samples and positions. The value is the layer's output, or that of the BatchNorm that
    normalises it (found from the dataflow, not from the order modules are declared in), since that
    is what the ReLU sees."""
    if context.X_calib is None or len(context.X_calib) == 0:
        raise ValueError(f"method {method!r} needs calibration data (X_calib)")
    watch = activation_watch(context.model, targets, _example(context))
    return kernels.activation_statistics(_working_copy(context.model), watch, context.X_calib, method)


class APoZ(PruningMethod):
    name = "apoz"
    label = "APoZ"
    description = (
        "Structured, needs data: remove the neurons/filters whose output is most often zero after the ReLU "
        "(average percentage of zeros, Hu et al. 2016), counted over calibration samples and positions on the "
        "layer's output (after its BatchNorm, if any); score = 1 - APoZ."
    )
    granularity = "structured"
    needs_data = True

    def scores(self, targets, context):
        return [1 - zeros for zeros, _ in _activation_statistics(targets, context, self.name)]


class MeanActivation(PruningMethod):
    name = "mean-activation"
    label = "Mean activation"
    description = (
        "Structured, needs data: remove the neurons/filters with the smallest mean activation after the "
        "ReLU (of the layer's output, after its BatchNorm if any) over calibration samples and positions "
        "(Molchanov et al. 2017)."
    )
    granularity = "structured"
    needs_data = True

    def scores(self, targets, context):
        return [mean for _, mean in _activation_statistics(targets, context, self.name)]


class BNScale(PruningMethod):
    name = "bn-scale"
    label = "BN scale (network slimming)"
    description = (
        "Structured: remove the neurons/filters whose BatchNorm scale |gamma| is smallest (network slimming, "
        "Liu et al. 2017). Network slimming trains with an L1 penalty on gamma, which drives the scales of "
        "unneeded channels towards zero; on a model trained without it (like the sample models) |gamma| is "
        "a weak signal. Layers with no BatchNorm after them fall back to the L1 norm of their weights."
    )
    granularity = "structured"

    def scores(self, targets, context):
        norms = graph.norm_of(context.model, _example(context))
        modules = dict(context.model.named_modules())
        gammas = [getattr(modules[norms[t.layer]], "weight", None) if t.layer in norms else None for t in targets]
        return kernels.bn_scale_scores([t.weight for t in targets], gammas)


for _method in (
    Magnitude(),
    Random(),
    StructuredNorm(1),
    StructuredNorm(2),
    NMMagnitude(2, 4),
    NMMagnitude(1, 4),
    Taylor(),
    SynFlow(),
    Wanda(),
    APoZ(),
    MeanActivation(),
    BNScale(),
):
    register(_method)

register(RandomMatched())  # after the others, so their colours and order stay as they were


class StructuredRandom(PruningMethod):
    """Whole neurons/filters chosen at random (seeded): the baseline Li et al. 2017 compare
    smallest-L1 filter pruning against.

    One uniform score per output neuron, drawn layer after layer from one ``torch.Generator``
    seeded with the context's seed (no global random state). Under global scope the allocation
    normalises each layer's scores by their L2 norm, which for uniform scores is its prior for
    "no information": every neuron of a layer of width n gets about 1/sqrt(n), so wide layers give
    up a larger share, exactly as they would for equally important neurons under structured L1.
    """

    name = "structured-random"
    label = "Structured random"
    description = (
        "Structured: remove whole neurons/filters chosen at random (seeded), with their bias and BatchNorm "
        "entries. The baseline smallest-L1 filter pruning must beat (Li et al. 2017)."
    )
    granularity = "structured"
    uses_seed = True

    def scores(self, targets, context):
        return kernels.random_scores([(t.out_channels,) for t in targets], int(context.seed))


register(StructuredRandom())  # appended: the existing methods keep their order and colours


def methods_table_markdown() -> str:
    """The registry as the README's Markdown table: name, label, granularity, needs data, scopes.

    Any ``nm-N:M`` pattern is built on demand; the table lists the registered ones.
    """
    lines = ["| name | label | granularity | needs data | scopes |", "| --- | --- | --- | --- | --- |"]
    for name, method in METHODS.items():
        scopes = ", ".join(method.scopes)
        lines.append(
            f"| `{name}` | {method.label} | {method.granularity} | {'yes' if method.needs_data else 'no'} | {scopes} |"
        )
    return "\n".join(lines)
