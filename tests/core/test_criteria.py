"""Rules of the data-driven and iterative criteria (Taylor, SynFlow, Wanda, APoZ, mean activation,
BN scale), the method ``masks`` hook, and ERK allocation. Expected values are computed here by hand."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from core_helpers import assert_state_unchanged, layers, pruned_count, row_keep, snapshot
from torch import nn

import sample_models
from pruning_core import MaskPlan, PruningMethod, compute_masks, sweep
from pruning_core.masks import erk_sparsities
from sample_models.architectures import MLP

NEW_UNSTRUCTURED = ["taylor", "synflow", "wanda"]
NEW_STRUCTURED = ["apoz", "mean-activation", "bn-scale"]
LEVELS = (0.3, 0.9)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """SynFlow runs hundreds of batch-1 passes: on a busy 2-core machine, intra-op threads only wait
    for each other (measured 100x slower), so this module runs single-threaded; results do not change."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def calibration(sample):
    return sample.data.X_train[:256], sample.data.y_train[:256]


def weight_names(model) -> list[str]:
    return [f"{n}.weight" for n in layers(model)]


# --- every new method: shapes, exact counts, the caller's model untouched ----------------------------


def check_unstructured_counts(method, model, masks, scope, s):
    names = weight_names(model)
    weights = dict(model.named_parameters())
    if scope == "global":
        total = sum(weights[n].numel() for n in names)
        assert sum(pruned_count(masks[n]) for n in names) == round(s * total)
        return
    for n in names:
        w = weights[n]
        if method == "wanda":  # the same fraction of every output row
            row_len = w[0].numel()
            assert pruned_count(masks[n]) == w.shape[0] * round(s * row_len), n
        else:
            assert pruned_count(masks[n]) == round(s * w.numel()), n


def check_structured_counts(model, masks, scope, s):
    output = list(layers(model))[-1]
    assert masks[f"{output}.weight"].all(), "the output layer is never pruned"
    scored = {n: m for n, m in layers(model).items() if n != output}
    budget = round(s * sum(m.weight.numel() for m in scored.values()))
    pruned = 0
    for n, m in scored.items():
        keep = row_keep(masks[f"{n}.weight"])
        assert torch.equal(keep, masks[f"{n}.weight"].reshape(len(keep), -1).all(1)), f"{n}: whole rows"
        assert keep.any(), f"{n} keeps at least one neuron"
        if m.bias is not None:
            assert torch.equal(masks[f"{n}.bias"], keep), f"{n}.bias goes with its neuron"
        out = m.weight.shape[0]
        if scope == "layerwise":
            assert int((~keep).sum()) == min(round(s * out), out - 1), n
        pruned += pruned_count(masks[f"{n}.weight"])
    if scope == "global":
        assert pruned <= budget


@pytest.mark.parametrize("method", NEW_UNSTRUCTURED + NEW_STRUCTURED)
@pytest.mark.parametrize("name", ["digits-cnn", "mnist1d-cnn"])
def test_new_methods_give_parameter_shaped_masks_exact_counts_and_leave_the_callers_model_unchanged(name, method):
    sample = sample_models.load_sample(name)
    model = sample.model.train()  # a training-mode caller: BatchNorm statistics must not move either
    before = snapshot(model)
    X, y = calibration(sample)
    plan = MaskPlan.build(model, method, X_calib=X, y_calib=y)
    params = dict(model.named_parameters())
    for scope in ("global", "layerwise"):
        for s, masks in zip(LEVELS, plan.masks_for_levels(LEVELS, scope), strict=True):
            assert set(weight_names(model)) <= set(masks)
            for key, mask in masks.items():
                assert mask.dtype == torch.bool and mask.shape == params[key].shape, key
            if method in NEW_STRUCTURED:
                check_structured_counts(model, masks, scope, s)
            else:
                check_unstructured_counts(method, model, masks, scope, s)
    assert_state_unchanged(model, before, method)
    assert all(p.grad is None for p in model.parameters()), f"{method} left gradients on the caller's model"
    assert model.training, f"{method} changed the caller's train/eval mode"


# --- Taylor ------------------------------------------------------------------------------------------


def test_taylor_is_abs_w_times_the_cross_entropy_gradient_summed_over_batches_of_64_in_eval_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))
    with torch.no_grad():
        model[1].running_mean.normal_()
        model[1].running_var.uniform_(0.5, 2.0)
    model.train()
    X, y = torch.randn(100, 5), torch.randint(0, 3, (100,))  # batches of 64 and 36
    reference = copy.deepcopy(model).eval()
    for start in (0, 64):
        F.cross_entropy(reference(X[start : start + 64]), y[start : start + 64]).backward()
    expected = [(reference[i].weight * reference[i].weight.grad).abs().detach() for i in (0, 3)]
    plan = MaskPlan.build(model, "taylor", X_calib=X, y_calib=y)
    for got, want in zip(plan.scores, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_taylor_without_labels_raises_valueerror():
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="y_calib"):
        compute_masks(model, "taylor", sparsity=0.5, X_calib=torch.randn(4, 3))


# --- SynFlow -----------------------------------------------------------------------------------------


def test_synflow_keeps_every_layer_alive_where_global_magnitude_at_initialisation_collapses_one():
    torch.manual_seed(0)
    model = MLP([64, 512, 512, 512, 10])  # untrained, default init: fc1's weights are the largest
    s = 0.99
    magnitude = compute_masks(model, "magnitude", "global", s)
    assert any(not magnitude[n].any() for n in weight_names(model)), "global magnitude should collapse a layer"
    synflow = compute_masks(model, "synflow", "global", s, X_calib=torch.zeros(1, 64))
    for n in weight_names(model):
        assert synflow[n].any(), f"synflow emptied {n}"
    total = sum(synflow[n].numel() for n in weight_names(model))
    assert sum(pruned_count(synflow[n]) for n in weight_names(model)) == round(s * total)


def test_synflow_scores_are_dR_dw_times_w_of_the_abs_network_on_an_all_ones_input():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    net = copy.deepcopy(model).double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net(torch.ones(1, 3, dtype=torch.float64)).sum().backward()
    expected = [(net[i].weight.grad * net[i].weight).detach() for i in (0, 2)]
    top = max(float(e.max()) for e in expected)
    plan = MaskPlan.build(model, "synflow", X_calib=torch.randn(7, 3))
    for got, want in zip(plan.scores, expected, strict=True):
        torch.testing.assert_close(got, (want / top).float())


def test_synflow_without_data_finds_a_conv_models_input_shape_or_says_it_needs_one():
    # 2 channels x 2 x 2 after a 3x3 conv: only a 4x4 input runs, and the engine finds it.
    runs = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    masks = compute_masks(runs, "synflow", sparsity=0.5)
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.5 * (18 + 16))
    # 2 x h x w = 7 has no solution: no square input runs, so calibration data is asked for.
    never_runs = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(7, 2))
    with pytest.raises(ValueError, match="input shape"):
        compute_masks(never_runs, "synflow", sparsity=0.5)


# --- Wanda -------------------------------------------------------------------------------------------


def test_wanda_is_abs_w_times_the_input_feature_norm_and_layerwise_prunes_the_lowest_of_every_row():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 3)).eval()
    X = torch.randn(100, 6) * torch.arange(1.0, 7.0)
    expected = model[0].weight.detach().abs() * X.pow(2).sum(0).sqrt()
    plan = MaskPlan.build(model, "wanda", X_calib=X)
    torch.testing.assert_close(plan.scores[0], expected)
    s = 0.5
    mask = plan.masks(s, "layerwise")["0.weight"]
    k = round(s * 6)
    assert (mask.sum(1) == 6 - k).all(), "every row loses the same count"
    lowest = expected.argsort(dim=1)[:, :k]
    assert not mask.gather(1, lowest).any(), "each row prunes its own lowest scores"


@pytest.mark.parametrize(
    "conv, x",
    [
        (nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2), torch.randn(70, 4, 9, 7)),
        (nn.Conv1d(3, 4, 5, stride=2, padding=2), torch.randn(70, 3, 40)),
    ],
    ids=["conv2d-grouped", "conv1d"],
)
def test_wanda_conv_norms_are_per_column_of_the_unfolded_input(conv, x):
    if conv.weight.dim() == 3:  # Conv1d as a Conv2d of height 1
        cols = F.unfold(x.unsqueeze(2), (1, 5), stride=(1, 2), padding=(0, 2))
    else:
        cols = F.unfold(x, conv.kernel_size, dilation=conv.dilation, padding=conv.padding, stride=conv.stride)
    norms = cols.pow(2).sum((0, 2)).sqrt().reshape(conv.groups, -1)
    rows = norms.repeat_interleave(conv.out_channels // conv.groups, dim=0)
    expected = conv.weight.detach().abs() * rows.reshape(conv.weight.shape)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten()).eval()
    (scores,) = MaskPlan.build(model, "wanda", X_calib=x).scores
    torch.testing.assert_close(scores, expected)


# --- APoZ, mean activation, BN scale -----------------------------------------------------------------


def test_bn_scale_keeps_the_top_gamma_filters_of_conv1_and_falls_back_to_l1_without_batchnorm():
    sample = sample_models.load_sample("digits-cnn")
    s = 0.5
    masks = compute_masks(sample.model, "bn-scale", "layerwise", s)
    gamma = sample.model.bn1.weight.detach().abs()
    keep_n = len(gamma) - round(s * len(gamma))
    expected = torch.zeros(len(gamma), dtype=torch.bool)
    expected[gamma.topk(keep_n).indices] = True
    assert torch.equal(row_keep(masks["conv1.weight"]), expected)
    assert torch.equal(masks["bn1.weight"], expected) and torch.equal(masks["bn1.bias"], expected)
    l1 = compute_masks(sample.model, "structured-l1", "layerwise", s)
    assert torch.equal(masks["fc1.weight"], l1["fc1.weight"]), "fc1 has no BatchNorm: L1 fallback"


def test_apoz_and_mean_activation_rank_an_always_zero_neuron_lowest():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    with torch.no_grad():
        model[0].bias[2] = -100.0
    X = torch.randn(50, 4)
    for method in ("apoz", "mean-activation"):
        plan = MaskPlan.build(model, method, X_calib=X)
        assert float(plan.scores[0][2]) == 0.0 and int(plan.scores[0].argmin()) == 2, method
        keep = row_keep(plan.masks(0.2, "layerwise")["0.weight"])  # round(0.2 * 5) = 1 neuron
        assert keep.tolist() == [True, True, False, True, True], method


def test_apoz_and_mean_activation_read_the_post_batchnorm_value_the_relu_sees():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2)).eval()
    with torch.no_grad():
        model[1].running_mean.normal_(0, 2)
        model[1].bias.normal_()
    X = torch.randn(90, 4)
    with torch.no_grad():
        post = model[1](model[0](X))
    (apoz,) = MaskPlan.build(model, "apoz", X_calib=X).scores
    (mean,) = MaskPlan.build(model, "mean-activation", X_calib=X).scores
    torch.testing.assert_close(apoz, (post > 0).float().mean(0))
    torch.testing.assert_close(mean, post.relu().mean(0))


# --- the masks hook ----------------------------------------------------------------------------------


class FirstHalfKept(PruningMethod):
    """A test criterion whose layerwise masks come from the hook, global ones from its scores."""

    name = "test-hook"
    label = "hook"
    description = "test"

    def __init__(self):
        self.calls = []

    def scores(self, targets, context):
        return [t.weight.detach().abs() for t in targets]

    def masks(self, targets, context, sparsity, scope, scores):
        self.calls.append((scope, sparsity))
        if scope == "global":
            return None
        out = []
        for t, f in zip(targets, sparsity, strict=True):
            keep = torch.ones(t.weight.numel(), dtype=torch.bool)
            keep[: round(f * keep.numel())] = False
            out.append(keep.reshape(t.weight.shape))
        return out


def test_the_masks_hook_is_asked_once_per_level_with_per_layer_fractions_and_none_falls_back_to_scores():
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    method = FirstHalfKept()
    plan = MaskPlan.build(model, method)
    results = list(plan.masks_and_counts([0.2, 0.6], "layerwise"))
    assert method.calls == [("layerwise", [0.2, 0.2]), ("layerwise", [0.6, 0.6])]
    for (masks, counts), s in zip(results, (0.2, 0.6), strict=True):
        for name, module in layers(model).items():
            n = module.weight.numel()
            assert masks[f"{name}.weight"].reshape(-1)[: round(s * n)].sum() == 0
            assert counts[f"{name}.weight"] == round(s * n)
    own, magnitude = plan.masks(0.5, "global"), compute_masks(model, "magnitude", "global", 0.5)
    assert method.calls[-1] == ("global", 0.5)
    assert own.keys() == magnitude.keys() and all(torch.equal(own[k], magnitude[k]) for k in own), "None: scores"


# --- ERK ---------------------------------------------------------------------------------------------


def check_erk(shapes, s):
    sparsities = erk_sparsities(shapes, s)
    sizes = {k: torch.Size(v).numel() for k, v in shapes.items()}
    raw = {k: sum(v) / sizes[k] for k, v in shapes.items()}
    density = {k: 1 - v for k, v in sparsities.items()}
    assert all(0 <= d <= 1 for d in density.values())
    kept = sum(density[k] * sizes[k] for k in shapes)
    assert kept == pytest.approx((1 - s) * sum(sizes.values()), rel=1e-9)
    sparse = [k for k in shapes if density[k] < 1]
    ratios = [density[k] / raw[k] for k in sparse]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-9), "density proportional to sum(dims)/prod(dims)"
    return sparsities


def test_erk_densities_follow_sum_over_prod_of_dims_and_keep_the_target_total():
    shapes = {"conv": (32, 16, 3, 3), "fc1": (128, 512), "fc2": (10, 128)}
    for s in (0.5, 0.8, 0.95):
        check_erk(shapes, s)


def test_erk_a_small_layer_saturates_at_density_one_and_the_rest_is_resolved():
    shapes = {"big": (1000, 1000), "small": (10, 2)}
    sparsities = check_erk(shapes, 0.5)
    assert sparsities["small"] == 0.0
    assert (1 - sparsities["big"]) * 1_000_000 + 20 == pytest.approx(0.5 * 1_000_020)


@pytest.mark.parametrize("method", ["magnitude", "taylor", "wanda"])
def test_erk_scope_prunes_each_layer_to_its_erk_sparsity(method):
    sample = sample_models.load_sample("digits-mlp")
    X, y = calibration(sample)
    s = 0.9
    modules = layers(sample.model)
    expected = erk_sparsities({n: m.weight.shape for n, m in modules.items()}, s)
    masks = compute_masks(sample.model, method, "erk", s, X_calib=X, y_calib=y)
    total = kept = 0
    for n, m in modules.items():
        mask, w = masks[f"{n}.weight"], m.weight
        if method == "wanda":
            assert pruned_count(mask) == w.shape[0] * round(expected[n] * w.shape[1]), n
        else:
            assert pruned_count(mask) == round(expected[n] * w.numel()), n
        total, kept = total + w.numel(), kept + int(mask.sum())
    if method != "wanda":
        assert abs(kept - (1 - s) * total) <= 0.5 * len(modules)
    per_layer = compute_masks(sample.model, method, "per-layer", expected, X_calib=X, y_calib=y)
    assert all(torch.equal(masks[k], per_layer[k]) for k in masks), "erk = per-layer with the ERK sparsities"


def test_erk_scope_for_a_structured_method_uses_the_fractions_as_neuron_fractions():
    model = sample_models.load_sample("digits-cnn").model
    scored = {n: m for n, m in layers(model).items() if n != "fc2"}
    s = 0.7
    expected = erk_sparsities({n: m.weight.shape for n, m in scored.items()}, s)
    masks = compute_masks(model, "bn-scale", "erk", s)
    assert masks["fc2.weight"].all()
    for n, m in scored.items():
        out = m.weight.shape[0]
        assert int((~row_keep(masks[f"{n}.weight"])).sum()) == min(round(expected[n] * out), out - 1), n


# --- sweep -------------------------------------------------------------------------------------------


def test_sweep_runs_the_new_methods_on_digits_cnn():
    sample = sample_models.load_sample("digits-cnn")
    methods = ["taylor", "synflow", "wanda", "apoz", "bn-scale"]
    table = sweep(sample.model, sample.data, methods, [0, 0.5], scope="global")
    assert list(table["method"]) == [m for m in methods for _ in (0, 1)]
    granularity = dict(zip(table["method"], table["granularity"], strict=True))
    assert granularity == {"taylor": "unstructured", "synflow": "unstructured", "wanda": "unstructured"} | {
        "apoz": "structured",
        "bn-scale": "structured",
    }
    assert table["accuracy"].notna().all()
    unstructured = table[(table["granularity"] == "unstructured") & (table["target_sparsity"] == 0.5)]
    assert (unstructured["actual_sparsity"] == 0.5).all()
    structured = table[(table["granularity"] == "structured") & (table["target_sparsity"] == 0.5)]
    assert ((structured["actual_sparsity"] > 0) & (structured["actual_sparsity"] <= 0.5)).all()
