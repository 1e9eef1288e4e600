"""The driver of a generated standalone script: builds masks with ``pruning_core.kernels`` as the
recipe in ``SPEC`` says, and applies them with ``torch.nn.utils.prune``.

``pruning_core.script.generate_script`` embeds this module's text after the kernels' text and the
recipe's ``SPEC``, without the block marked "PruneLab only" below (which gives the module the same
names inside PruneLab, so it is linted and type-checked as a module of its own). It computes every
mask the way the engine's ``MaskPlan`` does, with the same kernel calls in the same order, so its
masks equal the engine's element for element. Masks are applied with ``prune.custom_from_mask``
then made permanent with ``prune.remove`` (for every method: ``l1_unstructured`` and friends break
ties inside ``topk`` their own way, which would not be bit-identical on tied scores).
"""

import argparse
import copy
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

# >>> PruneLab only: in a generated script, the kernels' text and the recipe's SPEC come first.
from pruning_core.kernels import (
    activation_statistics,
    apply_keep,
    bn_scale_scores,
    erk_sparsities,
    lowest_k_keep,
    magnitude_scores,
    make_optimizer,
    masked_training,
    matched_random_keep,
    n_to_prune,
    neuron_mask,
    nm_keep,
    prepare_copy,
    random_scores,
    removal_cut,
    removal_kept,
    removal_order,
    rewound_state,
    row_wise_keep,
    run_gradual,
    run_rounds,
    steps_per_epoch,
    structured_layer_keep,
    structured_norms,
    synflow_keep,
    synflow_linearise,
    taylor_scores,
    wanda_scores,
)

SPEC: dict[str, Any] = {}
# <<< PruneLab only

Masks = dict[str, torch.Tensor]
DATA_DRIVEN = ("taylor", "wanda", "apoz", "mean-activation")


def _pruned_names() -> list[str]:
    return [f"{layer}.weight" for layer in SPEC["pruned"]]


def _fractions(sparsity: float | None) -> float | list[float]:
    """One global fraction (scope global) or one fraction per pruned layer, as the engine allocates."""
    scope, pruned = SPEC["scope"], SPEC["pruned"]
    if scope == "per-layer":
        return [SPEC["layer_sparsity"][layer] for layer in pruned]
    s = SPEC["sparsity"] if sparsity is None else sparsity
    if scope == "global":
        return s
    if scope == "erk":
        by_layer = erk_sparsities({layer: tuple(SPEC["shapes"][f"{layer}.weight"]) for layer in pruned}, s)
        return [by_layer[layer] for layer in pruned]
    return [s] * len(pruned)


def _scores(model: nn.Module, X: torch.Tensor | None, y: torch.Tensor | None) -> list[torch.Tensor]:
    """The method's scores of every pruned layer, as float32 (what the engine ranks)."""
    method, names = SPEC["method"], _pruned_names()
    params = dict(model.named_parameters())
    weights = [params[name] for name in names]
    if method == "magnitude" or method.startswith("nm-"):
        scores = magnitude_scores(weights)
    elif method in ("random", "random-matched"):
        scores = random_scores([w.shape for w in weights], SPEC["seed"])
    elif method in ("structured-l1", "structured-l2"):
        scores = structured_norms(weights, SPEC["p"])
    elif method == "bn-scale":
        modules = dict(model.named_modules())
        norm_of = SPEC["norm_of"]
        gammas = [modules[norm_of[layer]].weight if layer in norm_of else None for layer in SPEC["pruned"]]
        scores = bn_scale_scores(weights, gammas)
    elif method == "taylor":
        scores = taylor_scores(prepare_copy(copy.deepcopy(model)), names, X, y)
    elif method == "wanda":
        scores = wanda_scores(prepare_copy(copy.deepcopy(model)), SPEC["pruned"], X)
    elif method in ("apoz", "mean-activation"):
        stats = activation_statistics(prepare_copy(copy.deepcopy(model)), SPEC["watch"], X, method)
        scores = [1 - zeros if method == "apoz" else mean for zeros, mean in stats]
    else:
        raise ValueError(f"this script cannot score method {method!r}")
    return [s.detach().to(torch.float32) for s in scores]


def compute_masks(
    model: nn.Module, sparsity: float | None = None, X: torch.Tensor | None = None, y: torch.Tensor | None = None
) -> Masks:
    """Keep-masks (True = kept) of every pruned parameter at ``sparsity`` (None: the recipe's),
    from the current weights of ``model`` (not modified) and the calibration samples ``X``, ``y``."""
    method, names, granularity = SPEC["method"], _pruned_names(), SPEC["granularity"]
    params = dict(model.named_parameters())
    fractions = _fractions(sparsity)
    masks: Masks = {}
    if method == "synflow":
        work = synflow_linearise(prepare_copy(copy.deepcopy(model), torch.float64))
        x = torch.ones((1, *SPEC["input_shape"]), dtype=torch.float64)
        masks = dict(zip(names, synflow_keep(work, names, x, fractions, SPEC["synflow_rounds"]), strict=True))
    elif granularity == "n:m":
        n, m = SPEC["n_m"]
        masks = {name: nm_keep(s, n, m) for name, s in zip(names, _scores(model, X, y), strict=True)}
    elif granularity == "structured":
        scores = _scores(model, X, y)
        if isinstance(fractions, list):
            kept = [structured_layer_keep(s, f) for s, f in zip(scores, fractions, strict=True)]
        else:
            layers, widths = SPEC["structured_layers"], SPEC["widths"]
            steps, cumulative = removal_order(scores, layers, widths, SPEC["min_width_fraction"], SPEC["cost_exponent"])
            cut = removal_cut(cumulative, SPEC["total_weights"], fractions)
            kept = removal_kept([s.numel() for s in scores], steps, cut)
        for layer, name, keep in zip(SPEC["pruned"], names, kept, strict=True):
            masks[name] = neuron_mask(keep, params[name].shape)
            for linked in SPEC["linked"][layer]:
                masks[linked] = keep.clone()
    else:
        scores = _scores(model, X, y)
        if isinstance(fractions, list):
            if method == "wanda":
                kept_masks = [row_wise_keep(s, f) for s, f in zip(scores, fractions, strict=True)]
            else:
                kept_masks = [
                    lowest_k_keep([s], n_to_prune(f, s.numel()))[0] for s, f in zip(scores, fractions, strict=True)
                ]
        elif method == "random-matched":
            kept_masks = matched_random_keep(magnitude_scores([params[name] for name in names]), scores, fractions)
        else:
            kept_masks = lowest_k_keep(scores, n_to_prune(fractions, sum(s.numel() for s in scores)))
        masks = dict(zip(names, kept_masks, strict=True))
    for layer in SPEC["targets"]:  # every target has a mask, as in the engine: all kept if not pruned
        name = f"{layer}.weight"
        masks.setdefault(name, torch.ones(params[name].shape, dtype=torch.bool))
    return masks


def calibration(X: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The recipe's calibration samples out of the training split ``X``, ``y`` (in the split's order):
    the first ``samples``, or ``samples`` drawn with a seeded generator (order "shuffled")."""
    spec = SPEC["calibration"]
    n = min(spec["samples"], len(X))
    if spec["order"] == "first":
        index = torch.arange(n)
    else:
        index = torch.randperm(len(X), generator=torch.Generator().manual_seed(spec["seed"]))[:n]
    return X[index], (y[index] if y is not None else None)


def run_schedule(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, init_state: dict[str, torch.Tensor] | None
) -> Masks:
    """Prune and fine-tune ``model`` in place as the recipe's schedule says; return the final masks."""
    schedule, ft = SPEC["schedule"], SPEC["schedule"]["finetune"]
    X_calib, y_calib = calibration(X, y)

    def masks_at(s: float | None) -> Masks:
        return compute_masks(model, s, X_calib, y_calib)

    def train(net: nn.Module, masks: Masks, on_step: Callable | None = None, epochs: int | None = None) -> nn.Module:
        optimizer = make_optimizer(net, ft["optimizer"], ft["lr"], ft["momentum"], ft["weight_decay"])
        epochs = ft["epochs"] if epochs is None else epochs
        return masked_training(net, masks, X, y, optimizer, epochs, ft["batch_size"], ft["seed"], on_step)

    def quiet(fraction: float, message: str) -> None:
        pass

    kind, target = schedule["kind"], SPEC["sparsity"]
    if kind == "oneshot":
        masks = masks_at(None)
        if ft["epochs"] > 0:
            train(model, masks)
    elif kind == "iterative":
        masks = run_rounds(model, masks_at, train, target, schedule["rounds"], None, [], quiet, kind)
    elif kind == "gradual":
        total = ft["epochs"] * steps_per_epoch(len(X), ft["batch_size"])
        masks = run_gradual(
            model, masks_at, train, total, target, schedule["initial_sparsity"], schedule["pruning_steps"], [], quiet
        )
    elif kind == "lottery":
        iteration = schedule["rewind_iteration"]
        epochs = -(-iteration // steps_per_epoch(len(X), ft["batch_size"]))
        assert init_state is not None  # apply_pruning checked it
        rewind = rewound_state(
            copy.deepcopy(model), init_state, iteration, lambda net, on_step: train(net, {}, on_step, epochs)
        )
        masks = run_rounds(model, masks_at, train, target, schedule["rounds"], rewind, [], quiet, kind)
    else:
        raise ValueError(f"this script cannot run schedule {kind!r}")
    apply_keep(model, masks)
    return masks


def _check_shapes(found: dict[str, torch.Tensor | None], what: str) -> None:
    """Refuse a model, state dict or masks file that is not the recipe's architecture, naming what differs."""
    missing = [name for name, tensor in found.items() if tensor is None]
    if missing:
        raise ValueError(f"{what} has no {', '.join(missing)}, which the recipe prunes: it is not a {SPEC['model']}")
    wrong = [
        f"{name} is {tuple(t.shape)}, expected {tuple(SPEC['shapes'][name])}"
        for name, t in found.items()
        if t is not None and tuple(t.shape) != tuple(SPEC["shapes"][name])
    ]
    if wrong:
        raise ValueError(f"{what} does not match a {SPEC['model']}: {'; '.join(wrong)}")


def _check_data(X: torch.Tensor | None, y: torch.Tensor | None, needs_labels: bool) -> None:
    """Refuse data that cannot be the recipe's training split, naming what is wrong."""
    if X is None or (needs_labels and y is None):
        raise ValueError(f"{SPEC['needs_data_because']}: apply_pruning(model, X_train, y_train)")
    if tuple(X.shape[1:]) != tuple(SPEC["input_shape"]):
        raise ValueError(f"X_train samples are {tuple(X.shape[1:])}, expected {tuple(SPEC['input_shape'])}")
    if y is not None and len(y) != len(X):
        raise ValueError(f"X_train has {len(X)} samples but y_train has {len(y)}")


def load_masks(masks: dict[str, torch.Tensor]) -> Masks:
    """Masks read from a masks file, checked against the recipe's parameters."""
    unknown = sorted(set(masks) - set(SPEC["shapes"]))
    if unknown:
        raise ValueError(f"the masks file names {', '.join(unknown)}, which a {SPEC['model']} recipe does not prune")
    _check_shapes({name: masks.get(name) for name in SPEC["masked"]}, "the masks file")
    return {name: mask.to(torch.bool) for name, mask in masks.items()}


def _prune_permanently(model: nn.Module, masks: Masks) -> None:
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        path, _, attr = name.rpartition(".")
        prune.custom_from_mask(modules[path], attr, mask)
        prune.remove(modules[path], attr)  # weight = weight_orig * weight_mask, a plain parameter again


def apply_pruning(
    model: nn.Module,
    X_train: torch.Tensor | None = None,
    y_train: torch.Tensor | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
    masks: dict[str, torch.Tensor] | None = None,
    report: Callable[[str], None] | None = print,
) -> nn.Module:
    """Prune ``model`` in place as the recipe says, make it permanent with torch.nn.utils.prune,
    and return it. With ``masks`` (from a masks file) those masks are applied as they are;
    otherwise they are computed: a data-driven criterion reads its calibration samples out of
    ``X_train``, ``y_train`` (the training split in its order), and a recipe that trains trains on
    them; a lottery ticket rewinds to ``init_state``. ``report`` gets one line saying which was done."""
    modules = dict(model.named_modules())

    def parameter(name: str) -> torch.Tensor | None:
        path, _, attr = name.rpartition(".")
        return getattr(modules[path], attr, None) if path in modules else None

    _check_shapes({name: parameter(name) for name in SPEC["shapes"]}, "the model")
    if masks is not None:
        chosen = load_masks(masks)
        _prune_permanently(model, chosen)
        done = f"applied the {len(chosen)} masks given (not recomputed)"
    else:
        if SPEC["needs_data_because"]:
            _check_data(X_train, y_train, SPEC["needs_labels"])
        if SPEC["schedule"] is not None:
            if SPEC["schedule"]["kind"] == "lottery" and init_state is None:
                raise ValueError("the lottery rewinds to the model's initial weights: pass init_state")
            assert X_train is not None and y_train is not None  # _check_data checked them
            chosen = run_schedule(model, X_train, y_train, init_state)
        else:
            X, y = calibration(X_train, y_train) if X_train is not None else (None, None)
            chosen = compute_masks(model, None, X, y)
        _prune_permanently(model, chosen)
        done = f"computed the masks with {SPEC['method']} ({SPEC['scope']})"
    model.eval()
    if report is not None:
        report(f"{SPEC['model']}: {done}")
    return model


def _holder_model(state: dict[str, torch.Tensor]) -> nn.Module:
    """A module tree holding copies of the state dict's parameters under their own names."""
    root = nn.Module()
    for name, value in state.items():
        parts = name.split(".")
        module = root
        for part in parts[:-1]:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        setattr(module, parts[-1], nn.Parameter(value.detach().clone(), requires_grad=False))
    return root


def prune_state_dict(state: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None = None) -> dict:
    """The same pruning applied to a state dict: a new dict, other entries copied unchanged. Needs
    ``masks`` for a recipe whose criterion or schedule runs the model (a state dict cannot)."""
    if masks is None and (SPEC["needs_data_because"] or SPEC["method"] == "synflow"):
        raise ValueError(SPEC["needs_model"])
    floating = {k: v for k, v in state.items() if k in SPEC["shapes"]}
    holder = _holder_model(floating)
    apply_pruning(holder, masks=masks, report=None)
    pruned = dict(holder.named_parameters())
    return {key: pruned[key].detach().clone() if key in pruned else value.clone() for key, value in state.items()}


def _error(message: str) -> int:
    print("error: " + " ".join(message.split()), file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Command line: prune a weights file, computing the masks or applying a masks file."""
    parser = argparse.ArgumentParser(description=f"Prune a {SPEC['model']} as a PruneLab recipe describes.")
    parser.add_argument("--weights", required=True, metavar="IN.safetensors", help="the dense weights")
    parser.add_argument("--out", required=True, metavar="OUT.safetensors", help="where to write the pruned weights")
    parser.add_argument("--masks", metavar="MASKS.safetensors", help="apply these masks instead of computing them")
    args = parser.parse_args(argv)
    try:
        from safetensors.torch import load_file, save_file
    except ImportError:
        return _error("reading and writing .safetensors files needs safetensors: pip install safetensors")
    loaded = {}
    for what, path in (("weights", args.weights), ("masks", args.masks)):
        if path is None:
            continue
        try:
            loaded[what] = load_file(path)
        except FileNotFoundError:
            return _error(f"cannot read {path}: no such file")
        except Exception as exc:  # safetensors raises its own error types for a damaged file
            return _error(f"cannot read {path}: not a safetensors file ({exc})")
    try:
        pruned = prune_state_dict(loaded["weights"], loaded.get("masks"))
    except ValueError as exc:
        return _error(f"{args.weights}: {exc}")
    try:
        save_file(pruned, args.out)
    except Exception as exc:  # an unwritable path: OSError or a safetensors error, depending on the version
        return _error(f"cannot write {args.out}: {exc}")
    weights = [pruned[f"{layer}.weight"] for layer in SPEC["targets"]]
    zeros = sum(int((w == 0).sum()) for w in weights)
    how = f"applied the masks in {args.masks}" if args.masks else f"computed the masks with {SPEC['method']}"
    total = sum(w.numel() for w in weights)
    print(
        f"{SPEC['model']} ({SPEC['scope']}): {how}; {zeros / total:.2%} of the target weights are zero; wrote {args.out}"
    )
    return 0
