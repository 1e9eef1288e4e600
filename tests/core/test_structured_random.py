"""Rules of ``structured-random``, the random neuron/filter baseline of Li et al. 2017: one seeded
score per output neuron drawn from its own generator, the same draw an independent reference makes,
and masks that behave like every other structured method's (links, shrink, scopes, sweep)."""

from __future__ import annotations

import pytest
import torch
from core_helpers import FEW, SAMPLES, cases, layers, row_keep, sample_case, snapshot
from hypothesis import given
from hypothesis import strategies as st

import sample_models
from pruning_core import allocation, compute_masks, get_method, shrink, sweep
from pruning_core.export import make_recipe
from pruning_core.script import generate_script

METHOD = "structured-random"


def reference_layerwise_keep(case, sparsity: float, seed: int, exclude=()) -> dict[str, torch.Tensor]:
    """Kept neurons drawn independently: one generator seeded with ``seed``, ``torch.rand(out)`` for
    each pruned layer in module order (not the output layer, not excluded ones), the
    ``round(s * out)`` lowest pruned (at most out - 1)."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for name, module in layers(case.model).items():
        if name == case.output or name in exclude:
            continue
        width = module.weight.shape[0]
        scores = torch.rand(width, generator=generator)
        keep = torch.ones(width, dtype=torch.bool)
        keep[torch.argsort(scores)[: min(round(sparsity * width), width - 1)]] = False
        out[name] = keep
    return out


def kept_neurons(masks) -> dict[str, torch.Tensor]:
    return {k.removesuffix(".weight"): row_keep(v) for k, v in masks.items() if k.endswith(".weight") and v.dim() > 1}


def test_registered_as_a_seeded_structured_method():
    method = get_method(METHOD)
    assert method.granularity == "structured" and method.uses_seed and not method.needs_data
    assert {"global", "layerwise"} <= set(method.scopes)


@FEW
@given(case=cases(), s=st.floats(0.0, 0.99, allow_nan=False), seed=st.integers(0, 2**31 - 1))
def test_layerwise_masks_equal_an_independent_draw_per_layer_in_order(case, s, seed):
    kept = kept_neurons(compute_masks(case.model, METHOD, "layerwise", s, seed=seed))
    for name, keep in reference_layerwise_keep(case, s, seed).items():
        assert torch.equal(kept[name], keep), name
    assert bool(kept[case.output].all()), "the output layer's neurons are the classes: never pruned"


@pytest.mark.parametrize("name", SAMPLES)
def test_layerwise_masks_on_samples_equal_the_independent_draw_also_with_exclude(name):
    case = sample_case(name)
    excluded = (next(iter(layers(case.model))),)
    for seed, exclude in ((0, ()), (5, excluded)):
        kept = kept_neurons(compute_masks(case.model, METHOD, "layerwise", 0.5, seed=seed, exclude=exclude))
        for layer, keep in reference_layerwise_keep(case, 0.5, seed, exclude).items():
            assert torch.equal(kept[layer], keep), (layer, seed, exclude)


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_same_seed_same_mask_other_seed_other_mask(scope):
    model = sample_models.load_sample("digits-cnn").model
    a = compute_masks(model, METHOD, scope, 0.5, seed=3)
    b = compute_masks(model, METHOD, scope, 0.5, seed=3)
    c = compute_masks(model, METHOD, scope, 0.5, seed=4)
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_scores_are_one_per_output_neuron_and_leave_the_global_random_state_alone():
    model = sample_models.load_sample("digits-cnn").model
    from pruning_core.masks import MaskPlan

    state = torch.random.get_rng_state()
    plan = MaskPlan.build(model, METHOD, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert [s.shape for s in plan.scores] == [(t.out_channels,) for t in plan.scored]


@pytest.mark.parametrize("name", SAMPLES)
def test_global_scope_spreads_the_cut_over_layers_down_to_their_floor_and_hits_the_target(name):
    """Random scores normalised per layer are the allocation's no-information prior: no layer is
    emptied, none is left untouched at a high target, and the removed share meets the target."""
    sample = sample_models.load_sample(name)
    model, before = sample.model, snapshot(sample.model)
    table = sweep(model, sample.data, [METHOD], [0.3, 0.6, 0.9], scope="global", seed=2, generalisation=False)
    assert list(table["effective_sparsity"]) == pytest.approx([0.3, 0.6, 0.9], abs=0.05)
    kept = kept_neurons(compute_masks(model, METHOD, "global", 0.9, seed=2))
    output = list(layers(model))[-1]
    for layer, keep in kept.items():
        if layer == output:
            assert bool(keep.all())
            continue
        assert int(keep.sum()) >= allocation.min_width(keep.numel()), layer
        assert int((~keep).sum()) > 0, f"{layer} untouched at 90 %"
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_shrunk_model_computes_what_the_masked_model_computes(scope):
    case = sample_case("digits-cnn")
    from pruning_core import apply_masks

    masks = compute_masks(case.model, METHOD, scope, 0.6, seed=9)
    with torch.no_grad():
        expected = apply_masks(case.model, masks)(case.x)
        got = shrink(case.model, masks)(case.x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_refused_cleanly_by_the_standalone_script_generator():
    with pytest.raises(ValueError, match=METHOD):
        generate_script(make_recipe("digits-mlp", METHOD, "layerwise", 0.5))
