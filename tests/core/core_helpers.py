"""Builders shared by the engine tests: random small models (hypothesis), snapshots, torch references.

Everything here is computed independently of ``pruning_core`` (layer lists, BatchNorm links and
output layers are known by construction), so the tests compare the engine with an outside truth.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.utils.prune as prune
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from torch import nn

import sample_models
from sample_models import architectures

REPO_ROOT = Path(__file__).resolve().parents[2]

SAMPLES = ["digits-mlp", "digits-cnn", "mnist1d-cnn", "moons-mlp", "cancer-mlp"]
UNSTRUCTURED = ["magnitude", "random"]
NORM_STRUCTURED = ["structured-l1", "structured-l2"]  # ranked by a weight norm (Li et al. 2017)
STRUCTURED = [*NORM_STRUCTURED, "structured-random"]
NM = ["nm-2:4", "nm-1:4"]
METHODS = UNSTRUCTURED + STRUCTURED + NM
PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

# BatchNorm that follows each layer of the sample models, read off sample_models/architectures.py.
SAMPLE_NORMS = {"digits-cnn": {"conv1": "bn1", "conv2": "bn2"}}

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sparsities = st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_nan=False)


@dataclass
class Case:
    """A small model with an input batch, its BatchNorm links and output layer known by construction."""

    kind: str
    model: nn.Module
    x: torch.Tensor
    output: str
    norms: dict[str, str] = field(default_factory=dict)

    @property
    def n_out(self) -> int:
        return layers(self.model)[self.output].weight.shape[0]

    def labels(self, seed: int = 0) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return torch.randint(0, self.n_out, (len(self.x),), generator=generator)

    def __repr__(self) -> str:
        shapes = {n: tuple(m.weight.shape) for n, m in layers(self.model).items()}
        return f"Case({self.kind}, {shapes}, norms={self.norms})"


def layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every Linear/Conv module by name, in module order."""
    return {n: m for n, m in model.named_modules() if n and isinstance(m, PRUNABLE)}


def randomise_norms(model: nn.Module) -> None:
    """Give every BatchNorm non-trivial statistics and affine parameters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()


def sample_case(name: str) -> Case:
    sample = sample_models.load_sample(name)
    output = list(layers(sample.model))[-1]
    return Case(name, sample.model, sample.data.X_test, output, dict(SAMPLE_NORMS.get(name, {})))


_KINDS = ("sequential-mlp", "mlp", "conv-bn", "digits-cnn", "conv1d")


@st.composite
def cases(draw, kinds=_KINDS, batch: int = 6) -> Case:
    """A random small eval-mode model with at least two prunable layers, built from a drawn seed."""
    kind = draw(st.sampled_from(kinds))
    seed = draw(st.integers(0, 2**31 - 1))
    width = st.integers(1, 12)
    if kind in ("sequential-mlp", "mlp"):
        sizes = draw(st.lists(width, min_size=3, max_size=5))
        biases = draw(st.lists(st.booleans(), min_size=len(sizes) - 1, max_size=len(sizes) - 1))
        torch.manual_seed(seed)
        if kind == "mlp":
            model = architectures.MLP(sizes)
            output = f"fc{len(sizes) - 1}"
        else:
            mods: list[nn.Module] = []
            for a, b, bias in zip(sizes[:-1], sizes[1:], biases, strict=True):
                mods += [nn.Linear(a, b, bias=bias), nn.ReLU()]
            model = nn.Sequential(*mods[:-1])
            output = str(len(mods) - 2)
        x = torch.randn(batch, sizes[0])
        norms: dict[str, str] = {}
    elif kind == "conv-bn":
        c_in, c1, c2 = draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
        hw, n_out = draw(st.integers(2, 5)), draw(st.integers(2, 5))
        bias2 = draw(st.booleans())
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(c_in, c1, 3, padding=1),
            nn.BatchNorm2d(c1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1, bias=bias2),
            nn.BatchNorm2d(c2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c2 * hw * hw, n_out),
        )
        x, output, norms = torch.randn(batch, c_in, hw, hw), "7", {"0": "1", "3": "4"}
    elif kind == "digits-cnn":
        c1, c2, hidden = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(width)
        n_out = draw(st.integers(2, 10))
        torch.manual_seed(seed)
        model = architectures.DigitsCNN(channels=(c1, c2), hidden=hidden, n_classes=n_out)
        x, output, norms = torch.randn(batch, 1, 8, 8), "fc2", {"conv1": "bn1", "conv2": "bn2"}
    else:
        channels, length = draw(st.integers(1, 6)), draw(st.sampled_from([8, 16, 24, 40]))
        n_out = draw(st.integers(2, 10))
        torch.manual_seed(seed)
        model = architectures.Conv1dNet(channels=channels, length=length, n_classes=n_out)
        x, output, norms = torch.randn(batch, 1, length), "fc1", {}
    randomise_norms(model)
    model.eval()
    return Case(kind, model, x, output, norms)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_state_unchanged(model: nn.Module, before: dict[str, torch.Tensor], after_what: str) -> None:
    now = model.state_dict()
    assert list(now) == list(before), f"{after_what} changed the model's state_dict keys"
    changed = [k for k, v in now.items() if not torch.equal(v, before[k])]
    assert not changed, f"{after_what} modified the caller's model: {changed}"


def pruned_count(mask: torch.Tensor) -> int:
    return int((~mask).sum())


# --- torch.nn.utils.prune references (applied to deep copies) ----------------------------------------


def torch_global_l1(model: nn.Module, amount: float) -> dict[str, torch.Tensor]:
    ref = copy.deepcopy(model)
    mods = layers(ref)
    prune.global_unstructured(
        [(m, "weight") for m in mods.values()], pruning_method=prune.L1Unstructured, amount=amount
    )
    return {f"{n}.weight": m.weight_mask.bool() for n, m in mods.items()}


def torch_layerwise_l1(model: nn.Module, amount: float) -> dict[str, torch.Tensor]:
    ref = copy.deepcopy(model)
    out = {}
    for n, m in layers(ref).items():
        prune.l1_unstructured(m, "weight", amount=amount)
        out[f"{n}.weight"] = m.weight_mask.bool()
    return out


def torch_ln_structured(model: nn.Module, amount: float, p: int, skip: str) -> dict[str, torch.Tensor]:
    ref = copy.deepcopy(model)
    out = {}
    for n, m in layers(ref).items():
        if n == skip:
            continue
        prune.ln_structured(m, "weight", amount=amount, n=p, dim=0)
        out[f"{n}.weight"] = m.weight_mask.bool()
    return out


def row_keep(mask: torch.Tensor) -> torch.Tensor:
    """Per output neuron: is any of its weights kept."""
    return mask.reshape(mask.shape[0], -1).any(1)
