"""The mask math of every pruning method and schedule, in plain torch: what the engine runs, and what
a generated standalone script embeds verbatim (``inspect.getsource`` of this module).

This module imports only torch, math and typing, never the rest of PruneLab, so its text runs as
it is inside a script that needs nothing but torch. The engine (``methods``, ``masks``,
``allocation``, ``finetune``, ``schedules``) calls these functions, so the script and the engine
cannot drift apart: they run the same code. Functions here never copy a model; a caller that
must not touch its model passes a copy (``prepare_copy`` readies one). No global random state:
every random draw takes a ``torch.Generator``.

Conventions: a keep-mask is a bool tensor, True = kept; lower scores are pruned first; ties are
pruned in order of position (tensors in the order given, then flat index), so masks for growing
sparsity are nested.
"""

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

CALIBRATION_BATCH = 64  # samples per forward pass of a data-driven criterion


# --- counts and sparsity curves -------------------------------------------------------------------------


def n_to_prune(fraction: float, n: int) -> int:
    """Elements to prune for ``fraction`` of ``n``: round(fraction * n), Python's round (half to
    even), as torch.nn.utils.prune counts them."""
    return round(fraction * n)


def round_sparsities(target: float, rounds: int) -> list[float]:
    """Sparsity after each round when every round prunes the same fraction of what remains."""
    keep = (1.0 - target) ** (1.0 / rounds)
    # The last round lands exactly; earlier ones never pass it, whatever the float rounding.
    return [min(target, 1.0 - keep**i) for i in range(1, rounds)] + [target]


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


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimiser steps in one epoch: the last batch may be short."""
    return -(-n_train // batch_size)


def erk_sparsities(shapes: dict[str, tuple[int, ...]], sparsity: float) -> dict[str, float]:
    """Per-layer sparsities of the Erdős-Rényi-Kernel allocation (Evci et al. 2020): each layer's
    density proportional to sum(dims) / prod(dims) of its weight, scaled so (1 - sparsity) of all
    weights stay; a layer whose density would exceed 1 stays dense and the scale is solved again."""
    sizes = {layer: math.prod(shape) for layer, shape in shapes.items()}
    if any(n == 0 for n in sizes.values()):
        raise ValueError("ERK needs weights with at least one element in every layer")
    raw = {layer: sum(shape) / sizes[layer] for layer, shape in shapes.items()}
    budget = (1 - sparsity) * sum(sizes.values())
    dense: set[str] = set()
    scale = 0.0
    while True:
        rest = [layer for layer in shapes if layer not in dense]
        if not rest:
            break
        kept_elsewhere = sum(sizes[layer] for layer in dense)
        scale = (budget - kept_elsewhere) / sum(raw[layer] * sizes[layer] for layer in rest)
        saturated = {layer for layer in rest if scale * raw[layer] > 1}
        if not saturated:
            break
        dense |= saturated
    return {layer: 0.0 if layer in dense else min(1.0, max(0.0, 1 - scale * raw[layer])) for layer in shapes}


# --- selection ------------------------------------------------------------------------------------------


def lowest_k_keep(scores: Sequence[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Keep-masks pruning the ``k`` lowest of all ``scores`` together (compared as float32); ties go
    to the earliest position. The reference for the engine's radix select (``selection.py``)."""
    flat = torch.cat([s.detach().reshape(-1).to(torch.float32) for s in scores])
    if not 0 <= k <= flat.numel():
        raise ValueError(f"cannot prune {k} of {flat.numel()} elements")
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[torch.argsort(flat, stable=True)[:k]] = False
    return [m.reshape(s.shape) for m, s in zip(keep.split([s.numel() for s in scores]), scores)]


def prune_lowest_kept(keep: torch.Tensor, scores: torch.Tensor, n_pruned: int) -> None:
    """Prune (in the flat ``keep``, in place) the lowest-scored kept elements until ``n_pruned`` are
    pruned in all; ties go to the earliest position."""
    more = n_pruned - int((~keep).sum())
    if more <= 0:
        return
    alive = keep.nonzero().squeeze(1)
    order = torch.argsort(scores[alive], stable=True)[:more]
    keep[alive[order]] = False


def row_wise_keep(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """Keep-mask pruning the round(fraction * row length) lowest scores of every output row."""
    rows = scores.reshape(scores.shape[0], -1)
    keep = torch.ones_like(rows, dtype=torch.bool)
    k = n_to_prune(fraction, rows.shape[1])
    if k:
        keep.scatter_(1, torch.argsort(rows, dim=1, stable=True)[:, :k], False)
    return keep.reshape(scores.shape)


def nm_keep(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """N kept in every group of M consecutive inputs: along a Linear's input features, and along a
    convolution's input channels at each kernel position (a weight [O, C, *k]), as sparse tensor
    cores (cuSPARSELt, NVIDIA ASP) group them; a short last group keeps min(n, its length)."""
    channels_last = scores.movedim(1, -1)  # [O, *k, C]: each row is the C inputs at one position
    rows = channels_last.reshape(-1, scores.shape[1])
    pad = (-rows.shape[1]) % m
    # Padding scores of -1 lose to every real score >= 0.
    padded = F.pad(rows, (0, pad), value=-1.0).reshape(rows.shape[0], -1, m)
    keep = torch.zeros_like(padded, dtype=torch.bool)
    keep.scatter_(2, padded.topk(n, dim=2).indices, True)
    kept_rows = keep.reshape(rows.shape[0], -1)[:, : rows.shape[1]]
    return kept_rows.reshape(channels_last.shape).movedim(-1, 1).contiguous()


def structured_layer_keep(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """Kept neurons of one layer pruned on its own: the round(fraction * width) lowest go, but at
    least one neuron stays (a layer with none left disconnects the network)."""
    k = min(n_to_prune(fraction, scores.numel()), scores.numel() - 1)
    return lowest_k_keep([scores], k)[0]


def matched_random_keep(
    magnitudes: Sequence[torch.Tensor], random_scores: Sequence[torch.Tensor], fraction: float
) -> list[torch.Tensor]:
    """Random pruning with global magnitude's per-layer counts: each layer loses as many weights as
    a global |w| ranking takes from it, chosen by its own random scores."""
    total = sum(m.numel() for m in magnitudes)
    by_magnitude = lowest_k_keep(magnitudes, n_to_prune(fraction, total))
    return [lowest_k_keep([s], int((~kept).sum()))[0] for s, kept in zip(random_scores, by_magnitude, strict=True)]


# --- global structured allocation -----------------------------------------------------------------------


def min_width(width: int, min_fraction: float) -> int:
    """Neurons a layer of ``width`` keeps at least: max(1, ceil(min_fraction * width))."""
    return min(width, max(1, math.ceil(min_fraction * width - 1e-9)))


def structured_priorities(
    scores: Sequence[torch.Tensor], costs: Sequence[int], cost_exponent: float
) -> list[torch.Tensor]:
    """Global ranking key of every neuron: score / ||layer scores||_2 / cost ** cost_exponent
    (``pruning_core.allocation.priorities`` says why)."""
    return [
        s.double() / s.double().norm().clamp_min(1e-12) / cost**cost_exponent
        for s, cost in zip(scores, costs, strict=True)
    ]


def removal_order(
    scores: Sequence[torch.Tensor],
    layers: Sequence[dict[str, Any]],
    widths: dict[str, int],
    min_fraction: float,
    cost_exponent: float,
) -> tuple[list[tuple[int, int]], list[int]]:
    """One global order of neuron removals, and the weights effectively removed after each.

    ``layers[i]`` describes scored layer i in plain values: ``name``, ``row`` (weights in one row),
    ``cost`` (parameters one removal frees), ``traced`` (its dataflow is known), ``producer``,
    ``producer_span``, ``in_columns``, ``kernel``, ``consumer``, ``span``, ``consumer_kernel``.
    ``widths`` holds every traced layer's output count. Returns (steps, cumulative): steps[i] =
    (layer index, neuron) of the i-th removal, cumulative[i] = weights gone after i removals.
    """
    keys = structured_priorities(scores, [info["cost"] for info in layers], cost_exponent)
    candidates = []
    for layer_index, key in enumerate(keys):
        values = key.tolist()
        order = sorted(range(len(values)), key=values.__getitem__)  # a stable sort: ties by index
        removable = key.numel() - min_width(key.numel(), min_fraction)
        candidates += [(values[i], layer_index, i) for i in order[:removable]]
    candidates.sort()
    kept = dict(widths)
    removed, cumulative, steps = 0, [0], []
    for _, layer_index, neuron in candidates:
        info = layers[layer_index]
        if not info["traced"]:  # only the row is known to go
            removed += info["row"]
        else:
            producer = info["producer"]
            in_kept = kept[producer] * info["producer_span"] if producer is not None else info["in_columns"]
            removed += in_kept * info["kernel"]
            if info["consumer"] is not None:
                removed += kept[info["consumer"]] * info["span"] * info["consumer_kernel"]
            kept[info["name"]] -= 1
        steps.append((layer_index, neuron))
        cumulative.append(removed)
    return steps, cumulative


def removal_cut(cumulative: Sequence[int], total_weights: int, sparsity: float) -> int:
    """How many removals reach ``sparsity`` of all weights most closely (the fewer on a tie);
    non-decreasing in ``sparsity``, which makes the masks nested."""
    budget = round(sparsity * total_weights)
    removed = torch.tensor(list(cumulative))
    reach = int(torch.searchsorted(removed, budget, right=True))
    if reach < len(removed) and removed[reach] - budget < budget - removed[reach - 1]:
        return reach
    return reach - 1


def removal_kept(widths: Sequence[int], steps: Sequence[tuple[int, int]], cut: int) -> list[torch.Tensor]:
    """Kept neurons of each scored layer after the first ``cut`` removals."""
    kept = [torch.ones(width, dtype=torch.bool) for width in widths]
    for layer_index, neuron in steps[:cut]:
        kept[layer_index][neuron] = False
    return kept


def neuron_mask(keep: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A weight's keep-mask from its kept output neurons: whole rows/filters."""
    view = (-1,) + (1,) * (len(shape) - 1)
    return keep.reshape(view).expand(*shape).clone()


# --- scores ---------------------------------------------------------------------------------------------


def magnitude_scores(weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """|w| of every weight."""
    return [w.detach().abs() for w in weights]


def random_scores(shapes: Sequence[Sequence[int]], seed: int) -> list[torch.Tensor]:
    """Uniform random scores, one tensor per shape, drawn in order from one seeded generator."""
    generator = torch.Generator().manual_seed(int(seed))
    return [torch.rand(tuple(shape), generator=generator) for shape in shapes]


def structured_norms(weights: Sequence[torch.Tensor], p: int) -> list[torch.Tensor]:
    """Lp norm of every output neuron's weights, the call torch.nn.utils.prune.ln_structured(dim=0)
    makes, so rankings agree exactly."""
    out = []
    for weight in weights:
        w = weight.detach()
        out.append(torch.norm(w, p=p, dim=tuple(range(1, w.dim()))) if w.dim() > 1 else w.abs())
    return out


def row_l1(weight: torch.Tensor) -> torch.Tensor:
    """L1 norm of every output row."""
    w = weight.detach()
    return w.reshape(w.shape[0], -1).abs().sum(1)


def bn_scale_scores(weights: Sequence[torch.Tensor], gammas: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
    """|gamma| of the BatchNorm after each layer; a layer without one falls back to its rows' L1 norm."""
    return [g.detach().abs() if g is not None else row_l1(w) for w, g in zip(weights, gammas, strict=True)]


def prepare_copy(work: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """Ready a private copy for scoring: eval mode (BatchNorm on running statistics), no gradients
    recorded, optionally cast. Modifies and returns ``work``; never pass the caller's model."""
    if dtype is not None:
        work = work.to(dtype)
    work.eval()
    for p in work.parameters():
        p.grad = None
        p.requires_grad_(False)
    return work


def calibration_batches(
    X: torch.Tensor | None, y: torch.Tensor | None, method: str, labels: bool = False
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Calibration batches of ``CALIBRATION_BATCH`` samples: (X,) or (X, y) with ``labels``."""
    if X is None or len(X) == 0:
        raise ValueError(f"method {method!r} needs calibration data (X_calib)")
    if labels and (y is None or len(y) != len(X)):
        raise ValueError(f"method {method!r} needs calibration labels (y_calib), one per calibration input")
    for start in range(0, len(X), CALIBRATION_BATCH):
        stop = start + CALIBRATION_BATCH
        yield (X[start:stop], y[start:stop].long()) if labels and y is not None else (X[start:stop],)


def taylor_scores(
    work: nn.Module, names: Sequence[str], X: torch.Tensor | None, y: torch.Tensor | None
) -> list[torch.Tensor]:
    """|w * dL/dw| with cross-entropy gradients summed over calibration batches (on ``work``, a
    prepared copy)."""
    params = dict(work.named_parameters())
    weights = [params[name].requires_grad_(True) for name in names]
    grads = [torch.zeros_like(w) for w in weights]
    with torch.enable_grad():
        for X_batch, y_batch in calibration_batches(X, y, "taylor", labels=True):
            loss = F.cross_entropy(work(X_batch), y_batch)
            for g, d in zip(grads, torch.autograd.grad(loss, weights, allow_unused=True), strict=True):
                if d is not None:
                    g += d
    return [(w.detach() * g).abs() for w, g in zip(weights, grads, strict=True)]


def input_column_squares(module: Any, x: torch.Tensor) -> torch.Tensor:
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
    squares = x.double().pow(2).sum(dim=(0, *range(2, 2 + spatial)))  # x: [batch, channels, positions.., kernel..]
    return squares.reshape(module.groups, -1)


def wanda_scores(work: nn.Module, layers: Sequence[str], X: torch.Tensor | None) -> list[torch.Tensor]:
    """|W_ij| * ||X_j||_2 over the calibration inputs of each layer (Sun et al. 2023), on a prepared copy."""
    modules = dict(work.named_modules())
    sums: dict[str, torch.Tensor] = {}

    def accumulate(layer: str) -> Callable:
        def hook(module: nn.Module, args: tuple) -> None:
            squares = input_column_squares(module, args[0].detach())
            sums[layer] = squares if layer not in sums else sums[layer] + squares

        return hook

    handles = [modules[layer].register_forward_pre_hook(accumulate(layer)) for layer in layers]
    try:
        with torch.no_grad():
            for (X_batch,) in calibration_batches(X, None, "wanda"):
                work(X_batch)
    finally:
        for handle in handles:
            handle.remove()
    out = []
    for layer in layers:
        if layer not in sums:
            raise ValueError(f"wanda: layer {layer!r} was not called on the calibration inputs")
        w = modules[layer].weight.detach()
        norms = sums[layer].sqrt().to(w.dtype)  # [groups, inputs per group]
        rows = norms.repeat_interleave(w.shape[0] // norms.shape[0], dim=0)
        out.append(w.abs() * rows.reshape(w.shape))
    return out


def activation_statistics(
    work: nn.Module, watch: Sequence[tuple[str, str, bool, int]], X: torch.Tensor | None, method: str
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer and output channel: (fraction of values <= 0, mean of relu(value)) over the
    calibration samples and positions, on a prepared copy. ``watch`` holds (layer, watched module,
    channels last, channels): the watched module is the layer or the BatchNorm on its output
    (``methods.activation_watch``), whose output is what the ReLU sees."""
    modules = dict(work.named_modules())
    stats: dict[str, list[torch.Tensor]] = {}

    def accumulate(layer: str, channel_last: bool, channels: int) -> Callable:
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            v = output.detach()
            v = v.reshape(-1, v.shape[-1]).T if channel_last else v.movedim(1, 0).reshape(v.shape[1], -1)
            if v.shape[0] != channels:
                raise ValueError(f"{method}: the output of {layer!r} has {v.shape[0]} channels, expected {channels}")
            new = [(v <= 0).double().sum(1), v.clamp_min(0).double().sum(1), torch.tensor(float(v.shape[1]))]
            stats[layer] = new if layer not in stats else [a + b for a, b in zip(stats[layer], new, strict=True)]

        return hook

    handles = [
        modules[watched].register_forward_hook(accumulate(layer, channel_last, channels))
        for layer, watched, channel_last, channels in watch
    ]
    try:
        with torch.no_grad():
            for (X_batch,) in calibration_batches(X, None, method):
                work(X_batch)
    finally:
        for handle in handles:
            handle.remove()
    out = []
    for layer, _, _, _ in watch:
        if layer not in stats:
            raise ValueError(f"{method}: layer {layer!r} was not called on the calibration inputs")
        nonpositive, relu_sum, count = stats[layer]
        out.append((nonpositive / count, relu_sum / count))
    return out


def synflow_linearise(work: nn.Module) -> nn.Module:
    """Replace every floating parameter and buffer of a prepared float64 copy by its magnitude, as
    the SynFlow reference code does. Modifies and returns ``work``."""
    with torch.no_grad():
        for value in work.state_dict().values():
            if value.is_floating_point():
                value.abs_()
    return work


def synflow_flow(work: nn.Module, weights: Sequence[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    """|dR/dw * w| with R the summed output on the all-ones input ``x``."""
    with torch.enable_grad():
        flow = work(x).sum()
        grads = torch.autograd.grad(flow, list(weights), allow_unused=True)
    return [
        (g * w).detach().abs() if g is not None else torch.zeros_like(w) for g, w in zip(grads, weights, strict=True)
    ]


def synflow_weights(work: nn.Module, names: Sequence[str]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """A linearised copy's target weights (recording gradients) and their magnitudes."""
    params = dict(work.named_parameters())
    weights = [params[name].requires_grad_(True) for name in names]
    return weights, [w.detach().clone() for w in weights]


def synflow_scores(work: nn.Module, names: Sequence[str], x: torch.Tensor) -> list[torch.Tensor]:
    """Single-shot SynFlow scores (the first round), scaled to a maximum of 1 so float32 holds them."""
    weights, _ = synflow_weights(work, names)
    scores = synflow_flow(work, weights, x)
    top = max((float(s.max()) for s in scores if s.numel()), default=0.0) or 1.0
    return [(s / top).float() for s in scores]


def synflow_keep(
    work: nn.Module, names: Sequence[str], x: torch.Tensor, sparsity: float | Sequence[float], rounds: int
) -> list[torch.Tensor]:
    """Iterative SynFlow (Tanaka et al. 2020): ``rounds`` rounds to densities d^(k/rounds), rescoring
    the survivors each round; one global fraction, or one fraction per layer."""
    weights, magnitudes = synflow_weights(work, names)
    is_global = not isinstance(sparsity, Sequence)
    finals = [float(f) for f in sparsity] if isinstance(sparsity, Sequence) else [float(sparsity)]
    sizes = [w.numel() for w in weights]
    keep = torch.ones(sum(sizes), dtype=torch.bool)
    keeps = list(keep.split(sizes))  # views: pruning one prunes the other
    if all(f == 0 for f in finals):
        return [k.reshape(w.shape).clone() for k, w in zip(keeps, weights, strict=True)]
    for k in range(1, rounds + 1):
        with torch.no_grad():
            for w, m, kept in zip(weights, magnitudes, keeps, strict=True):
                w.copy_(m * kept.reshape(w.shape))
        flow = [s.reshape(-1) for s in synflow_flow(work, weights, x)]
        # The last round prunes exactly round(s * n): the same count as every other criterion.
        fractions = [f if k == rounds else 1 - (1 - f) ** (k / rounds) for f in finals]
        if is_global:
            prune_lowest_kept(keep, torch.cat(flow), n_to_prune(fractions[0], keep.numel()))
        else:
            for kept, s, f in zip(keeps, flow, fractions, strict=True):
                prune_lowest_kept(kept, s, n_to_prune(f, kept.numel()))
    return [k.reshape(w.shape).clone() for k, w in zip(keeps, weights, strict=True)]


# --- masked fine-tuning and the schedules ---------------------------------------------------------------


class Stopped(Exception):
    """Raised inside a long run when the caller's ``should_stop()`` says so."""


def make_optimizer(
    model: nn.Module, name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """The fine-tuning optimiser: "sgd" (with momentum) or "adam"."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)


def apply_keep(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the pruned entries of ``model``'s parameters in place."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask)


def and_masks(previous: dict[str, torch.Tensor] | None, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``masks`` restricted to what ``previous`` kept: pruned weights stay pruned."""
    if previous is None:
        return dict(masks)
    return {name: mask & previous[name] if name in previous else mask for name, mask in masks.items()}


def masked_training(
    model: nn.Module,
    masks: dict[str, torch.Tensor],
    X_train: torch.Tensor,
    y_train: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    seed: int,
    on_step: Callable[[int], dict[str, torch.Tensor] | None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> nn.Module:
    """Train ``model`` in place with cross-entropy, pruned weights held at zero: gradients masked
    before each step and masks re-applied after it (momentum or weight decay would move a zero).
    Batches are shuffled by a seeded generator. ``on_step(step)`` runs before every step and may
    return new masks (gradual pruning). Returns the model in eval mode."""
    params = dict(model.named_parameters())
    unknown = set(masks) - set(params)
    if unknown:
        raise ValueError(f"masks name parameters the model lacks: {', '.join(sorted(unknown))}")
    masks = dict(masks)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    apply_keep(model, masks)
    model.train()
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(X_train), generator=generator)
        for start in range(0, len(X_train), batch_size):
            if should_stop is not None and should_stop():
                model.eval()
                raise Stopped()
            if on_step is not None:
                new_masks = on_step(step)
                if new_masks is not None:
                    masks = dict(new_masks)
                    apply_keep(model, masks)
            idx = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(X_train[idx]), y_train[idx]).backward()
            with torch.no_grad():
                for name, mask in masks.items():
                    grad = params[name].grad
                    if grad is not None:
                        grad.mul_(mask)
            optimizer.step()
            apply_keep(model, masks)
            step += 1
    return model.eval()


MasksAt = Callable[[float], dict[str, torch.Tensor]]
Train = Callable[..., Any]  # train(model, masks, on_step=None): masked training with the recipe's settings
Report = Callable[[float, str], None]


def run_gradual(
    work: nn.Module,
    masks_at: MasksAt,
    train: Train,
    total_steps: int,
    target: float,
    initial: float,
    pruning_steps: int,
    history: list[dict[str, Any]],
    report: Report,
) -> dict[str, torch.Tensor]:
    """Gradual pruning (Zhu & Gupta 2017) during one training run of ``total_steps``; returns the
    final masks (landing exactly on ``target``)."""
    t0, dt = gradual_timing(total_steps, pruning_steps)
    state: dict[str, Any] = {"masks": None}

    def on_step(step: int) -> dict[str, torch.Tensor] | None:
        if step < t0 or (step - t0) % dt or (step - t0) // dt > pruning_steps:
            return None
        s = zhu_gupta_sparsity(step, target, initial, t0, pruning_steps, dt)
        state["masks"] = and_masks(state["masks"], masks_at(s))
        history.append({"step": step, "sparsity": s})
        report(step / max(total_steps, 1), f"gradual: step {step} of {total_steps}, sparsity {s:.0%}")
        return state["masks"]

    train(work, {}, on_step=on_step)
    return and_masks(state["masks"], masks_at(target))


def run_rounds(
    work: nn.Module,
    masks_at: MasksAt,
    train: Train,
    target: float,
    rounds: int,
    rewind_state: dict[str, torch.Tensor] | None,
    history: list[dict[str, Any]],
    report: Report,
    label: str,
) -> dict[str, torch.Tensor]:
    """Rounds of prune (the same fraction of what remains), optionally rewind, train: iterative
    pruning (Han et al. 2015), or the lottery ticket's with ``rewind_state`` (Frankle & Carbin 2019)."""
    masks = None
    sparsities = round_sparsities(target, rounds)
    for i, s in enumerate(sparsities, start=1):
        masks = and_masks(masks, masks_at(s))
        if rewind_state is not None:
            work.load_state_dict(rewind_state)
        train(work, masks)
        history.append({"round": i, "sparsity": s})
        report(
            i / (len(sparsities) + (1 if rewind_state is not None else 0)),
            f"{label}: round {i} of {len(sparsities)}, sparsity {s:.0%}",
        )
    assert masks is not None
    return masks


class _RewindReached(Exception):
    pass


def rewound_state(
    dense: nn.Module, init_state: dict[str, torch.Tensor], iteration: int, train_steps: Callable[..., Any]
) -> dict[str, torch.Tensor]:
    """The weights a lottery ticket rewinds to: ``init_state``, or those after ``iteration`` steps
    of dense training from it. ``dense`` is a private copy of the model (loaded and trained here);
    ``train_steps(model, on_step)`` trains it with the recipe's settings for enough epochs."""
    state = {k: v.clone() for k, v in init_state.items()}
    if iteration == 0:
        return state
    dense.load_state_dict(state)

    def on_step(step: int) -> None:
        if step >= iteration:
            raise _RewindReached()

    try:  # noqa: SIM105 (contextlib is one import more for the standalone script)
        train_steps(dense, on_step)
    except _RewindReached:
        pass
    return {k: v.detach().clone() for k, v in dense.state_dict().items()}
