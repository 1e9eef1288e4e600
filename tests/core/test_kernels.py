"""Rules of ``pruning_core.kernels``: the mask math the engine runs and the standalone script embeds.

The kernels stand alone (torch only), the engine really goes through them (replace one and the
engine changes), and the reference selection equals the engine's fast radix select, ties included.
"""

from __future__ import annotations

import ast
import inspect

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune

import sample_models
from pruning_core import compute_masks, kernels, selection
from pruning_core.finetune import FineTuneConfig
from pruning_core.schedules import Schedule, run_schedule

ALLOWED_IMPORTS = {"__future__", "math", "typing", "collections.abc", "torch", "torch.nn", "torch.nn.functional"}


def test_kernels_import_only_torch_math_and_typing():
    tree = ast.parse(inspect.getsource(kernels))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported <= ALLOWED_IMPORTS, f"kernels import {sorted(imported - ALLOWED_IMPORTS)}"


def test_kernels_source_runs_on_its_own_namespace():
    namespace: dict = {"__name__": "standalone"}
    exec(compile(inspect.getsource(kernels), "kernels", "exec"), namespace)  # noqa: S102 (our own module text)
    assert namespace["n_to_prune"](0.5, 5) == 2


@st.composite
def scores_with_ties(draw):
    sizes = draw(st.lists(st.integers(1, 40), min_size=1, max_size=4))
    levels = draw(st.integers(1, 6))  # few distinct values: many ties
    tensors = [
        torch.tensor(draw(st.lists(st.integers(0, levels), min_size=n, max_size=n)), dtype=torch.float32) / 3
        for n in sizes
    ]
    k = draw(st.integers(0, sum(sizes)))
    return tensors, k


@settings(max_examples=100, deadline=None)
@given(scores_with_ties())
def test_lowest_k_keep_equals_the_engines_radix_select_ties_included(case):
    tensors, k = case
    expected = selection.lowest_k_masks(tensors, [k])[0]
    got = kernels.lowest_k_keep(tensors, k)
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    assert sum(int((~m).sum()) for m in got) == k


def test_lowest_k_keep_prunes_ties_in_order_of_position():
    keep = kernels.lowest_k_keep([torch.zeros(3), torch.zeros(2)], 4)
    assert keep[0].tolist() == [False, False, False] and keep[1].tolist() == [False, True]


@pytest.mark.parametrize("amount", [0.125, 0.375, 0.5, 0.625, 0.3, 0.7])
def test_n_to_prune_counts_as_torch_nn_utils_prune(amount):
    weight = torch.arange(1, 9, dtype=torch.float32)  # 8 elements: x.5 counts round half to even
    module = nn.Linear(8, 1)
    with torch.no_grad():
        module.weight.copy_(weight.reshape(1, 8))
    prune.l1_unstructured(module, "weight", amount=amount)
    assert int((module.weight_mask == 0).sum()) == kernels.n_to_prune(amount, 8)


def test_nm_keep_groups_a_convolution_along_input_channels_at_each_kernel_position():
    scores = torch.rand(3, 8, 2, 2, generator=torch.Generator().manual_seed(0))
    keep = kernels.nm_keep(scores, 2, 4)
    for o in range(3):
        for i in range(2):
            for j in range(2):
                column = scores[o, :, i, j]
                for g in range(2):
                    group = column[4 * g : 4 * g + 4]
                    kept = keep[o, 4 * g : 4 * g + 4, i, j]
                    assert int(kept.sum()) == 2
                    assert set(torch.nonzero(kept).squeeze(1).tolist()) == set(group.topk(2).indices.tolist())


def test_round_sparsities_and_zhu_gupta_are_the_schedules_own():
    from pruning_core import schedules

    assert schedules.round_sparsities is kernels.round_sparsities
    assert schedules.zhu_gupta_sparsity is kernels.zhu_gupta_sparsity
    assert schedules.gradual_timing is kernels.gradual_timing


# The engine runs these kernels: replacing one must change (here: break) what the engine does.
ENGINE_PATHS = {
    "nm_keep": lambda m, d: compute_masks(m, "nm-2:4", "layerwise"),
    "random_scores": lambda m, d: compute_masks(m, "random", "global", 0.5),
    "structured_norms": lambda m, d: compute_masks(m, "structured-l1", "layerwise", 0.5),
    "removal_order": lambda m, d: compute_masks(m, "structured-l2", "global", 0.5),
    "taylor_scores": lambda m, d: compute_masks(
        m, "taylor", "global", 0.5, X_calib=d.X_train[:64], y_calib=d.y_train[:64]
    ),
    "wanda_scores": lambda m, d: compute_masks(m, "wanda", "layerwise", 0.5, X_calib=d.X_train[:64]),
    "activation_statistics": lambda m, d: compute_masks(m, "apoz", "layerwise", 0.5, X_calib=d.X_train[:64]),
    "synflow_keep": lambda m, d: compute_masks(m, "synflow", "global", 0.5, X_calib=d.X_train[:1]),
    "bn_scale_scores": lambda m, d: compute_masks(m, "bn-scale", "layerwise", 0.5),
    "erk_sparsities": lambda m, d: compute_masks(m, "magnitude", "erk", 0.5),
    "n_to_prune": lambda m, d: compute_masks(m, "magnitude", "global", 0.5),
    "masked_training": lambda m, d: run_schedule(
        m, d.X_train, d.y_train, "magnitude", "global", 0.5, Schedule("oneshot", FineTuneConfig(epochs=1))
    ),
    "run_rounds": lambda m, d: run_schedule(
        m, d.X_train, d.y_train, "magnitude", "global", 0.5, Schedule("iterative", FineTuneConfig(epochs=1), rounds=2)
    ),
    "run_gradual": lambda m, d: run_schedule(
        m, d.X_train, d.y_train, "magnitude", "global", 0.5, Schedule("gradual", FineTuneConfig(epochs=1))
    ),
}


class KernelCalled(Exception):
    pass


@pytest.mark.parametrize("kernel", list(ENGINE_PATHS))
def test_the_engine_goes_through_the_kernel(kernel, monkeypatch):
    sample = sample_models.load_sample("digits-mlp")

    def replaced(*args, **kwargs):
        raise KernelCalled(kernel)

    monkeypatch.setattr(kernels, kernel, replaced)
    with pytest.raises(KernelCalled):
        ENGINE_PATHS[kernel](sample.model, sample.data)
