"""From scores to masks: scope and sparsity allocation, and applying masks without side effects.

Masks are ``dict[str, torch.BoolTensor]`` keyed by parameter name (``"fc1.weight"``), True = kept.
A structured mask also carries the ``bias`` of the pruned neurons and the ``weight``/``bias`` of
the BatchNorm that follows them, so the masked model computes what the smaller model computes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from pruning_core import allocation, graph, groups, kernels, selection
from pruning_core.methods import PruningMethod, ScoringContext, get_method
from pruning_core.targets import Target, find_targets

SCOPES = {
    "global": "One ranking across all layers: layers with many unimportant weights lose more.",
    "layerwise": "The same sparsity in every layer.",
    "per-layer": "An explicit sparsity for each layer (layers not listed stay dense).",
    "erk": "Erdős-Rényi-Kernel allocation (Evci et al. 2020): small layers keep more, "
    "each layer's density proportional to sum(dims)/prod(dims) of its weight.",
}

Sparsity = float | Mapping[str, float]
Masks = dict[str, torch.Tensor]


def check_sparsity(value: object) -> float:
    """A sparsity as a float in [0, 1); anything else raises ValueError naming the value."""
    try:
        s = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"sparsity {value!r} is not a number; give a fraction in [0, 1), e.g. 0.9") from None
    if not 0.0 <= s < 1.0 or s != s:
        raise ValueError(f"sparsity {value!r} is outside [0, 1); give a fraction of weights to remove, e.g. 0.9")
    return s


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; valid scopes: {', '.join(SCOPES)}")
    return scope


def per_layer_sparsities(targets: Sequence[Target], sparsity: Mapping[str, float]) -> list[float]:
    """One sparsity per target from a mapping keyed by layer ("fc1") or parameter ("fc1.weight")."""
    by_layer = {}
    valid = [t.layer for t in targets]
    for key, value in sparsity.items():
        layer = key[: -len(".weight")] if key.endswith(".weight") else key
        if layer not in valid:
            raise ValueError(
                f"per-layer sparsity names {key!r}, which is not a pruned layer; valid: {', '.join(valid)}"
            )
        by_layer[layer] = check_sparsity(value)
    return [by_layer.get(t.layer, 0.0) for t in targets]


def erk_sparsities(
    targets_or_shapes: Sequence[Target] | Mapping[str, Sequence[int]], sparsity: float
) -> dict[str, float]:
    """Per-layer sparsities of the Erdős-Rényi-Kernel allocation (Evci et al. 2020).

    Each layer's density is proportional to ``sum(dims) / prod(dims)`` of its weight tensor, scaled
    so that ``(1 - sparsity)`` of all the weights are kept. A layer whose density would exceed 1
    stays dense, and the scale is solved again over the others until no density exceeds 1.
    Takes targets or a mapping of layer name to weight shape; returns layer name -> sparsity.
    """
    s = check_sparsity(sparsity)
    if isinstance(targets_or_shapes, Mapping):
        shapes = {layer: tuple(int(d) for d in shape) for layer, shape in targets_or_shapes.items()}
    else:
        shapes = {t.layer: tuple(t.weight.shape) for t in targets_or_shapes}
    return kernels.erk_sparsities(shapes, s)


def _n_to_prune(sparsity: float, n: int) -> int:
    # torch.nn.utils.prune prunes round(amount * n) (Python's round: half to even); so do we.
    return kernels.n_to_prune(sparsity, n)


@dataclass
class MaskPlan:
    """Scores computed once for a model and method; masks for any scope and sparsity on demand.

    Sweeps build one plan per method and ask it for many sparsities, so scoring (which may need
    gradients) and the global ranking happen once.
    """

    model: nn.Module
    method: PruningMethod
    targets: list[Target]
    scored: list[Target]  # targets the method may prune (structured: not the output layer)
    scores: Sequence[torch.Tensor]  # a list, or selection.Magnitudes (|w| computed when read)
    links: dict[str, list[str]]  # layer -> parameter names pruned with its neurons (structured)
    context: ScoringContext | None = None  # what the method saw; its ``masks`` hook sees it again
    removal_order: allocation.RemovalOrder | None = field(default=None, repr=False)  # global structured
    coupling: groups.Coupling | None = field(default=None, repr=False)  # structured, coupled layers only

    @classmethod
    def build(
        cls,
        model: nn.Module,
        method: str | PruningMethod,
        exclude: Iterable[str] = (),
        seed: int = 0,
        X_calib: torch.Tensor | None = None,
        y_calib: torch.Tensor | None = None,
    ) -> MaskPlan:
        method = get_method(method)
        targets = find_targets(model, exclude)
        scored, links, coupling = targets, {}, None
        if method.granularity == "structured":
            example = X_calib[:1] if X_calib is not None and len(X_calib) else None
            outputs = graph.output_layers(model, example)
            scored = [t for t in targets if t.layer not in outputs]
            if not scored:
                raise ValueError("structured pruning needs a layer other than the output layer to prune")
            coupling = groups.coupling(model, [t.layer for t in scored], example)
            links = _linked_params(model, scored, example, coupling)
        if method.needs_data and X_calib is None:
            raise ValueError(f"method {method.name!r} needs calibration data")
        context = ScoringContext(model=model, seed=seed, X_calib=X_calib, y_calib=y_calib)
        with torch.no_grad() if not method.needs_data else torch.enable_grad():
            scores = selection.check_scores(method.scores(scored, context))
        for t, shape in zip(scored, selection.shapes(scores), strict=False):
            expected = t.weight.shape if method.granularity != "structured" else (t.out_channels,)
            if tuple(shape) != tuple(expected):
                raise ValueError(
                    f"{method.name} scored {t.layer} with shape {tuple(shape)}, expected {tuple(expected)}"
                )
        if coupling is not None:  # one leader per set of coupled layers chooses for all of them
            scores = coupling.aggregate([t.layer for t in scored], scores)
            scored = [t for t in scored if t.layer not in coupling.followers]
        return cls(model, method, targets, scored, scores, links, context, coupling=coupling)

    @property
    def granularity(self) -> str:
        return self.method.granularity

    def masks(self, sparsity: Sparsity, scope: str = "global") -> Masks:
        """Masks for one sparsity (a fraction, or a per-layer mapping with scope "per-layer")."""
        return next(iter(self.masks_for_levels([sparsity], scope)))

    def masks_for_levels(self, levels: Sequence[Sparsity], scope: str = "global") -> Iterator[Masks]:
        """Masks for each sparsity in ``levels``, computed lazily (one dict alive at a time)."""
        return (masks for masks, _ in self.masks_and_counts(levels, scope))

    def masks_and_counts(
        self, levels: Sequence[Sparsity], scope: str = "global"
    ) -> Iterator[tuple[Masks, dict[str, int] | None]]:
        """Like :meth:`masks_for_levels`, with how many elements each mask prunes where the ranking
        already knows it (unstructured methods), else None; sweeps then need not count again."""
        check_scope(scope)
        if self.granularity == "n:m":
            for level in levels:  # a fixed pattern ignores the sparsity, but a bad one is still refused
                if isinstance(level, Mapping):
                    per_layer_sparsities(self.scored, level)
                else:
                    check_sparsity(level)
                yield self._with_unscored(self._nm_masks()), None
            return
        per_level = [self._level_fractions(level, scope) for level in levels]
        if self.granularity == "structured":
            for fractions in per_level:
                yield self._with_unscored(self._structured_masks(fractions, scope)), None
            return
        names = [t.param_name for t in self.scored]
        ranking: dict[str, list] = {}  # the global ranking's thresholds, computed once for every level
        for i in range(len(per_level)):
            # Yielded straight from the call: this frame keeps no reference, so once the caller lets
            # a level's masks go they are freed before the next level's are made.
            yield self._unstructured_level(names, per_level, i, scope, ranking)

    def _unstructured_level(
        self, names: list[str], per_level: list, i: int, scope: str, ranking: dict[str, list]
    ) -> tuple[Masks, dict[str, int]]:
        fractions = per_level[i]
        own = self._method_masks(fractions, scope)
        if own is not None:
            return self._with_unscored(dict(zip(names, own))), {n: int((~m).sum()) for n, m in zip(names, own)}
        if scope == "global":
            if "thresholds" not in ranking:
                total = sum(math.prod(shape) for shape in selection.shapes(self.scores))
                ranking["thresholds"] = selection.thresholds(self.scores, [_n_to_prune(f, total) for f in per_level])
            threshold = ranking["thresholds"][i]
            kept = selection.kept_masks(self.scores, threshold)
            return self._with_unscored(dict(zip(names, kept))), dict(zip(names, threshold.pruned_per_tensor))
        masks, counts = {}, {}
        for name, s, f in zip(names, self.scores, fractions):
            (threshold,) = selection.thresholds([s], [_n_to_prune(f, s.numel())])
            masks[name] = selection.kept_masks([s], threshold)[0]
            counts[name] = threshold.k
        return self._with_unscored(masks), counts

    def _method_masks(self, fractions, scope: str) -> list[torch.Tensor] | None:
        """The method's own masks for one level (iterative or row-wise criteria), checked, else None."""
        context = self.context or ScoringContext(model=self.model)
        own = self.method.masks(self.scored, context, fractions, scope, self.scores)
        if own is None:
            return None
        if len(own) != len(self.scored):
            raise ValueError(f"{self.method.name} returned {len(own)} masks for {len(self.scored)} layers")
        for t, mask in zip(self.scored, own):
            if mask.dtype != torch.bool or tuple(mask.shape) != tuple(t.weight.shape):
                raise ValueError(
                    f"{self.method.name} returned a {mask.dtype} mask of shape {tuple(mask.shape)} for {t.layer}, "
                    f"expected torch.bool {tuple(t.weight.shape)}"
                )
        return own

    def _level_fractions(self, level: Sparsity, scope: str):
        """A global fraction (scope "global") or one fraction per scored target (every other scope)."""
        if isinstance(level, Mapping):
            if scope != "per-layer":
                raise ValueError(f"a per-layer sparsity mapping needs scope 'per-layer', not {scope!r}")
            return per_layer_sparsities(self.scored, level)
        if scope == "per-layer":
            raise ValueError("scope 'per-layer' needs a mapping of layer name to sparsity")
        s = check_sparsity(level)
        if scope == "erk":
            by_layer = erk_sparsities(self.scored, s)
            return [by_layer[t.layer] for t in self.scored]
        return s if scope == "global" else [s] * len(self.scored)

    def _with_unscored(self, masks: Masks) -> Masks:
        """Add all-True masks for targets the method does not prune, so every target has a mask."""
        full = {}
        for t in self.targets:
            mask = masks.get(t.param_name)
            full[t.param_name] = mask if mask is not None else torch.ones_like(t.weight, dtype=torch.bool)
        for name, mask in masks.items():
            full.setdefault(name, mask)
        return full

    def _nm_masks(self) -> Masks:
        """N kept in every group of M consecutive inputs: along the input dimension of a Linear, and
        along the input channels at each kernel position of a convolution, as sparse tensor cores
        (cuSPARSELt, NVIDIA ASP) group a conv weight [O, C, *k], not along the flattened (C, *k)."""
        n, m = self.method.n, self.method.m
        return {t.param_name: kernels.nm_keep(s, n, m) for t, s in zip(self.scored, self.scores, strict=False)}

    def _structured_masks(self, fractions, scope: str) -> Masks:
        channels = self._kept_channels(fractions, scope)
        masks = {}
        for t, keep in zip(self.scored, channels, strict=False):
            masks[t.param_name] = kernels.neuron_mask(keep, t.weight.shape)
            for linked in self.links.get(t.layer, ()):
                masks[linked] = keep.clone()
        if self.coupling is not None:
            masks.update(self._coupled_masks({t.layer: keep for t, keep in zip(self.scored, channels, strict=False)}))
        return masks

    def _coupled_masks(self, keep: dict[str, torch.Tensor]) -> Masks:
        """Followers take their leader's channels, with their biases; BatchNorms follow their groups."""
        assert self.coupling is not None
        modules = dict(self.model.named_modules())
        masks = {}
        for layer, kept in self.coupling.follower_keep(keep).items():
            module = modules[layer]
            masks[f"{layer}.weight"] = kernels.neuron_mask(kept, module.weight.shape)
            if getattr(module, "bias", None) is not None:
                masks[f"{layer}.bias"] = kept.clone()
        kept_groups = self.coupling.group_keep(keep)
        for norm in self.coupling.norms:
            for p in ("weight", "bias"):
                if getattr(modules[norm], p, None) is not None:
                    masks[f"{norm}.{p}"] = kept_groups[self.coupling.groups.norms[norm]]
        return masks

    def _kept_channels(self, fractions, scope: str) -> list[torch.Tensor]:
        if scope != "global":
            kept = []
            for s, f in zip(self.scores, fractions, strict=False):
                # At least one neuron stays: a layer with none left disconnects the network.
                k = min(_n_to_prune(f, s.numel()), s.numel() - 1)
                (threshold,) = selection.thresholds([s], [k])
                kept.append(selection.kept_masks([s], threshold)[0])
            return kept
        return self._global_channels(fractions)

    def _global_channels(self, sparsity: float) -> list[torch.Tensor]:
        """Cut the plan's one global removal order (``pruning_core.allocation``) at ``sparsity``,
        counted as the fraction of all Linear/Conv weights effectively removed."""
        if self.removal_order is None:  # built once per plan, so every level cuts the same order
            coupled_rows: dict[str, int] = {}
            if self.coupling is not None:  # a leader's removal takes its followers' rows too
                modules = dict(self.model.named_modules())
                for follower, (leader, _) in self.coupling.followers.items():
                    row = modules[follower].weight[0].numel()
                    coupled_rows[leader] = coupled_rows.get(leader, 0) + row
            self.removal_order = allocation.removal_order(
                self.model, self.scored, self.scores, coupled_rows=coupled_rows
            )
        return self.removal_order.kept(sparsity)


def _linked_params(
    model: nn.Module,
    targets: Sequence[Target],
    example_input: torch.Tensor | None = None,
    coupling: groups.Coupling | None = None,
) -> dict[str, list[str]]:
    # With coupled layers the BatchNorms follow their channel groups (``_coupled_masks``).
    norms = graph.norm_of(model, example_input) if coupling is None else {}
    modules = dict(model.named_modules())
    links = {}
    for t in targets:
        names = []
        if getattr(t.module, "bias", None) is not None:
            names.append(f"{t.layer}.bias")
        norm = norms.get(t.layer)
        if norm is not None:
            names += [f"{norm}.{p}" for p in ("weight", "bias") if getattr(modules[norm], p, None) is not None]
        links[t.layer] = names
    return links


def compute_masks(
    model: nn.Module,
    method: str = "magnitude",
    scope: str = "global",
    sparsity: Sparsity = 0.5,
    exclude: Iterable[str] = (),
    seed: int = 0,
    X_calib: torch.Tensor | None = None,
    y_calib: torch.Tensor | None = None,
) -> Masks:
    """Keep-masks (True = kept) for ``model``, keyed by parameter name. Never modifies ``model``.

    ``scope`` is "global", "layerwise", "erk" (per-layer sparsities from :func:`erk_sparsities`) or
    "per-layer" (then ``sparsity`` maps layer names to fractions). ``exclude`` names layers left dense. Structured methods also return masks for the
    pruned neurons' biases and BatchNorm entries; they never remove the output layer's neurons.
    """
    plan = MaskPlan.build(model, method, exclude=exclude, seed=seed, X_calib=X_calib, y_calib=y_calib)
    return plan.masks(sparsity, scope)


_MASK_CHUNK = 1 << 17  # elements per multiplication: the bool mask's float copy is a chunk's, not a tensor's


def write_masked(original: torch.Tensor, mask: torch.Tensor, out: torch.Tensor) -> None:
    """``out = original * mask`` (``out`` may be ``original``), a chunk at a time: multiplying by a bool
    tensor converts it to a float copy first, 4 bytes per weight (64 MB for a 4096 x 4096 layer);
    here only a chunk's. The values are exactly those of ``torch.mul`` (signed zeros included)."""
    if not (original.is_contiguous() and mask.is_contiguous() and out.is_contiguous()) or mask.shape != out.shape:
        torch.mul(original, mask, out=out)  # broadcasting or strided views: the plain product
        return
    source, keep, target = original.view(-1), mask.view(-1), out.view(-1)
    for start in range(0, target.numel(), _MASK_CHUNK):
        end = start + _MASK_CHUNK
        torch.mul(source[start:end], keep[start:end], out=target[start:end])


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` with masked parameters zeroed; the original is left untouched."""
    pruned = copy.deepcopy(model)
    params = dict(pruned.named_parameters())
    unknown = set(masks) - set(params)
    if unknown:
        raise ValueError(f"masks name parameters the model lacks: {', '.join(sorted(unknown))}")
    with torch.no_grad():
        for name, mask in masks.items():
            write_masked(params[name], mask, params[name])
    return pruned


def mask_sparsity(masks: Mapping[str, torch.Tensor], weights_only: bool = True) -> float:
    """Fraction of masked-out elements over the masks' weights (or every masked tensor)."""
    chosen = [m for n, m in masks.items() if not weights_only or n.endswith(".weight")]
    total = sum(m.numel() for m in chosen)
    return 1.0 - sum(int(m.sum()) for m in chosen) / total if total else 0.0
