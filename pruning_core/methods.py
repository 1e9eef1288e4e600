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
import torch.nn.functional as F
from torch import nn

from pruning_core import graph, selection
from pruning_core.dataflow import guess_input
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
        return [t.weight.detach().abs() for t in targets]


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
        generator = torch.Generator().manual_seed(int(context.seed))
        return [torch.rand(t.weight.shape, generator=generator) for t in targets]


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
        # Same norm call as torch.nn.utils.prune.ln_structured(dim=0), so rankings agree exactly.
        out = []
        for t in targets:
            w = t.weight.detach()
            out.append(torch.norm(w, p=self.p, dim=tuple(range(1, w.dim()))) if w.dim() > 1 else w.abs())
        return out


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

CALIBRATION_BATCH = 64


def _working_copy(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """A deep copy in eval mode (BatchNorm uses its running statistics) with no gradients recorded,
    so a criterion may run forward/backward passes without touching the caller's model."""
    work = copy.deepcopy(model)
    if dtype is not None:
        work = work.to(dtype)
    work.eval()
    for p in work.parameters():
        p.grad = None
        p.requires_grad_(False)
    return work


def _target_params(work: nn.Module, targets: Sequence[Target]) -> list[nn.Parameter]:
    """The copy's weights of ``targets``, set to record gradients."""
    params = dict(work.named_parameters())
    return [params[t.param_name].requires_grad_(True) for t in targets]


def _calibration(context: ScoringContext, method: str, labels: bool = False) -> Iterator[tuple]:
    """Calibration batches of ``CALIBRATION_BATCH`` samples: (X,) or (X, y) with ``labels``."""
    X, y = context.X_calib, context.y_calib
    if X is None or len(X) == 0:
        raise ValueError(f"method {method!r} needs calibration data (X_calib)")
    if labels and (y is None or len(y) != len(X)):
        raise ValueError(f"method {method!r} needs calibration labels (y_calib), one per calibration input")
    for start in range(0, len(X), CALIBRATION_BATCH):
        stop = start + CALIBRATION_BATCH
        yield (X[start:stop], y[start:stop].long()) if labels else (X[start:stop],)


def _row_l1(weight: torch.Tensor) -> torch.Tensor:
    w = weight.detach()
    return w.reshape(w.shape[0], -1).abs().sum(1)


def _keep_lowest_pruned(keep: torch.Tensor, scores: torch.Tensor, n_pruned: int) -> None:
    """Prune (in ``keep``, flat) the lowest-scored kept elements until ``n_pruned`` are pruned;
    ties go to the earliest position, as in :mod:`pruning_core.selection`."""
    more = n_pruned - int((~keep).sum())
    if more <= 0:
        return
    alive = keep.nonzero().squeeze(1)
    order = torch.argsort(scores[alive], stable=True)[:more]
    keep[alive[order]] = False


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
        work = _working_copy(context.model)
        weights = _target_params(work, targets)
        grads = [torch.zeros_like(w) for w in weights]
        with torch.enable_grad():
            for X, y in _calibration(context, self.name, labels=True):
                loss = F.cross_entropy(work(X), y)
                for g, d in zip(grads, torch.autograd.grad(loss, weights, allow_unused=True), strict=True):
                    if d is not None:
                        g += d
        return [(w.detach() * g).abs() for w, g in zip(weights, grads, strict=True)]


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
        work, weights, _, x = self._linearised(targets, context)
        scores = self._flow(work, weights, x)
        top = max((float(s.max()) for s in scores if s.numel()), default=0.0) or 1.0
        return [(s / top).float() for s in scores]

    def masks(self, targets, context, sparsity, scope, scores):
        work, weights, magnitudes, x = self._linearised(targets, context)
        is_global = not isinstance(sparsity, Sequence)
        finals = [float(sparsity)] if is_global else [float(f) for f in sparsity]
        sizes = [w.numel() for w in weights]
        keep = torch.ones(sum(sizes), dtype=torch.bool)
        keeps = list(keep.split(sizes))  # views: pruning one prunes the other
        if all(f == 0 for f in finals):
            return [k.reshape(w.shape).clone() for k, w in zip(keeps, weights, strict=True)]
        for k in range(1, self.rounds + 1):
            with torch.no_grad():
                for w, m, kept in zip(weights, magnitudes, keeps, strict=True):
                    w.copy_(m * kept.reshape(w.shape))
            flow = [s.reshape(-1) for s in self._flow(work, weights, x)]
            # The last round prunes exactly round(s * n): the same count as every other criterion.
            fractions = [f if k == self.rounds else 1 - (1 - f) ** (k / self.rounds) for f in finals]
            if is_global:
                _keep_lowest_pruned(keep, torch.cat(flow), round(fractions[0] * keep.numel()))
            else:
                for kept, s, f in zip(keeps, flow, fractions, strict=True):
                    _keep_lowest_pruned(kept, s, round(f * kept.numel()))
        return [k.reshape(w.shape).clone() for k, w in zip(keeps, weights, strict=True)]

    @staticmethod
    def _linearised(targets, context):
        """A float64 eval-mode copy with |.| of every parameter and buffer (as the reference code does),
        its target weights, their magnitudes, and an all-ones input of the model's input shape."""
        work = _working_copy(context.model, torch.float64)
        with torch.no_grad():
            for value in work.state_dict().values():
                if value.is_floating_point():
                    value.abs_()
        weights = _target_params(work, targets)
        magnitudes = [w.detach().clone() for w in weights]
        return work, weights, magnitudes, torch.ones(_input_shape(context), dtype=torch.float64)

    @staticmethod
    def _flow(work: nn.Module, weights: list[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
        with torch.enable_grad():
            flow = work(x).sum()
            grads = torch.autograd.grad(flow, weights, allow_unused=True)
        return [
            (g * w).detach().abs() if g is not None else torch.zeros_like(w)
            for g, w in zip(grads, weights, strict=True)
        ]


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
        work = _working_copy(context.model)
        modules = dict(work.named_modules())
        sums: dict[str, torch.Tensor] = {}

        def accumulate(layer: str):
            def hook(module, args):
                squares = _input_column_squares(module, args[0].detach())
                sums[layer] = squares if layer not in sums else sums[layer] + squares

            return hook

        handles = [modules[t.layer].register_forward_pre_hook(accumulate(t.layer)) for t in targets]
        try:
            with torch.no_grad():
                for (X,) in _calibration(context, self.name):
                    work(X)
        finally:
            for handle in handles:
                handle.remove()
        out = []
        for t in targets:
            if t.layer not in sums:
                raise ValueError(f"wanda: layer {t.layer!r} was not called on the calibration inputs")
            w = t.weight.detach()
            norms = sums[t.layer].sqrt().to(w.dtype)  # [groups, inputs per group]
            rows = norms.repeat_interleave(w.shape[0] // norms.shape[0], dim=0)
            out.append(w.abs() * rows.reshape(w.shape))
        return out

    def masks(self, targets, context, sparsity, scope, scores):
        if scope == "global":
            return None
        return [_row_wise_keep(s, f) for s, f in zip(scores, sparsity, strict=True)]


def _row_wise_keep(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """Keep-mask pruning the round(fraction * row length) lowest scores of every output row."""
    rows = scores.reshape(scores.shape[0], -1)
    keep = torch.ones_like(rows, dtype=torch.bool)
    k = round(fraction * rows.shape[1])
    if k:
        keep.scatter_(1, torch.argsort(rows, dim=1, stable=True)[:, :k], False)
    return keep.reshape(scores.shape)


def _input_column_squares(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Sum over samples (and positions) of each input column's square, shaped [groups, columns]: the
    columns of a Linear are its input features; those of a convolution are the entries of its
    flattened weight row (in_channels/groups * kernel), one value per sliding-window position."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1]).double().pow(2).sum(0).unsqueeze(0)
    spatial = len(module.kernel_size)
    if x.dim() == spatial + 1:  # an unbatched input
        x = x.unsqueeze(0)
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    x = F.pad(x, module._reversed_padding_repeated_twice, mode=mode)
    for i in range(spatial):  # the n-d unfold: windows of every spatial axis, then the dilation
        span = module.dilation[i] * (module.kernel_size[i] - 1) + 1
        x = x.unfold(2 + i, span, module.stride[i])[..., :: module.dilation[i]]
    # x: [batch, channels, positions..., kernel...]
    squares = x.double().pow(2).sum(dim=(0, *range(2, 2 + spatial)))
    return squares.reshape(module.groups, -1)


def _activation_statistics(targets: Sequence[Target], context: ScoringContext, method: str):
    """Per target and output channel: (fraction of pre-ReLU values <= 0, mean of relu(value)) over the
    calibration samples and positions. The value is the layer's output, or that of the BatchNorm that
    follows it, since that is what the ReLU sees."""
    work = _working_copy(context.model)
    modules = dict(work.named_modules())
    norms = graph.norm_of(context.model, _example(context))
    stats: dict[str, list[torch.Tensor]] = {}

    def accumulate(layer: str, channel_last: bool, channels: int):
        def hook(module, args, output):
            v = output.detach()
            v = v.reshape(-1, v.shape[-1]).T if channel_last else v.movedim(1, 0).reshape(v.shape[1], -1)
            if v.shape[0] != channels:
                raise ValueError(f"{method}: the output of {layer!r} has {v.shape[0]} channels, expected {channels}")
            new = [(v <= 0).double().sum(1), v.clamp_min(0).double().sum(1), torch.tensor(float(v.shape[1]))]
            stats[layer] = new if layer not in stats else [a + b for a, b in zip(stats[layer], new, strict=True)]

        return hook

    handles = []
    for t in targets:
        watched = norms.get(t.layer, t.layer)
        channel_last = watched == t.layer and isinstance(t.module, nn.Linear)
        handles.append(modules[watched].register_forward_hook(accumulate(t.layer, channel_last, t.out_channels)))
    try:
        with torch.no_grad():
            for (X,) in _calibration(context, method):
                work(X)
    finally:
        for handle in handles:
            handle.remove()
    out = []
    for t in targets:
        if t.layer not in stats:
            raise ValueError(f"{method}: layer {t.layer!r} was not called on the calibration inputs")
        nonpositive, relu_sum, count = stats[t.layer]
        out.append((nonpositive / count, relu_sum / count))
    return out


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
        out = []
        for t in targets:
            norm = norms.get(t.layer)
            gamma = getattr(modules[norm], "weight", None) if norm else None
            out.append(gamma.detach().abs() if gamma is not None else _row_l1(t.weight))
        return out


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
        generator = torch.Generator().manual_seed(int(context.seed))
        return [torch.rand(t.out_channels, generator=generator) for t in targets]


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
