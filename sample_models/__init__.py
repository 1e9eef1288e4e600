"""The sample model zoo: small models with shipped weights that load instantly and work offline.

>>> import sample_models
>>> sample_models.available()
['digits-mlp', 'digits-cnn', 'mnist1d-cnn', 'moons-mlp', 'cancer-mlp']
>>> sample = sample_models.load_sample("digits-mlp")
>>> sample.model, sample.data.X_test.shape, sample.n_classes
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from sample_models import architectures, datasets
from sample_models.datasets import DataSplit

__all__ = [
    "SampleSpec", "Sample", "DataSplit", "available", "build", "get_spec", "initial_state", "load_sample",
    "WEIGHTS_DIR",
]  # fmt: skip

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class TrainingConfig:
    """How a sample's shipped weights were trained (deterministic given the seed)."""

    epochs: int
    lr: float
    batch_size: int = 64
    weight_decay: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class SampleSpec:
    """Everything needed to build, train and load one sample model."""

    name: str
    description: str
    build: Callable[[], nn.Module]
    load_data: Callable[[], DataSplit]
    n_classes: int
    dataset: str
    training: TrainingConfig = field(default_factory=lambda: TrainingConfig(epochs=30, lr=1e-3))

    @property
    def weights_path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.safetensors"

    @property
    def info_path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.json"


@dataclass(frozen=True)
class Sample:
    """A loaded sample: a fresh model in eval mode plus its data and recorded test accuracy."""

    name: str
    description: str
    model: nn.Module
    data: DataSplit
    n_classes: int
    dataset: str
    recorded_accuracy: float


_SPECS: dict[str, SampleSpec] = {
    spec.name: spec
    for spec in [
        SampleSpec(
            name="digits-mlp",
            description="64-300-100-10 MLP (the LeNet-300-100 shape) on scikit-learn's 8x8 digits.",
            build=lambda: architectures.MLP([64, 300, 100, 10]),
            load_data=datasets.digits_flat,
            n_classes=10,
            dataset="digits (8x8, 10 classes)",
            training=TrainingConfig(epochs=30, lr=1e-3),
        ),
        SampleSpec(
            name="digits-cnn",
            description="LeNet-style CNN (2 conv + BatchNorm, 2 linear) on the digits as 1x8x8 images.",
            build=architectures.DigitsCNN,
            load_data=datasets.digits_images,
            n_classes=10,
            dataset="digits (1x8x8 images, 10 classes)",
            training=TrainingConfig(epochs=30, lr=2e-3),
        ),
        SampleSpec(
            name="mnist1d-cnn",
            description="1-D CNN (3 strided conv + linear) on mnist1d, 40-sample signals generated locally.",
            build=architectures.Conv1dNet,
            load_data=datasets.mnist1d,
            n_classes=10,
            dataset="mnist1d (1x40 signals, 10 classes)",
            training=TrainingConfig(epochs=60, lr=3e-3, batch_size=128, weight_decay=1e-4),
        ),
        SampleSpec(
            name="moons-mlp",
            description="Over-parameterised 2-256-256-2 MLP on noisy two moons: prunes a lot before it breaks.",
            build=lambda: architectures.MLP([2, 256, 256, 2]),
            load_data=datasets.moons,
            n_classes=2,
            dataset="two moons (2-D points, noise 0.25)",
            training=TrainingConfig(epochs=60, lr=1e-3),
        ),
        SampleSpec(
            name="cancer-mlp",
            description="30-64-32-2 MLP for binary breast-cancer diagnosis from standardised features.",
            build=lambda: architectures.MLP([30, 64, 32, 2]),
            load_data=datasets.breast_cancer,
            n_classes=2,
            dataset="breast cancer (30 features, 2 classes)",
            training=TrainingConfig(epochs=40, lr=1e-3),
        ),
    ]
}


def available() -> list[str]:
    """Names of the sample models, in display order."""
    return list(_SPECS)


def get_spec(name: str) -> SampleSpec:
    """The spec of a sample; an unknown name raises ValueError listing the valid names."""
    try:
        return _SPECS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown sample model {name!r}; valid names: {', '.join(available())}") from None


@functools.cache
def _data(name: str) -> DataSplit:
    return get_spec(name).load_data()


@functools.cache
def _state_dict(name: str) -> dict[str, torch.Tensor]:
    spec = get_spec(name)
    if not spec.weights_path.exists():
        raise FileNotFoundError(
            f"no shipped weights for {name!r} at {spec.weights_path}; "
            f"train them with: python -m sample_models.train {name}"
        )
    return load_file(spec.weights_path)


def recorded_info(name: str) -> dict:
    """The training record shipped next to the weights (test accuracy, epochs, ...)."""
    return json.loads(get_spec(name).info_path.read_text())


def initial_state(name: str, seed: int | None = None) -> dict[str, torch.Tensor]:
    """The weights a sample starts training from: its architecture initialised under its training
    seed (the shipped weights were trained from exactly these), or under ``seed`` for a fresh draw.

    Drawn from a private generator, never the global random state: on a shared server other threads
    may draw from it at any moment, and a global seed would make both sides' results depend on timing.
    """
    spec = get_spec(name)
    return build(name, seed=spec.training.seed if seed is None else seed).state_dict()


def build(name: str, seed: int = 0) -> nn.Module:
    """A sample's architecture with PyTorch's default initialisation drawn from a generator seeded
    with ``seed``: the same values ``torch.manual_seed(seed); spec.build()`` gives, without touching
    the global random state."""
    spec = get_spec(name)
    generator = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        model = spec.build()
    model = model.to_empty(device="cpu")
    for module in model.modules():  # construction order: the order the default init draws in
        _reset(module, generator)
    return model.eval()


def _reset(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default ``reset_parameters`` of a layer, drawing from ``generator``."""
    if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
        with torch.no_grad():
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        module.reset_parameters()  # ones, zeros and fresh running statistics: nothing random
    elif any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False)):
        raise TypeError(f"no seeded initialisation for {type(module).__name__}; add it to sample_models._reset")


def load_sample(name: str) -> Sample:
    """Load a sample model with its shipped weights (never trains). Each call returns a fresh model.

    The data tensors are shared between calls; treat them as read-only.
    """
    spec = get_spec(name)
    model = build(name)
    model.load_state_dict(_state_dict(name))
    model.eval()
    return Sample(
        name=spec.name,
        description=spec.description,
        model=model,
        data=_data(name),
        n_classes=spec.n_classes,
        dataset=spec.dataset,
        recorded_accuracy=float(recorded_info(name)["test_accuracy"]),
    )
