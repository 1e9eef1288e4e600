"""Rules of pruning_core.compute_masks (and apply_masks / shrink / sweep side effects)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from core_helpers import (
    FAST,
    FEW,
    METHODS,
    NM,
    SAMPLES,
    STRUCTURED,
    UNSTRUCTURED,
    assert_state_unchanged,
    cases,
    layers,
    pruned_count,
    row_keep,
    sample_case,
    snapshot,
    sparsities,
    torch_global_l1,
    torch_layerwise_l1,
    torch_ln_structured,
)
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

import pruning_core
from pruning_core import apply_masks, compute_masks, count_params, shrink, sweep

SCOPES = ["global", "layerwise"]


# --- shape of the result ----------------------------------------------------------------------------


@FAST
@given(case=cases(), method=st.sampled_from(METHODS), scope=st.sampled_from(SCOPES), s=sparsities)
def test_masks_are_keyed_by_parameter_name_shaped_like_their_parameter_and_boolean(case, method, scope, s):
    masks = compute_masks(case.model, method=method, scope=scope, sparsity=s)
    params = dict(case.model.named_parameters())
    assert set(masks) <= set(params), f"mask keys that are not parameters: {set(masks) - set(params)}"
    assert {f"{n}.weight" for n in layers(case.model)} <= set(masks), "every prunable weight gets a mask"
    for name, mask in masks.items():
        assert mask.dtype == torch.bool, name
        assert mask.shape == params[name].shape, name


# --- exact sparsity ---------------------------------------------------------------------------------


@FAST
@given(case=cases(), method=st.sampled_from(UNSTRUCTURED), s=sparsities)
def test_layerwise_unstructured_prunes_exactly_round_s_times_n_in_every_tensor(case, method, s):
    masks = compute_masks(case.model, method=method, scope="layerwise", sparsity=s)
    for name, module in layers(case.model).items():
        n = module.weight.numel()
        assert pruned_count(masks[f"{name}.weight"]) == round(s * n), name


@FAST
@given(case=cases(), method=st.sampled_from(UNSTRUCTURED), s=sparsities)
def test_global_unstructured_prunes_exactly_round_s_times_total_over_all_targets(case, method, s):
    masks = compute_masks(case.model, method=method, scope="global", sparsity=s)
    weights = [f"{n}.weight" for n in layers(case.model)]
    total = sum(masks[w].numel() for w in weights)
    assert sum(pruned_count(masks[w]) for w in weights) == round(s * total)


@pytest.mark.parametrize("name", SAMPLES)
def test_global_magnitude_prunes_exactly_round_s_times_total_on_samples(name):
    case = sample_case(name)
    weights = [f"{n}.weight" for n in layers(case.model)]
    for s in (0.1, 0.33, 0.5, 0.9, 0.99):
        masks = compute_masks(case.model, method="magnitude", scope="global", sparsity=s)
        total = sum(masks[w].numel() for w in weights)
        assert sum(pruned_count(masks[w]) for w in weights) == round(s * total), s


# --- nesting ----------------------------------------------------------------------------------------


@FAST
@given(case=cases(), scope=st.sampled_from(SCOPES), a=sparsities, b=sparsities)
def test_magnitude_masks_are_nested_as_sparsity_grows(case, scope, a, b):
    low, high = sorted((a, b))
    masks_low = compute_masks(case.model, method="magnitude", scope=scope, sparsity=low)
    masks_high = compute_masks(case.model, method="magnitude", scope=scope, sparsity=high)
    for name, kept_low in masks_low.items():
        kept_high = masks_high[name]
        assert not (~kept_low & kept_high).any(), f"{name}: a weight pruned at {low} is kept at {high}"


# --- the caller's model is never modified -----------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", SAMPLES)
def test_compute_masks_apply_masks_shrink_and_sweep_leave_the_callers_model_unchanged(name, method):
    case = sample_case(name)
    model, before, training = case.model, snapshot(case.model), case.model.training
    for scope in SCOPES:
        masks = compute_masks(model, method=method, scope=scope, sparsity=0.7)
        assert_state_unchanged(model, before, f"compute_masks({method}, {scope})")
        apply_masks(model, masks)
        assert_state_unchanged(model, before, "apply_masks")
        shrink(model, masks)
        assert_state_unchanged(model, before, "shrink")
    y = torch.zeros(len(case.x), dtype=torch.long)
    sweep(model, (case.x, y), methods=[method], sparsities=[0.0, 0.7])
    assert_state_unchanged(model, before, "sweep")
    assert model.training == training


@FEW
@given(case=cases(), method=st.sampled_from(METHODS), s=sparsities)
def test_no_engine_entry_point_modifies_a_random_callers_model(case, method, s):
    model, before = case.model, snapshot(case.model)
    masks = compute_masks(model, method=method, scope="layerwise", sparsity=s)
    apply_masks(model, masks)
    shrink(model, masks)
    sweep(model, (case.x, case.labels()), methods=[method], sparsities=[s])
    assert_state_unchanged(model, before, "compute_masks/apply_masks/shrink/sweep")


def test_sweep_leaves_a_training_mode_models_batchnorm_buffers_unchanged():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))
    assert model.training
    before = snapshot(model)
    X, y = torch.randn(20, 1, 4, 4), torch.randint(0, 3, (20,))
    sweep(model, (X, y), methods=["magnitude"], sparsities=[0.0, 0.5])
    assert_state_unchanged(model, before, "sweep on a training-mode model")


# --- agreement with torch.nn.utils.prune ------------------------------------------------------------

SAMPLE_LEVELS = (0.1, 0.5, 0.9, 0.97)


def check_structured_matches_torch(model, output, s, p):
    masks = compute_masks(model, method=f"structured-l{p}", scope="layerwise", sparsity=s)
    assert masks[f"{output}.weight"].all(), "structured methods never prune the output layer"
    reference = torch_ln_structured(model, s, p, skip=output)
    for name, module in layers(model).items():
        if name == output:
            continue
        key, out = f"{name}.weight", module.weight.shape[0]
        if round(s * out) < out:
            assert torch.equal(masks[key], reference[key]), f"{key} at {s}"
        else:  # torch empties the layer; the engine keeps exactly its highest-norm neuron
            rows = masks[key].reshape(out, -1)
            assert int(rows.any(1).sum()) == 1 and int(rows.all(1).sum()) == 1, key
            norms = torch.linalg.vector_norm(module.weight.detach().reshape(out, -1), ord=p, dim=1)
            assert rows[int(norms.argmax())].all(), key


@pytest.mark.parametrize("name", SAMPLES)
def test_global_magnitude_equals_torch_global_unstructured_on_samples(name):
    case = sample_case(name)
    for s in SAMPLE_LEVELS:
        masks = compute_masks(case.model, method="magnitude", scope="global", sparsity=s)
        for key, expected in torch_global_l1(case.model, s).items():
            assert torch.equal(masks[key], expected), f"{key} at {s}"


@pytest.mark.parametrize("name", SAMPLES)
def test_layerwise_magnitude_equals_torch_l1_unstructured_on_samples(name):
    case = sample_case(name)
    for s in SAMPLE_LEVELS:
        masks = compute_masks(case.model, method="magnitude", scope="layerwise", sparsity=s)
        for key, expected in torch_layerwise_l1(case.model, s).items():
            assert torch.equal(masks[key], expected), f"{key} at {s}"


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("name", SAMPLES)
def test_layerwise_structured_equals_torch_ln_structured_except_the_output_layer_on_samples(name, p):
    case = sample_case(name)
    for s in SAMPLE_LEVELS:
        check_structured_matches_torch(case.model, case.output, s, p)


@FAST
@given(case=cases(), s=sparsities)
def test_global_magnitude_equals_torch_global_unstructured(case, s):
    masks = compute_masks(case.model, method="magnitude", scope="global", sparsity=s)
    for key, expected in torch_global_l1(case.model, s).items():
        assert torch.equal(masks[key], expected), key


@FAST
@given(case=cases(), s=sparsities)
def test_layerwise_magnitude_equals_torch_l1_unstructured(case, s):
    masks = compute_masks(case.model, method="magnitude", scope="layerwise", sparsity=s)
    for key, expected in torch_layerwise_l1(case.model, s).items():
        assert torch.equal(masks[key], expected), key


@FAST
@given(case=cases(), s=sparsities, p=st.sampled_from([1, 2]))
def test_layerwise_structured_equals_torch_ln_structured_except_the_output_layer(case, s, p):
    check_structured_matches_torch(case.model, case.output, s, p)


# --- structured masks carry biases and BatchNorm entries, and match the shrunk model ----------------


def check_structured_links(case, masks):
    expected_keys = set()
    for name, module in layers(case.model).items():
        weight = masks[f"{name}.weight"]
        expected_keys.add(f"{name}.weight")
        if name == case.output:
            assert weight.all(), "the output layer is never pruned"
            continue
        rows = weight.reshape(weight.shape[0], -1)
        keep = rows.all(1)
        assert torch.equal(keep, rows.any(1)), f"{name}: structured masks keep or drop whole rows"
        linked = [f"{name}.bias"] if module.bias is not None else []
        if name in case.norms:
            linked += [f"{case.norms[name]}.weight", f"{case.norms[name]}.bias"]
        for key in linked:
            assert key in masks, f"{key} is missing from the structured masks"
            assert torch.equal(masks[key], keep), f"{key} differs from {name}'s row-keep vector"
        expected_keys.update(linked)
    extra = set(masks) - expected_keys
    assert all(masks[k].all() for k in extra), f"unexpected pruning in {extra}"


@pytest.mark.parametrize("method", STRUCTURED)
@pytest.mark.parametrize("name", SAMPLES)
def test_structured_masks_include_bias_and_batchnorm_entries_equal_to_the_row_keep_vector_on_samples(name, method):
    case = sample_case(name)
    for scope in SCOPES:
        for s in (0.3, 0.6, 0.9):
            check_structured_links(case, compute_masks(case.model, method=method, scope=scope, sparsity=s))


@FAST
@given(case=cases(), method=st.sampled_from(STRUCTURED), scope=st.sampled_from(SCOPES), s=sparsities)
def test_structured_masks_include_bias_and_batchnorm_entries_equal_to_the_row_keep_vector(case, method, scope, s):
    check_structured_links(case, compute_masks(case.model, method=method, scope=scope, sparsity=s))


def expected_width(case, masks, name):
    """Neurons of ``name`` that must survive shrinking: any weight, bias or BatchNorm entry kept."""
    module = layers(case.model)[name]
    out = module.weight.shape[0]
    if name == case.output:
        return out
    linked = [f"{name}.weight"] + ([f"{name}.bias"] if module.bias is not None else [])
    if name in case.norms:
        linked += [f"{case.norms[name]}.weight", f"{case.norms[name]}.bias"]
    kept = torch.zeros(out, dtype=torch.bool)
    for key in linked:
        mask = masks.get(key)
        kept |= torch.ones(out, dtype=torch.bool) if mask is None else mask.reshape(out, -1).any(1)
    return max(1, int(kept.sum()))


def check_shrink_matches_masked(case, masks):
    small = shrink(case.model, masks)
    masked = apply_masks(case.model, masks).eval()
    with torch.no_grad():
        torch.testing.assert_close(small(case.x), masked(case.x), atol=1e-5, rtol=1e-5)
    small_layers = layers(small)
    widths = {n: expected_width(case, masks, n) for n in layers(case.model)}
    for name, width in widths.items():
        assert small_layers[name].weight.shape[0] == width, name
    if any(widths[n] < m.weight.shape[0] for n, m in layers(case.model).items()):
        assert count_params(small) < count_params(case.model)
    else:
        assert count_params(small) == count_params(case.model)


@pytest.mark.parametrize("name", SAMPLES)
def test_masked_model_computes_what_the_shrunk_model_computes_on_samples(name):
    case = sample_case(name)
    levels = {"structured-l1": (0.25, 0.75), "structured-l2": (0.5, 0.9), "magnitude": (0.95,)}
    for method, method_levels in levels.items():
        for scope in SCOPES:
            for s in method_levels:
                masks = compute_masks(case.model, method=method, scope=scope, sparsity=s)
                check_shrink_matches_masked(case, masks)


@pytest.mark.parametrize("name", SAMPLES)
def test_structured_pruning_then_shrink_removes_parameters_on_samples(name):
    case = sample_case(name)
    masks = compute_masks(case.model, method="structured-l1", scope="layerwise", sparsity=0.5)
    assert count_params(shrink(case.model, masks)) < count_params(case.model)


@FAST
@given(case=cases(), method=st.sampled_from(METHODS), scope=st.sampled_from(SCOPES), s=sparsities)
def test_masked_model_computes_what_the_shrunk_model_computes(case, method, scope, s):
    check_shrink_matches_masked(case, compute_masks(case.model, method=method, scope=scope, sparsity=s))


def test_shrink_refuses_an_activation_that_does_not_map_zero_to_zero():
    """sigmoid(0) = 0.5: a masked neuron still feeds the next layer, so removing it would change the
    output; shrink must refuse with a GraphError (a ValueError) naming the op, not compute something else."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Sigmoid(), nn.Linear(8, 3)).eval()
    masks = compute_masks(model, method="structured-l1", scope="layerwise", sparsity=0.5)
    with pytest.raises(ValueError, match="not known to preserve"):
        shrink(model, masks)


def test_structured_methods_refuse_a_model_whose_only_layer_is_the_output_layer():
    model = nn.Sequential(nn.Linear(4, 3))
    for method in STRUCTURED:
        with pytest.raises(ValueError, match="output layer"):
            compute_masks(model, method=method, sparsity=0.5)


# --- N:M ---------------------------------------------------------------------------------------------


def nm_groups(shape: tuple[int, ...], m: int) -> list[list[tuple[int, ...]]]:
    """Index groups of N:M as sparse tensor cores form them, enumerated element by element: for each
    output row and each kernel position, runs of m consecutive input channels (dim 1); a Linear has
    one position. The last run of a row may be shorter."""
    out, channels, kernel = shape[0], shape[1], shape[2:]
    groups = []
    for o in range(out):
        for position in itertools.product(*(range(k) for k in kernel)):
            for start in range(0, channels, m):
                groups.append([(o, c, *position) for c in range(start, min(start + m, channels))])
    return groups


def check_nm(weight: torch.Tensor, mask: torch.Tensor, n: int, m: int):
    scores = weight.detach().abs()
    groups = nm_groups(tuple(weight.shape), m)
    assert sum(len(g) for g in groups) == weight.numel()
    for group in groups:
        kept = [bool(mask[i]) for i in group]
        assert sum(kept) == min(n, len(group)), f"group {group[0]}..{group[-1]} keeps {sum(kept)} of {len(group)}"
        kept_scores = [float(scores[i]) for i, k in zip(group, kept) if k]
        pruned_scores = [float(scores[i]) for i, k in zip(group, kept) if not k]
        if pruned_scores:
            assert min(kept_scores) >= max(pruned_scores), f"group at {group[0]} keeps a smaller |w| than it prunes"


@pytest.mark.parametrize("method", NM)
@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 3)),
        nn.Sequential(nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 4)),
        nn.Sequential(nn.Linear(10, 7), nn.ReLU(), nn.Linear(7, 2)),
        nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)),
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1)),  # fan-in 27 and 4
        nn.Sequential(nn.Conv1d(2, 4, 2), nn.ReLU(), nn.Conv1d(4, 3, 3)),  # fan-in 4 and 12
        nn.Sequential(nn.Conv2d(8, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 2)),  # 8 and 4 channels per position
        nn.Sequential(nn.Conv2d(6, 3, (2, 3)), nn.ReLU(), nn.Conv2d(3, 2, 1)),  # 6: a short last group
        nn.Sequential(nn.Conv3d(5, 2, 2), nn.ReLU(), nn.Conv3d(2, 2, 1)),
    ],
    ids=["in8", "in16", "in10", "in3", "conv27", "conv1d-4-12", "conv2d-c8", "conv2d-c6", "conv3d-c5"],
)
def test_nm_keeps_n_largest_in_every_group_of_m_consecutive_inputs(model, method):
    n, m = (int(v) for v in method.removeprefix("nm-").split(":"))
    masks = compute_masks(model, method=method, scope="layerwise", sparsity=0.0)
    for name, module in layers(model).items():
        check_nm(module.weight, masks[f"{name}.weight"], n, m)


@FAST
@given(
    data=st.data(),
    fan_in=st.integers(1, 13),
    out=st.integers(1, 5),
    nm=st.integers(2, 8).flatmap(lambda m: st.tuples(st.integers(1, m - 1), st.just(m))),
    ties=st.booleans(),
)
def test_nm_keeps_exactly_n_per_full_group_even_with_tied_weights(data, fan_in, out, nm, ties):
    n, m = nm
    model = nn.Sequential(nn.Linear(fan_in, out), nn.ReLU(), nn.Linear(out, 2))
    if ties:  # weights from a tiny pool: many equal |w|, many zeros
        with torch.no_grad():
            for module in layers(model).values():
                values = data.draw(
                    st.lists(
                        st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0]),
                        min_size=module.weight.numel(),
                        max_size=module.weight.numel(),
                    )
                )
                module.weight.copy_(torch.tensor(values).reshape(module.weight.shape))
    masks = compute_masks(model, method=f"nm-{n}:{m}", scope="layerwise", sparsity=0.0)
    for name, module in layers(model).items():
        check_nm(module.weight, masks[f"{name}.weight"], n, m)


@FEW
@given(
    data=st.data(),
    channels=st.integers(1, 11),
    out=st.integers(1, 4),
    kernel=st.lists(st.integers(1, 3), min_size=1, max_size=2),
    nm=st.integers(2, 8).flatmap(lambda m: st.tuples(st.integers(1, m - 1), st.just(m))),
    ties=st.booleans(),
)
def test_nm_on_convolutions_groups_input_channels_at_each_kernel_position(data, channels, out, kernel, nm, ties):
    n, m = nm
    conv = (nn.Conv1d, nn.Conv2d)[len(kernel) - 1](channels, out, tuple(kernel))
    model = nn.Sequential(conv, nn.ReLU(), (nn.Conv1d, nn.Conv2d)[len(kernel) - 1](out, 2, 1))
    if ties:
        with torch.no_grad():
            values = data.draw(
                st.lists(
                    st.sampled_from([0.0, 1.0, -1.0, 2.0]), min_size=conv.weight.numel(), max_size=conv.weight.numel()
                )
            )
            conv.weight.copy_(torch.tensor(values).reshape(conv.weight.shape))
    masks = compute_masks(model, method=f"nm-{n}:{m}", scope="layerwise", sparsity=0.0)
    for name, module in layers(model).items():
        check_nm(module.weight, masks[f"{name}.weight"], n, m)


@pytest.mark.parametrize("method", NM)
@pytest.mark.parametrize("name", ["digits-cnn", "mnist1d-cnn", "digits-mlp"])
def test_nm_on_the_sample_models_keeps_n_per_group_of_input_channels(name, method):
    n, m = (int(v) for v in method.removeprefix("nm-").split(":"))
    model = sample_case(name).model
    masks = compute_masks(model, method=method, scope="layerwise", sparsity=0.0)
    for layer, module in layers(model).items():
        check_nm(module.weight, masks[f"{layer}.weight"], n, m)


def test_nm_on_a_convolution_is_not_grouped_along_the_flattened_channel_and_kernel_order():
    # C=4, a 1x2 kernel. Flattened (C, kw) groups of 4 would be (c0k0 c0k1 c1k0 c1k1) and
    # (c2k0 c2k1 c3k0 c3k1), keeping c0 twice, then c2k0 and c3k0. Grouped by channel at each
    # position: k0 sees (9, 1, 7, 6) and keeps c0, c2; k1 sees (8, 2, 3, 4) and keeps c0, c3.
    conv = nn.Conv2d(4, 1, (1, 2), bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[9.0, 8.0]], [[1.0, 2.0]], [[7.0, 3.0]], [[6.0, 4.0]]]]))
    model = nn.Sequential(conv, nn.ReLU(), nn.Conv2d(1, 2, 1))
    kept = compute_masks(model, method="nm-2:4", scope="layerwise", sparsity=0.0)["0.weight"][0, :, 0, :]
    expected = torch.tensor([[True, True], [False, False], [True, False], [False, True]])
    assert torch.equal(kept, expected)


# --- random method ----------------------------------------------------------------------------------


@FAST
@given(case=cases(), scope=st.sampled_from(SCOPES), s=sparsities, seed=st.integers(0, 2**32 - 1))
def test_random_masks_are_reproducible_with_the_same_seed(case, scope, s, seed):
    first = compute_masks(case.model, method="random", scope=scope, sparsity=s, seed=seed)
    second = compute_masks(case.model, method="random", scope=scope, sparsity=s, seed=seed)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("scope", SCOPES)
def test_random_masks_differ_with_another_seed(scope):
    model = sample_case("cancer-mlp").model
    masks = [compute_masks(model, method="random", scope=scope, sparsity=0.5, seed=seed) for seed in (0, 1, 2)]
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert any(not torch.equal(masks[a][k], masks[b][k]) for k in masks[a]), f"seeds {a} and {b} agree"


# --- exclude -----------------------------------------------------------------------------------------


@FAST
@given(case=cases(), method=st.sampled_from(METHODS), scope=st.sampled_from(SCOPES), data=st.data())
def test_excluded_layers_keep_an_all_true_mask_or_are_absent(case, method, scope, data):
    names = list(layers(case.model))
    excluded = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names) - 1))
    if method in STRUCTURED:
        assume(any(n not in excluded for n in names if n != case.output))
    spelled = [n if data.draw(st.booleans()) else f"{n}.weight" for n in excluded]
    masks = compute_masks(case.model, method=method, scope=scope, sparsity=0.9, exclude=spelled)
    for name in excluded:
        linked = [f"{name}.weight", f"{name}.bias"]
        if name in case.norms:
            linked += [f"{case.norms[name]}.weight", f"{case.norms[name]}.bias"]
        for key in linked:
            assert key not in masks or masks[key].all(), f"excluded {key} is pruned"
    for name in names:
        if name not in excluded:
            assert f"{name}.weight" in masks, f"{name} is not excluded but has no mask"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bad", ["nope", "bn1", "conv1.bias"])
def test_excluding_an_unknown_layer_raises_valueerror_listing_the_valid_layers(method, bad):
    model = sample_case("digits-cnn").model
    with pytest.raises(ValueError) as info:
        compute_masks(model, method=method, sparsity=0.5, exclude=[bad])
    message = str(info.value)
    assert bad in message
    for layer in ("conv1", "conv2", "fc1", "fc2"):
        assert layer in message


def test_excluding_every_layer_raises_valueerror():
    model = sample_case("cancer-mlp").model
    with pytest.raises(ValueError):
        compute_masks(model, method="magnitude", sparsity=0.5, exclude=["fc1", "fc2", "fc3"])


# --- per-layer scope ---------------------------------------------------------------------------------


@FAST
@given(case=cases(), method=st.sampled_from(UNSTRUCTURED + STRUCTURED), data=st.data())
def test_per_layer_scope_gives_each_listed_layer_its_sparsity_and_leaves_the_rest_dense(case, method, data):
    names = [n for n in layers(case.model) if method not in STRUCTURED or n != case.output]
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True))
    plan = {n: data.draw(sparsities) for n in chosen}
    masks = compute_masks(case.model, method=method, scope="per-layer", sparsity=plan)
    for name, module in layers(case.model).items():
        mask, s = masks[f"{name}.weight"], plan.get(name, 0.0)
        if method in STRUCTURED:
            out = module.weight.shape[0]
            expected = min(round(s * out), out - 1)
            assert int((~row_keep(mask)).sum()) == expected, name
        else:
            assert pruned_count(mask) == round(s * module.weight.numel()), name


@pytest.mark.parametrize("method", list(METHODS))
def test_per_layer_sparsity_naming_an_unknown_layer_raises_valueerror(method):
    model = sample_case("cancer-mlp").model
    with pytest.raises(ValueError) as info:
        compute_masks(model, method=method, scope="per-layer", sparsity={"fc1": 0.5, "fc9": 0.5})
    assert "fc9" in str(info.value)


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5])
def test_per_layer_sparsity_value_outside_unit_interval_raises_valueerror(bad):
    model = sample_case("cancer-mlp").model
    for method in UNSTRUCTURED + STRUCTURED:
        with pytest.raises(ValueError, match=str(bad)):
            compute_masks(model, method=method, scope="per-layer", sparsity={"fc1": bad})


def test_a_sparsity_mapping_needs_per_layer_scope_and_per_layer_scope_needs_a_mapping():
    model = sample_case("cancer-mlp").model
    with pytest.raises(ValueError):
        compute_masks(model, method="magnitude", scope="global", sparsity={"fc1": 0.5})
    with pytest.raises(ValueError):
        compute_masks(model, method="magnitude", scope="per-layer", sparsity=0.5)


# --- argument validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, math.nan, math.inf, "abc"])
def test_sparsity_outside_zero_one_raises_valueerror_naming_the_value(bad, method):
    model = sample_case("cancer-mlp").model
    for scope in SCOPES:
        with pytest.raises(ValueError) as info:
            compute_masks(model, method=method, scope=scope, sparsity=bad)
        assert str(bad) in str(info.value)


def test_unknown_method_raises_valueerror_listing_the_methods():
    model = sample_case("cancer-mlp").model
    with pytest.raises(ValueError) as info:
        compute_masks(model, method="bogus-method", sparsity=0.5)
    message = str(info.value)
    assert "bogus-method" in message
    for name in pruning_core.method_names():
        assert name in message


@pytest.mark.parametrize("bad", ["nm-0:4", "nm-4:4", "nm-5:4", "nm-1:65"])
def test_invalid_nm_pattern_raises_valueerror(bad):
    with pytest.raises(ValueError, match=bad):
        compute_masks(sample_case("cancer-mlp").model, method=bad)


def test_unknown_scope_raises_valueerror_listing_the_scopes():
    model = sample_case("cancer-mlp").model
    with pytest.raises(ValueError) as info:
        compute_masks(model, method="magnitude", scope="everywhere", sparsity=0.5)
    for scope in ("everywhere", "global", "layerwise", "per-layer"):
        assert scope in str(info.value)
