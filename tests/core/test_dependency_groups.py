"""Structured removal on real architectures: channels added, concatenated or passed through a
depthwise convolution together are removed together (``pruning_core.groups``).

Rules checked, on models built here and the same models loaded back from ONNX and safetensors:
- every layer of a coupled group gets identical kept channel indices (and its BatchNorm too);
- the physically smaller model computes what the masked one does (atol 1e-5);
- a layer that cannot be shrunk is named with the reason, and ``shrink`` refuses rather than
  computing something else;
- the smaller model's parameter count equals a count made by hand from the kept channels.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable

import pytest
import torch
from safetensors.torch import save
from torch import nn

from pruning_core.effective import Dataflow, effective_counts
from pruning_core.groups import channel_groups, coupling
from pruning_core.loaders import load_model
from pruning_core.masks import MaskPlan, apply_masks, compute_masks
from pruning_core.methods import METHODS
from pruning_core.shrink import count_params, shrink, shrink_with_notes
from tests.core.own_model_helpers import (
    concat_add_net,
    concat_net,
    conv_flatten_linear,
    depthwise_separable,
    grouped_net,
    residual_net,
    seeded,
    to_onnx,
    wide_mlp,
)

FACTORIES: dict[str, Callable[[], nn.Module]] = {
    "residual": residual_net,
    "concat": concat_net,
    "depthwise-separable": depthwise_separable,
    "conv-flatten-linear": conv_flatten_linear,
    "concat-add": concat_add_net,
}
UNSTRUCTURED = [name for name, m in METHODS.items() if m.granularity == "unstructured"]


def example(model: nn.Module, n: int = 16) -> torch.Tensor:
    return torch.randn((n, *model.input_shape), generator=torch.Generator().manual_seed(1))


@functools.cache
def load(name: str, source: str) -> nn.Module:
    """The model ``name`` as built, or as loaded back from an ONNX file (BatchNorm folded, or kept
    as BatchNormalization nodes) or a safetensors state dict with its factory. Built once per test
    session: the engine never modifies a caller's model (tests/core/test_masks.py checks it)."""
    factory = FACTORIES.get(name, grouped_net if name == "grouped" else None)
    assert factory is not None
    model = factory()
    if source == "built":
        return model
    if source == "safetensors":
        data = save({k: v.contiguous() for k, v in model.state_dict().items()})
        return load_model(data, filename="m.safetensors", factory=factory).model
    onnx = to_onnx(model, example(model), keep_batchnorm=source == "onnx-bn")
    return load_model(io.BytesIO(onnx).getvalue(), filename="m.onnx").model


def rows_kept(masks: dict[str, torch.Tensor], layer: str) -> torch.Tensor:
    weight = masks[f"{layer}.weight"]
    return weight.reshape(weight.shape[0], -1).any(1)


def assert_same_outputs(model: nn.Module, masks: dict[str, torch.Tensor], small: nn.Module) -> None:
    x = example(model)
    with torch.no_grad():
        expected, got = apply_masks(model, masks)(x), small(x)
    assert torch.allclose(got, expected, atol=1e-5), f"max difference {(got - expected).abs().max():.2e}"


# --- the groups themselves ---------------------------------------------------------------------------


def test_residual_members_share_groups_and_the_depthwise_conv_passes_its_channels_through():
    groups = channel_groups(residual_net())
    assert torch.equal(groups.rows["stem"], groups.rows["pointwise"]), "added tensors share channel indices"
    assert torch.equal(groups.rows["depthwise"], groups.rows["stem"]), "depthwise output c is its input c"
    assert "depthwise" in groups.passthrough
    assert torch.equal(groups.norms["stem_bn"], groups.rows["stem"])
    assert torch.equal(groups.inputs["branch_a"], groups.rows["stem"])


def test_concatenation_maps_each_branch_to_an_offset_range_and_flatten_to_blocks():
    groups = channel_groups(concat_net())
    assert torch.equal(groups.inputs["mix"], torch.cat([groups.rows["left"], groups.rows["right"]]))
    assert set(groups.rows["left"].tolist()).isdisjoint(groups.rows["right"].tolist()), "branches stay apart"
    flat = channel_groups(conv_flatten_linear())
    assert torch.equal(flat.inputs["fc"], flat.rows["conv2"].repeat_interleave(16))


def test_the_output_layer_and_what_feeds_a_grouped_conv_are_blocked_with_reasons():
    groups = channel_groups(grouped_net())
    assert groups.layer_reasons("fc") == ["reaches the model's output (its channels are the classes)"]
    (reason,) = groups.layer_reasons("stem")
    assert "'grouped'" in reason and "groups=2" in reason


class PooledHead(nn.Module):
    """A conv with 8 filters on 8x8 images, reduced by ``reduce``, into a Linear of 8 inputs."""

    def __init__(self, reduce: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.conv, self.fc, self.reduce, self.input_shape = (
            nn.Conv2d(1, 8, 3, padding=1),
            nn.Linear(8, 3),
            reduce,
            (1, 8, 8),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.reduce(torch.relu(self.conv(x))))


class SpatialMean(PooledHead):
    def __init__(self) -> None:
        super().__init__(lambda t: t.mean(dim=(2, 3)))


class ChannelMean(PooledHead):
    def __init__(self) -> None:
        super().__init__(lambda t: t.mean(1)[:, 0])  # (N, 8, 8) -> (N, 8): the shapes alone look the same


def test_a_reduction_keeps_the_channels_only_when_its_axes_say_so():
    assert torch.equal(channel_groups(SpatialMean()).inputs["fc"], channel_groups(SpatialMean()).rows["conv"])
    groups = channel_groups(ChannelMean())
    assert groups.inputs["fc"] is None
    assert groups.layer_reasons("conv") == ["mean after layer 'conv' changes the channel axis"]


def test_a_chain_has_no_coupling_so_its_structured_masks_are_computed_as_before():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(16, 3))
    model.input_shape = (1, 4, 4)
    assert coupling(model, ["0"]) is None


# --- masks on coupled layers -------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["built", "onnx"])
@pytest.mark.parametrize("method", ["structured-l2", "structured-random"])
@pytest.mark.parametrize("scope", ["layerwise", "global"])
def test_members_of_a_coupled_group_keep_identical_channel_indices(source, method, scope):
    model = load("residual", source)
    for sparsity in (0.4, 0.9):
        masks = compute_masks(model, method, scope, sparsity)
        stem = rows_kept(masks, "stem")
        for member in ("depthwise", "pointwise"):
            assert torch.equal(rows_kept(masks, member), stem), f"{member} differs from stem at {sparsity}"
            assert torch.equal(masks[f"{member}.bias"], stem)
        if "stem_bn.weight" in dict(model.named_parameters()):
            assert torch.equal(masks["stem_bn.weight"], stem)


def test_a_groups_score_is_the_sum_of_its_members_scores():
    """Structured L1 on the residual block ranks channel c by |stem_c|_1 + |depthwise_c|_1 + |pointwise_c|_1."""
    model = residual_net()
    masks = compute_masks(model, "structured-l1", "layerwise", 0.5)
    total = sum(
        model.get_submodule(n).weight.detach().abs().flatten(1).sum(1) for n in ("stem", "depthwise", "pointwise")
    )
    expected = torch.ones(16, dtype=torch.bool)
    expected[total.argsort()[:8]] = False
    assert torch.equal(rows_kept(masks, "stem"), expected)


def test_branches_concatenated_then_added_follow_the_offset_range_of_the_layer_they_join():
    model = concat_add_net()
    c = channel_groups(model).rows["c"]
    plan = coupling(model, ["a", "b", "c", "mix"])
    assert plan is not None
    assert {f: (leader, p.tolist()) for f, (leader, p) in plan.followers.items()} == {
        "a": ("c", [0, 1, 2, 3, 4]),
        "b": ("c", [5, 6, 7]),
    }
    masks = compute_masks(model, "structured-l1", "layerwise", 0.5)
    kept_c = rows_kept(masks, "c")
    assert torch.equal(torch.cat([rows_kept(masks, "a"), rows_kept(masks, "b")]), kept_c)
    assert torch.equal(masks["c_bn.weight"], kept_c)
    assert torch.equal(channel_groups(model).inputs["mix"], c)


@pytest.mark.parametrize("source", ["built", "onnx"])
def test_every_unstructured_method_prunes_every_coupled_model(source):
    """Unstructured masks need no dataflow: each method gives a mask of each weight's shape.
    Taylor (gradients) runs on the built residual net only, and SynFlow not at all, for time: its 100
    float64 backward passes through convolutions take tens of seconds on these models here."""
    for name in FACTORIES:
        model = load(name, source)
        x = example(model, 32)
        with torch.no_grad():
            y = model(x).argmax(1)
        targets = {n: p.shape for n, p in model.named_parameters() if n.endswith(".weight") and p.dim() > 1}
        slow = ("synflow",) if (name, source) == ("residual", "built") else ("synflow", "taylor")
        for method in (m for m in UNSTRUCTURED if m not in slow):
            masks = compute_masks(model, method, "global", 0.5, X_calib=x, y_calib=y)
            assert {n: m.shape for n, m in masks.items() if n in targets} == targets, f"{name} {method}"
            assert sum(int((~m).sum()) for m in masks.values()) > 0, f"{name} {method}: nothing pruned"


# --- shrinking ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["built", "onnx", "onnx-bn", "safetensors"])
@pytest.mark.parametrize("name", list(FACTORIES))
def test_the_shrunk_model_computes_what_the_masked_model_computes(name, source):
    model = load(name, source)
    for method, scope, sparsity in (("structured-l1", "layerwise", 0.5), ("structured-random", "global", 0.7)):
        masks = compute_masks(model, method, scope, sparsity)
        small, notes = shrink_with_notes(model, masks)
        assert_same_outputs(model, masks, small)
        assert count_params(small) < count_params(model), f"{method}: nothing was removed ({notes})"
    magnitude = compute_masks(model, "magnitude", "global", 0.8)  # unstructured works on all of them
    assert_same_outputs(model, magnitude, shrink_with_notes(model, magnitude)[0])


def test_a_layer_that_cannot_be_shrunk_is_named_with_its_reason_and_left_whole():
    model = grouped_net()
    masks = compute_masks(model, "structured-l1", "layerwise", 0.5)
    small, notes = shrink_with_notes(model, masks)
    assert {n.layer for n in notes} == {"stem", "grouped"} and all(n.refused for n in notes)
    assert all("layer 'grouped' is a grouped convolution (groups=2)" in n.reason for n in notes)
    assert small.get_submodule("stem").weight.shape == model.get_submodule("stem").weight.shape
    assert_same_outputs(model, masks, small)
    with pytest.raises(ValueError, match="'stem'.*grouped convolution"):
        shrink(model, masks)


def test_onnxs_gelu_written_as_div_erf_add_mul_is_understood_and_a_sigmoid_gate_is_named():
    """x * 0.5 * (1 + erf(x / sqrt 2)) is zero where x is: fc1 of the ONNX residual net shrinks.
    fc1(x) * sigmoid(gate(x)) joins fc1's and gate's channels, and sigmoid(0) = 0.5: both stay."""
    onnx_model = load("residual", "onnx")
    masks = compute_masks(onnx_model, "structured-l1", "layerwise", 0.5)
    small, notes = shrink_with_notes(onnx_model, masks)
    assert notes == [] and small.get_submodule("fc1").weight.shape[0] == 64
    gated = wide_mlp()
    masks = compute_masks(gated, "structured-l1", "layerwise", 0.5)
    small, notes = shrink_with_notes(gated, masks)
    assert {n.layer for n in notes} == {"fc1", "gate"}
    assert all("sigmoid after layer 'gate' is not known to preserve" in n.reason for n in notes)
    assert_same_outputs(gated, masks, small)


def test_a_layernorm_leaves_the_channels_it_normalises_whole_and_says_why():
    model = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 3))
    model = seeded(model)
    model.input_shape = (6,)
    masks = compute_masks(model, "structured-l1", "layerwise", 0.4)
    small, notes = shrink_with_notes(model, masks)
    assert [n.layer for n in notes] == ["0"] and "LayerNorm after layer '0' normalises across channels" in notes[
        0
    ].reason
    assert small.get_submodule("3").weight.shape == (3, 8), "the next layer's rows still go"
    assert_same_outputs(model, masks, small)


def test_independent_masks_on_coupled_layers_keep_the_group_and_name_the_partners():
    model = residual_net()
    masks = {k: v.clone() for k, v in compute_masks(model, "structured-l1", "layerwise", 0.0).items()}
    masks["stem.weight"][:4] = False
    masks["stem.bias"][:4] = False
    small, notes = shrink_with_notes(model, masks)
    assert small.get_submodule("stem").weight.shape[0] == 16
    assert [(n.layer, n.neurons, n.refused) for n in notes] == [("stem", 4, False)]
    assert "'pointwise'" in notes[0].reason
    assert_same_outputs(model, masks, small)


@pytest.mark.parametrize("sparsity", [0.3, 0.7])
def test_the_shrunk_residual_nets_parameters_equal_a_count_by_hand(sparsity):
    model = residual_net()
    masks = compute_masks(model, "structured-l2", "layerwise", sparsity)
    c = int(rows_kept(masks, "stem").sum())
    a, b, h = (int(rows_kept(masks, n).sum()) for n in ("branch_a", "branch_b", "fc1"))
    expected = (
        (c * 1 * 9 + c)  # stem
        + 2 * c  # stem_bn
        + (c * 9 + c)  # depthwise: one 3x3 filter per kept channel
        + (c * c + c)  # pointwise
        + (a * c * 9 + a)  # branch_a
        + (b * c + b)  # branch_b (1x1)
        + (h * (a + b) * 4 + h)  # fc1: 4 inputs per kept concatenated channel (2x2 after pooling)
        + (10 * h + 10)  # fc2
    )
    assert count_params(shrink(model, masks)) == expected


@pytest.mark.parametrize("name", ["residual", "concat", "depthwise-separable"])
def test_effective_counts_of_coupled_models_are_what_shrink_really_removes(name):
    """Sizes reported for a model that is no chain are those of the physically smaller model."""
    model = load(name, "built")
    masks = compute_masks(model, "structured-l1", "layerwise", 0.5)
    small, _ = shrink_with_notes(model, masks)
    counts = effective_counts(Dataflow.of(model), dict(apply_masks(model, masks).named_parameters()))
    small_params = dict(small.named_parameters())
    assert counts.shapes, "no parameter was counted"
    for param, shape in counts.shapes.items():
        assert shape == tuple(small_params[param].shape), param
        assert counts.nonzero[param] == int(small_params[param].count_nonzero()), param


@pytest.mark.parametrize("name", ["residual", "concat"])
def test_a_global_structured_target_is_met_in_effectively_removed_weights_on_coupled_models(name):
    """The removal order counts each removal over the channel groups, so the effective sparsity of
    the masks lands within one removal's weights of the target."""
    model = load(name, "built")
    plan = MaskPlan.build(model, "structured-l1")
    for target in (0.3, 0.6):
        masks = plan.masks(target, "global")
        order = plan.removal_order
        assert order is not None
        one_step = max(b - a for a, b in zip(order.removed_weights, order.removed_weights[1:])) / order.total_weights
        counts = effective_counts(Dataflow.of(model), dict(apply_masks(model, masks).named_parameters()))
        weights = [n for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]
        kept = sum(counts.nonzero[f"{n}.weight"] for n in weights)
        effective = 1 - kept / order.total_weights
        assert abs(effective - target) <= one_step, f"target {target}, effective {effective:.4f}"
