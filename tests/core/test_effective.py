"""Rules of effective accounting (pruning_core.effective and the sweep's effective columns).

Every figure is checked against an outside truth: the physically shrunk model's own parameters and
multiply-adds (counted here with hooks, not the engine's counters), the model's outputs once
everything called dead is zeroed, and, for MLPs, reachability in the model with |w| everywhere.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from core_helpers import FAST, FEW, SAMPLES, Case, cases, layers, row_keep
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import sample_models
from pruning_core import compute_masks, shrink, sweep
from pruning_core.effective import Dataflow, effective_counts
from pruning_core.masks import apply_masks


def independent_size(model: nn.Module, x: torch.Tensor) -> tuple[int, int, int]:
    """(parameters, Linear/Conv weights, multiply-adds per sample) of ``model``, counted with forward
    hooks: Linear in*out, Conv out_elements * in_per_group * prod(kernel)."""
    macs = 0

    def hook(module, inputs, output):
        nonlocal macs
        if isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features
        else:
            macs += output[0].numel() * module.weight[0].numel()

    handles = [m.register_forward_hook(hook) for m in layers(model).values()]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for handle in handles:
            handle.remove()
    params = sum(p.numel() for p in model.parameters())
    weights = sum(m.weight.numel() for m in layers(model).values())
    return params, weights, macs


@pytest.mark.parametrize("scope", ["layerwise", "global"])
@pytest.mark.parametrize("name", SAMPLES)
def test_structured_effective_params_and_macs_equal_the_shrunk_models(name, scope):
    sample = sample_models.load_sample(name)
    levels = [0.3, 0.5, 0.8]
    table = sweep(sample.model, sample.data, ["structured-l1"], levels, scope=scope, generalisation=False)
    dense_params, dense_weights, dense_macs = independent_size(sample.model, sample.data.X_test)
    for level, (_, row) in zip(levels, table.iterrows(), strict=True):
        small = shrink(sample.model, compute_masks(sample.model, "structured-l1", scope, level))
        params, weights, macs = independent_size(small, sample.data.X_test)
        assert row["effective_params"] == params, (level, row["effective_params"], params)
        assert row["effective_macs"] == pytest.approx(macs), level
        assert row["effective_sparsity"] == pytest.approx(1 - weights / dense_weights, abs=1e-12)
        assert row["theoretical_speedup"] == pytest.approx(dense_macs / macs)
        assert row["compression_ratio"] == pytest.approx(dense_params / params)
        # Removing neurons takes their consumers' columns too: more goes than the zeros show.
        assert row["effective_sparsity"] > row["actual_sparsity"]
        assert row["effective_params"] < row["nonzero_params"]
        assert row["effective_sparse_bytes"] <= row["dense_bytes"] * params / dense_params


@FAST
@given(case=cases(), s=st.sampled_from([0.2, 0.5, 0.8]), method=st.sampled_from(["structured-l1", "structured-l2"]))
def test_structured_effective_counts_equal_the_shrunk_model_on_random_models(case: Case, s, method):
    masks = compute_masks(case.model, method, "layerwise", s)
    small = shrink(case.model, masks)
    params = dict(apply_masks(case.model, masks).named_parameters())
    counts = effective_counts(Dataflow.of(case.model), params)
    shrunk = dict(small.named_parameters())
    for name, n in counts.nonzero.items():
        assert n == int(torch.count_nonzero(shrunk[name])), name
        assert counts.shapes[name] == tuple(shrunk[name].shape), name


def random_masks(model: nn.Module, density: float, seed: int) -> dict[str, torch.Tensor]:
    """Bernoulli keep-masks on every parameter (weights, biases, BatchNorm), from a private generator."""
    generator = torch.Generator().manual_seed(seed)
    return {n: torch.rand(p.shape, generator=generator) < density for n, p in model.named_parameters()}


def zero_the_dead(case: Case, masked: nn.Module, counts) -> nn.Module:
    """A copy of ``masked`` with everything the counts call dead set to zero, done by hand here."""
    reduced = copy.deepcopy(masked)
    mods = layers(reduced)
    names = list(mods)
    with torch.no_grad():
        for i, name in enumerate(names):
            module = mods[name]
            dead = counts.removed[name].clone()
            norm_name = case.norms.get(name)
            norm = reduced.get_submodule(norm_name) if norm_name else None
            row_dead = dead | (norm.weight == 0) if norm is not None else dead
            module.weight[row_dead] = 0
            if module.bias is not None:
                module.bias[row_dead] = 0
            if norm is not None:
                norm.weight[dead] = 0
                norm.bias[dead] = 0
            if i > 0:  # the chains built by `cases` feed each layer from the previous one
                previous = counts.removed[names[i - 1]]
                span = module.weight.shape[1] // previous.numel()
                module.weight[:, previous.repeat_interleave(span)] = 0
    return reduced


@FAST
@given(case=cases(), density=st.sampled_from([0.15, 0.3, 0.6]), seed=st.integers(0, 2**16))
def test_zeroing_everything_called_dead_leaves_the_outputs_unchanged(case: Case, density, seed):
    masked = apply_masks(case.model, random_masks(case.model, density, seed)).eval()
    counts = effective_counts(Dataflow.of(case.model), dict(masked.named_parameters()))
    reduced = zero_the_dead(case, masked, counts)
    x = torch.randn((32, *case.x.shape[1:]), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        torch.testing.assert_close(reduced(x), masked(x), rtol=1e-5, atol=1e-6)
    for name, n in counts.nonzero.items():
        assert n == int(torch.count_nonzero(dict(reduced.named_parameters())[name])), name


def needed_weights_by_reachability(model: nn.Module) -> dict[str, int]:
    """Weights of an MLP that lie on a path of nonzero weights (or start at a nonzero bias) and reach
    the output: forward and backward through the model with |w|, |b| and all-ones inputs."""
    absolute = copy.deepcopy(model)
    with torch.no_grad():
        for p in absolute.parameters():
            p.abs_()
    mods = layers(absolute)
    outputs: dict[str, torch.Tensor] = {}
    inputs: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(module, args, output):
            inputs[name] = args[0]
            output.retain_grad()
            outputs[name] = output

        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in mods.items()]
    x = torch.ones(1, next(iter(mods.values())).weight.shape[1])
    absolute(x).sum().backward()
    for handle in handles:
        handle.remove()
    needed = {}
    for name, module in mods.items():
        live_in = inputs[name][0] > 0
        used_out = outputs[name].grad[0] > 0
        nonzero = module.weight != 0
        needed[f"{name}.weight"] = int((nonzero & used_out[:, None] & live_in[None, :]).sum())
    return needed


@FAST
@given(
    case=cases(kinds=("sequential-mlp", "mlp")),
    density=st.sampled_from([0.1, 0.2, 0.4]),
    seed=st.integers(0, 2**16),
)
def test_mlp_effective_weights_are_exactly_those_on_live_paths(case: Case, density, seed):
    masks = {n: m for n, m in random_masks(case.model, density, seed).items() if n.endswith("weight")}
    masked = apply_masks(case.model, masks).eval()
    counts = effective_counts(Dataflow.of(case.model), dict(masked.named_parameters()))
    needed = needed_weights_by_reachability(masked)
    for name, n in needed.items():
        assert counts.nonzero[name] == n, name


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn", "mnist1d-cnn"])
def test_effective_equals_direct_for_the_dense_model_and_never_counts_less_removed(name):
    sample = sample_models.load_sample(name)
    table = sweep(
        sample.model, sample.data, ["magnitude", "random"], [0.0, 0.5, 0.95], scope="layerwise", generalisation=False
    )
    dense = table[table["target_sparsity"] == 0.0]
    assert (dense["effective_sparsity"] == dense["actual_sparsity"]).all()
    assert (dense["effective_params"] == dense["nonzero_params"]).all()
    assert (table["effective_sparsity"] >= table["actual_sparsity"]).all()
    assert (table["effective_params"] <= table["nonzero_params"]).all()
    assert (table["effective_macs"] <= table["direct_macs"] + 1e-6).all()
    assert (table["theoretical_speedup"] >= table["direct_speedup"] - 1e-12).all()


@FEW
@given(case=cases(), density=st.sampled_from([0.1, 0.3]), seed=st.integers(0, 2**16))
def test_effective_counts_never_modify_the_parameters_they_read(case: Case, density, seed):
    masked = apply_masks(case.model, random_masks(case.model, density, seed))
    before = {n: p.detach().clone() for n, p in masked.named_parameters()}
    effective_counts(Dataflow.of(case.model), dict(masked.named_parameters()))
    for n, p in masked.named_parameters():
        assert torch.equal(p, before[n]), n


def test_a_structured_layer_keeps_its_kept_rows_whole():
    # The rows shrink keeps are exactly the rows any weight of the mask keeps.
    sample = sample_models.load_sample("digits-cnn")
    masks = compute_masks(sample.model, "structured-l1", "global", 0.5)
    counts = effective_counts(Dataflow.of(sample.model), dict(apply_masks(sample.model, masks).named_parameters()))
    for name in ("conv1", "conv2", "fc1"):
        assert torch.equal(~counts.removed[name], row_keep(masks[f"{name}.weight"]))
    assert math.prod(counts.shapes["fc1.weight"]) == counts.nonzero["fc1.weight"]
