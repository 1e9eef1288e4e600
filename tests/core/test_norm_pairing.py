"""Which BatchNorm normalises a layer's outputs, read off the dataflow on models that are no chain.

The models here register their modules in another order than they run (all convolutions first,
then the BatchNorms; a branch's BatchNorm before its convolution), and each has a residual
addition or a concatenation, so ``graph.trace_links`` cannot read them as a chain. The true
pairing is known by construction; BN-scale scores are checked against |gamma| of the right
BatchNorm, APoZ and mean activation against hooks of this file on the input of each ReLU.
"""

from __future__ import annotations

import copy

import pytest
import torch
from core_helpers import SAMPLE_NORMS, SAMPLES
from own_model_helpers import ResidualNet, concat_net, depthwise_separable, residual_net, seeded
from torch import nn

import sample_models
from pruning_core import MaskPlan, ScoringContext, get_method, graph
from pruning_core.apply import apply_choice
from pruning_core.choice import PruningChoice
from pruning_core.graph import GraphError
from pruning_core.targets import find_targets


class ConvsFirstResidual(nn.Module):
    """conv1 -> bn1 -> relu -> conv2 -> bn2 -> relu -> conv3 -> bn3, added to the first block's
    output, then relu. Every convolution is declared before every BatchNorm, all of 8 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.input_shape = (2, 6, 6)
        self.conv1 = nn.Conv2d(2, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.bn2 = nn.BatchNorm2d(8)
        self.bn3 = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(h)))
        x = torch.relu(self.bn3(self.conv3(y)) + h)
        return self.head(x.mean((2, 3)))


class SwappedBranches(nn.Module):
    """Two branches of 8 channels concatenated; each branch's BatchNorm is declared right after the
    other branch's convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.input_shape = (2, 6, 6)
        self.left = nn.Conv2d(2, 8, 3, padding=1)
        self.right_bn = nn.BatchNorm2d(8)
        self.right = nn.Conv2d(2, 8, 1)
        self.left_bn = nn.BatchNorm2d(8)
        self.mix = nn.Conv2d(16, 6, 3, padding=1)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([torch.relu(self.left_bn(self.left(x))), torch.relu(self.right_bn(self.right(x)))], 1)
        return self.head(torch.relu(self.mix(x)).mean((2, 3)))


class DepthwiseResidual(nn.Module):
    """conv -> bn -> relu, then a residual depthwise block (depthwise -> its bn -> relu) added back,
    a pointwise conv and a head. The stem's BatchNorm is declared after the depthwise conv."""

    def __init__(self) -> None:
        super().__init__()
        self.input_shape = (3, 6, 6)
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.depthwise = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.bn = nn.BatchNorm2d(12)
        self.depthwise_bn = nn.BatchNorm2d(12)
        self.pointwise = nn.Conv2d(12, 10, 1)
        self.head = nn.Linear(10, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = x + torch.relu(self.depthwise_bn(self.depthwise(x)))
        return self.head(torch.relu(self.pointwise(x)).mean((2, 3)))


# Each model's true pairing, by construction.
CASES = {
    "convs-first-residual": (lambda: seeded(ConvsFirstResidual()), {"conv1": "bn1", "conv2": "bn2", "conv3": "bn3"}),
    "swapped-branches": (lambda: seeded(SwappedBranches()), {"left": "left_bn", "right": "right_bn"}),
    "depthwise-residual": (lambda: seeded(DepthwiseResidual()), {"conv": "bn", "depthwise": "depthwise_bn"}),
    "residual-net": (residual_net, {"stem": "stem_bn"}),
    "concat-net": (concat_net, {"right": "right_bn"}),
    "depthwise-separable": (depthwise_separable, {"conv": "bn", "depthwise": "depthwise_bn"}),
}


def _inputs(model: nn.Module, n: int = 40, seed: int = 1) -> torch.Tensor:
    return torch.randn((n, *model.input_shape), generator=torch.Generator().manual_seed(seed))


def _relu_inputs(model: nn.Module, X: torch.Tensor, pairing: dict[str, str]) -> dict[str, torch.Tensor]:
    """What each paired layer's ReLU sees: the output of its BatchNorm, hooked on a copy here."""
    work = copy.deepcopy(model).eval()
    modules = dict(work.named_modules())
    seen: dict[str, torch.Tensor] = {}
    handles = [
        modules[norm].register_forward_hook(lambda m, a, out, layer=layer: seen.__setitem__(layer, out.detach()))
        for layer, norm in pairing.items()
    ]
    with torch.no_grad():
        work(X)
    for handle in handles:
        handle.remove()
    return seen


@pytest.mark.parametrize("case", ["convs-first-residual", "swapped-branches", "depthwise-residual"])
def test_these_models_are_no_chain_and_registration_order_misleads(case):
    build, pairing = CASES[case]
    model = build()
    with pytest.raises(GraphError):
        graph.trace_links(model, _inputs(model, 1))
    named = [name for name, _ in model.named_modules()]
    adjacent = {a: b for a, b in zip(named, named[1:], strict=False) if a in pairing or b in pairing.values()}
    assert any(adjacent.get(layer) != norm for layer, norm in pairing.items())


@pytest.mark.parametrize("case", list(CASES))
def test_norm_of_reads_the_pairing_off_the_dataflow(case):
    build, pairing = CASES[case]
    model = build()
    assert graph.norm_of(model, _inputs(model, 1)) == pairing
    assert graph.norm_of(model) == pairing  # the input shape guessed from ``input_shape``


@pytest.mark.parametrize("case", list(CASES))
def test_bn_scale_scores_are_the_gammas_of_the_batchnorm_the_layer_feeds(case):
    build, pairing = CASES[case]
    model = build()
    targets = find_targets(model)
    context = ScoringContext(model=model, seed=0, X_calib=_inputs(model, 4))
    scores = dict(zip([t.layer for t in targets], get_method("bn-scale").scores(targets, context), strict=True))
    modules = dict(model.named_modules())
    for t in targets:
        if t.layer in pairing:
            expected = modules[pairing[t.layer]].weight.detach().abs()
        else:
            expected = t.weight.detach().abs().reshape(t.out_channels, -1).sum(1)
        torch.testing.assert_close(scores[t.layer], expected, msg=f"{case}: {t.layer}")


@pytest.mark.parametrize("case", list(CASES))
def test_apoz_and_mean_activation_are_of_the_batchnorm_output_the_relu_sees(case):
    build, pairing = CASES[case]
    model = build()
    X = _inputs(model)
    seen = _relu_inputs(model, X, pairing)
    targets = [t for t in find_targets(model) if t.layer in pairing]
    context = ScoringContext(model=model, seed=0, X_calib=X)
    apoz = get_method("apoz").scores(targets, context)
    mean = get_method("mean-activation").scores(targets, context)
    for t, a, m in zip(targets, apoz, mean, strict=True):
        v = seen[t.layer].movedim(1, 0).reshape(t.out_channels, -1).double()
        torch.testing.assert_close(a, (v > 0).double().mean(1), msg=f"{case}: {t.layer}")
        torch.testing.assert_close(m, v.clamp_min(0).mean(1), msg=f"{case}: {t.layer}")


@pytest.mark.parametrize("case", ["convs-first-residual", "swapped-branches", "depthwise-residual"])
def test_structured_masks_drop_the_entries_of_the_right_batchnorm(case):
    build, pairing = CASES[case]
    model = build()
    masks = MaskPlan.build(model, "bn-scale", X_calib=_inputs(model, 4)).masks(0.5, "layerwise")
    for layer, norm in pairing.items():
        if f"{norm}.weight" in masks:
            kept = masks[f"{layer}.weight"].reshape(len(masks[f"{norm}.weight"]), -1).any(1)
            assert torch.equal(masks[f"{norm}.weight"], kept), f"{case}: {layer} / {norm}"


@pytest.mark.parametrize("name", SAMPLES)
def test_on_the_sample_models_the_pairing_is_the_chains(name):
    sample = sample_models.load_sample(name)
    example = sample.data.X_train[:1]
    chain = {n: link.norm for n, link in graph.trace_links(sample.model, example).items() if link.norm}
    assert graph.norm_of(sample.model, example) == chain == SAMPLE_NORMS.get(name, {})


class Unrunnable(nn.Module):
    """A conv + BatchNorm model whose forward always fails: its dataflow cannot be recorded."""

    def __init__(self, interleaved: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        if interleaved:
            self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3)
        if not interleaved:
            self.bn1 = nn.BatchNorm2d(4)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("no forward")


def test_without_a_dataflow_registration_order_is_used_only_when_it_is_unambiguous_and_a_note_says_so():
    example = torch.zeros(1, 1, 8, 8)
    interleaved = graph.norm_pairing(Unrunnable(interleaved=True), example)
    assert interleaved.norms == {"conv1": "bn1", "conv2": "bn2"}
    assert interleaved.note is not None and "registration order" in interleaved.note
    convs_first = graph.norm_pairing(Unrunnable(interleaved=False), example)
    assert convs_first.norms == {}
    assert convs_first.note is not None and "no BatchNorm" in convs_first.note
    assert graph.norm_of(Unrunnable(interleaved=False), example) == {}


def test_a_recorded_dataflow_gives_no_note():
    model = ResidualNet()
    pairing = graph.norm_pairing(model)
    assert pairing.norms == {"stem": "stem_bn"} and pairing.note is None


def test_applying_a_structured_choice_carries_the_note_and_a_chain_gives_none():
    choice = PruningChoice(method="bn-scale", scope="layerwise", sparsity=0.5)
    applied = apply_choice(Unrunnable(interleaved=False), None, choice)
    assert any("no BatchNorm is paired" in note for note in applied.notes)
    assert not any("BatchNorm" in note for note in apply_choice(ResidualNet().eval(), None, choice).notes)
