"""Rules of the "random, same allocation" control: in global scope it prunes exactly as many weights
in each layer as global magnitude (checked against torch.nn.utils.prune), but other weights, at
random and seeded; in every other scope it is plain random."""

from __future__ import annotations

import pytest
import torch
from core_helpers import FEW, SAMPLES, assert_state_unchanged, cases, pruned_count, snapshot, torch_global_l1
from hypothesis import given
from hypothesis import strategies as st

import sample_models
from pruning_core import compute_masks, get_method
from pruning_core.export import make_recipe
from pruning_core.script import generate_script

LEVELS = [0.0, 0.2, 0.5, 0.8, 0.9, 0.97]


@pytest.mark.parametrize("name", SAMPLES)
def test_global_per_layer_counts_equal_magnitudes_at_every_level_and_the_weights_differ(name):
    model = sample_models.load_sample(name).model
    before = snapshot(model)
    differs = False
    for level in LEVELS:
        reference = torch_global_l1(model, level)  # PyTorch's global magnitude, independently
        matched = compute_masks(model, "random-matched", "global", level, seed=0)
        for param, mask in reference.items():
            assert pruned_count(matched[param]) == pruned_count(mask), f"{name} {param} at {level}"
            if 0 < pruned_count(mask) < mask.numel() and not torch.equal(matched[param], mask):
                differs = True
    assert differs, "random-matched picked magnitude's own weights"
    assert_state_unchanged(model, before, "random-matched")


@FEW
@given(case=cases(), level=st.floats(0.0, 0.99), seed=st.integers(0, 1000))
def test_any_model_global_counts_equal_magnitudes(case, level, seed):
    reference = torch_global_l1(case.model, level)
    matched = compute_masks(case.model, "random-matched", "global", level, seed=seed)
    for param, mask in reference.items():
        assert pruned_count(matched[param]) == pruned_count(mask)


def test_seeded_same_seed_same_mask_other_seed_other_mask():
    model = sample_models.load_sample("digits-mlp").model
    a = compute_masks(model, "random-matched", "global", 0.7, seed=3)
    b = compute_masks(model, "random-matched", "global", 0.7, seed=3)
    c = compute_masks(model, "random-matched", "global", 0.7, seed=4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("scope", ["layerwise", "erk"])
def test_other_scopes_are_plain_random(scope):
    model = sample_models.load_sample("digits-cnn").model
    for level in (0.3, 0.8):
        matched = compute_masks(model, "random-matched", scope, level, seed=2)
        plain = compute_masks(model, "random", scope, level, seed=2)
        assert all(torch.equal(matched[k], plain[k]) for k in plain)


def test_registered_with_its_label_and_carried_by_the_standalone_script():
    method = get_method("random-matched")
    assert method.label == "Random (magnitude's allocation)"
    assert method.uses_seed and method.granularity == "unstructured"
    assert "random-matched" in generate_script(make_recipe("digits-mlp", "random-matched", "global", 0.5))
