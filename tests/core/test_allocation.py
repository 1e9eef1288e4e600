"""Rules of global structured allocation (pruning_core.allocation through compute_masks/sweep).

Scores, costs, widths and the weights a set of kept neurons leaves are recomputed here from the
layers' shapes (the `cases` chains feed each layer from the previous one), not with the engine.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from core_helpers import FAST, NORM_STRUCTURED, SAMPLES, STRUCTURED, Case, cases, layers, row_keep
from hypothesis import given
from hypothesis import strategies as st

import sample_models
from pruning_core import allocation, compute_masks, sweep
from pruning_core.masks import MaskPlan


def chain(case: Case) -> list[str]:
    return list(layers(case.model))


def kept_neurons(case: Case, masks) -> dict[str, torch.Tensor]:
    return {name: row_keep(masks[f"{name}.weight"]) for name in chain(case)}


def remaining_weights(case: Case, kept: dict[str, torch.Tensor]) -> int:
    """Linear/Conv weights left once removed neurons and their consumers' columns are gone."""
    mods, names, total = layers(case.model), chain(case), 0
    for i, name in enumerate(names):
        weight = mods[name].weight
        kept_in = weight.shape[1]
        if i > 0:
            previous = kept[names[i - 1]]
            kept_in = int(previous.sum()) * (weight.shape[1] // previous.numel())
        total += int(kept[name].sum()) * kept_in * math.prod(weight.shape[2:])
    return total


def independent_priorities(case: Case, method: str) -> dict[str, torch.Tensor]:
    """score / ||layer scores||_2 / cost ** COST_EXPONENT for every layer but the output layer."""
    mods, names = layers(case.model), chain(case)
    p = 1 if method == "structured-l1" else 2
    result = {}
    for i, name in enumerate(names[:-1]):
        weight = mods[name].weight.detach().double()
        scores = weight.reshape(weight.shape[0], -1).norm(p=p, dim=1)
        consumer = mods[names[i + 1]].weight
        cost = weight[0].numel() + (mods[name].bias is not None) + (2 if name in case.norms else 0)
        cost += consumer.shape[0] * (consumer.shape[1] // weight.shape[0]) * math.prod(consumer.shape[2:])
        result[name] = scores / scores.norm().clamp_min(1e-12) / cost**allocation.COST_EXPONENT
    return result


def floor_width(width: int) -> int:
    return max(1, math.ceil(allocation.MIN_WIDTH_FRACTION * width - 1e-9))


levels = st.lists(st.floats(0.0, 0.99, allow_nan=False), min_size=2, max_size=5, unique=True).map(sorted)


@FAST
@given(case=cases(), sparsities=levels, method=st.sampled_from(STRUCTURED))
def test_global_structured_masks_are_nested_as_sparsity_rises(case: Case, sparsities, method):
    plan = MaskPlan.build(case.model, method)
    kept = [kept_neurons(case, m) for m in plan.masks_for_levels(sparsities, "global")]
    for lower, higher in zip(kept, kept[1:]):
        for name in chain(case):
            assert not (higher[name] & ~lower[name]).any(), f"{name} regrew a neuron as sparsity rose"
    # Building the plan again (a fresh removal order) gives the same masks.
    again = compute_masks(case.model, method, "global", sparsities[-1])
    assert all(torch.equal(kept[-1][n], row_keep(again[f"{n}.weight"])) for n in chain(case))


@FAST
@given(case=cases(), s=st.floats(0.0, 0.99, allow_nan=False), method=st.sampled_from(NORM_STRUCTURED))
def test_no_pruned_neuron_outranks_a_kept_one_unless_its_layer_is_at_minimum_width(case: Case, s, method):
    kept = kept_neurons(case, compute_masks(case.model, method, "global", s))
    keys = independent_priorities(case, method)
    pruned = [float(keys[n][~kept[n]].max()) for n in keys if (~kept[n]).any()]
    if not pruned:
        return
    highest_pruned = max(pruned)
    for name, key in keys.items():
        at_floor = int(kept[name].sum()) == floor_width(key.numel())
        if not at_floor:
            lowest_kept = float(key[kept[name]].min())
            assert lowest_kept >= highest_pruned * (1 - 1e-6), (name, lowest_kept, highest_pruned)


@FAST
@given(case=cases(), s=st.floats(0.0, 0.99, allow_nan=False), method=st.sampled_from(STRUCTURED))
def test_every_layer_keeps_its_minimum_width_and_the_output_layer_keeps_all(case: Case, s, method):
    kept = kept_neurons(case, compute_masks(case.model, method, "global", s))
    names = chain(case)
    for name in names[:-1]:
        assert int(kept[name].sum()) >= floor_width(kept[name].numel()), name
    assert bool(kept[names[-1]].all())


@FAST
@given(case=cases(), s=st.floats(0.0, 0.99, allow_nan=False), method=st.sampled_from(STRUCTURED))
def test_global_structured_removes_the_target_share_of_weights_counting_downstream_columns(case: Case, s, method):
    kept = kept_neurons(case, compute_masks(case.model, method, "global", s))
    mods, names = layers(case.model), chain(case)
    total = sum(m.weight.numel() for m in mods.values())
    removed = total - remaining_weights(case, kept)
    budget = round(s * total)
    # One removal takes at most a whole row plus its consumer's column block.
    biggest_step = max(
        mods[n].weight[0].numel() + mods[names[i + 1]].weight.numel() // mods[n].weight.shape[0]
        for i, n in enumerate(names[:-1])
    )
    everything_allowed = all(int(kept[n].sum()) == floor_width(kept[n].numel()) for n in names[:-1])
    if not everything_allowed:
        assert abs(removed - budget) <= biggest_step / 2 + 1e-9, (removed, budget)
    else:
        assert removed <= budget + biggest_step / 2


def binomial_se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-4) / n)


@pytest.mark.parametrize("method", NORM_STRUCTURED)
@pytest.mark.parametrize("name", SAMPLES)
def test_global_structured_at_30_percent_is_no_worse_than_layerwise_at_the_same_parameter_count(name, method):
    sample = sample_models.load_sample(name)
    fine = [i / 40 for i in range(39)]
    layerwise = sweep(sample.model, sample.data, [method], fine, scope="layerwise", generalisation=False)
    layerwise = layerwise.sort_values("effective_params")
    (row,) = sweep(sample.model, sample.data, [method], [0.3], scope="global", generalisation=False).itertuples()
    reference = float(np.interp(row.effective_params, layerwise["effective_params"], layerwise["accuracy"]))
    noise = 2 * binomial_se(reference, len(sample.data.y_test))
    assert row.accuracy >= reference - noise, (row.accuracy, reference, noise)
    assert row.effective_sparsity == pytest.approx(0.3, abs=0.05)
