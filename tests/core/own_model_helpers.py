"""Architectures no sample resembles, for the own-model loader tests (importable as factories).

``ResidualNet``: conv + BatchNorm, a residual block with a depthwise conv, a two-branch concat,
global average pooling, flatten and two linear layers, on 1x8x8 digit images. ``WideMLP``: an
MLP with LeakyReLU, Tanh and a Sigmoid gate multiplied in, on 13-feature wine data.
"""

from __future__ import annotations

import io
import warnings

import torch
from torch import nn


class ResidualNet(nn.Module):
    """Stem conv+BN, residual depthwise block, two-branch concat, GAP, flatten, MLP head."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.input_shape = (1, 8, 8)
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(16)
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pointwise = nn.Conv2d(16, 16, 1)
        self.branch_a = nn.Conv2d(16, 8, 3, stride=2, padding=1)
        self.branch_b = nn.Conv2d(16, 8, 1, stride=2, dilation=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 2 * 2, 128)
        self.fc2 = nn.Linear(128, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem_bn(self.stem(x)))
        x = x + self.pointwise(torch.relu(self.depthwise(x)))  # residual
        x = torch.cat([torch.relu(self.branch_a(x)), torch.relu(self.branch_b(x))], dim=1)  # 16 x 4 x 4
        x = self.pool(x)  # 16 x 2 x 2
        x = torch.flatten(x, 1)
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class WideMLP(nn.Module):
    """13 -> 48 -> 24 -> 3 with LeakyReLU, Tanh, and a sigmoid gate (x * sigmoid(g(x)))."""

    def __init__(self) -> None:
        super().__init__()
        self.input_shape = (13,)
        self.fc1 = nn.Linear(13, 48)
        self.gate = nn.Linear(13, 48)
        self.fc2 = nn.Linear(48, 24)
        self.out = nn.Linear(24, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.leaky_relu(self.fc1(x), 0.1) * torch.sigmoid(self.gate(x))
        return self.out(torch.tanh(self.fc2(h)))


class ConcatNet(nn.Module):
    """Two conv branches of different widths concatenated, a conv over the concatenation, GAP, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.input_shape = (2, 8, 8)
        self.left = nn.Conv2d(2, 6, 3, padding=1)
        self.right = nn.Conv2d(2, 4, 1)
        self.right_bn = nn.BatchNorm2d(4)
        self.mix = nn.Conv2d(10, 8, 3, padding=1)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([torch.relu(self.left(x)), torch.relu(self.right_bn(self.right(x)))], dim=1)
        x = nn.functional.adaptive_avg_pool2d(torch.relu(self.mix(x)), 1)
        return self.head(torch.flatten(x, 1))


class DepthwiseSeparable(nn.Module):
    """Conv + BN, a depthwise conv + BN, a pointwise conv, then average pooling and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.input_shape = (3, 6, 6)
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.bn = nn.BatchNorm2d(12)
        self.depthwise = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.depthwise_bn = nn.BatchNorm2d(12)
        self.pointwise = nn.Conv2d(12, 10, 1)
        self.pool = nn.AvgPool2d(2)
        self.head = nn.Linear(10 * 3 * 3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = torch.relu(self.depthwise_bn(self.depthwise(x)))
        x = self.pool(torch.relu(self.pointwise(x)))
        return self.head(x.flatten(1))


class ConvFlattenLinear(nn.Module):
    """Two convs, flatten straight into a linear layer (channel c -> a block of 16 inputs), a head."""

    def __init__(self) -> None:
        super().__init__()
        self.input_shape = (1, 4, 4)
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 5, 3, padding=1)
        self.fc = nn.Linear(5 * 4 * 4, 12)
        self.out = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.out(torch.relu(self.fc(torch.flatten(x, 1))))


class ConcatAddNet(nn.Module):
    """Two branches concatenated, then added to a third conv: each branch joins an offset range of it."""

    def __init__(self) -> None:
        super().__init__()
        self.input_shape = (2, 6, 6)
        self.a = nn.Conv2d(2, 5, 3, padding=1)
        self.b = nn.Conv2d(2, 3, 1)
        self.c = nn.Conv2d(2, 8, 3, padding=1)
        self.c_bn = nn.BatchNorm2d(8)
        self.mix = nn.Conv2d(8, 6, 3, stride=2, padding=1)
        self.head = nn.Linear(6 * 3 * 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(torch.cat([self.a(x), self.b(x)], 1) + self.c_bn(self.c(x)))
        return self.head(torch.relu(self.mix(x)).flatten(1))


class GroupedNet(nn.Module):
    """A stem conv feeding a grouped conv (groups=2): the stem's filters cannot be removed singly."""

    def __init__(self) -> None:
        super().__init__()
        self.input_shape = (1, 4, 4)
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 6, 3, padding=1, groups=2)
        self.fc = nn.Linear(6 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.grouped(torch.relu(self.stem(x))))
        return self.fc(torch.flatten(x, 1))


def seeded(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` with every parameter and BatchNorm statistic drawn from a seeded generator
    (running variances positive), in eval mode; changed in place and returned."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
    return model.eval()


def concat_net() -> nn.Module:
    return seeded(ConcatNet())


def depthwise_separable() -> nn.Module:
    return seeded(DepthwiseSeparable())


def conv_flatten_linear() -> nn.Module:
    return seeded(ConvFlattenLinear())


def concat_add_net() -> nn.Module:
    return seeded(ConcatAddNet())


def grouped_net() -> nn.Module:
    return seeded(GroupedNet())


def residual_net() -> nn.Module:
    """Factory for ``tests.core.own_model_helpers:residual_net`` (seeded, so builds are identical)."""
    generator = torch.Generator().manual_seed(0)
    model = ResidualNet()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    return model.eval()


def wide_mlp() -> nn.Module:
    """Factory for the wine MLP."""
    return WideMLP().eval()


def fit_readout(model: nn.Module, X: torch.Tensor, y: torch.Tensor, ridge: float = 1e-2) -> nn.Module:
    """Fit the last Linear layer in closed form (ridge regression on one-hot labels) over the random
    features below it: a model with real accuracy in about a second, where gradient training on
    this shared 2-core machine takes minutes. Returns ``model`` (changed in place) in eval mode."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    seen: list[torch.Tensor] = []
    handle = last.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            model.eval()(X)
    finally:
        handle.remove()
    features = torch.cat([seen[0], torch.ones(len(X), 1)], 1).double()
    targets = nn.functional.one_hot(y, last.out_features).double()
    gram = features.T @ features + ridge * torch.eye(features.shape[1], dtype=torch.double)
    solution = torch.linalg.solve(gram, features.T @ targets)
    with torch.no_grad():
        last.weight.copy_(solution[:-1].T.float())
        last.bias.copy_(solution[-1].float())
    return model


def to_onnx(model: nn.Module, example: torch.Tensor, keep_batchnorm: bool = False) -> bytes:
    """``torch.onnx.export`` with the TorchScript exporter (dynamo=False), as pruning_core.export does."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(), (example[:2],), buffer, dynamo=False, input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
            training=torch.onnx.TrainingMode.PRESERVE if keep_batchnorm else torch.onnx.TrainingMode.EVAL,
            do_constant_folding=not keep_batchnorm,
        )  # fmt: skip
    return buffer.getvalue()


def onnxruntime_outputs(onnx_bytes: bytes, x: torch.Tensor) -> list:
    """Every output of the ONNX model on ``x``, as onnxruntime computes them."""
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x.numpy()})


FACTORY_MODULE = "import sample_models\n\n\ndef build():\n    return sample_models.build('digits-cnn')\n"


def write_own_files(directory) -> nn.Module:
    """A user's files in ``directory``, as the command-line tests and the README's examples use
    them: ``net.onnx`` (a fitted ResidualNet), ``data.npz`` (digits, its own train/test split),
    ``data.csv`` (every digit, 64 pixel columns and a ``digit`` label column), ``weights.safetensors``
    (digits-cnn's weights) and ``mymodels.py`` (``build()``: the digits-cnn architecture).
    Returns the fitted ResidualNet."""
    from pathlib import Path

    import numpy as np
    from safetensors.torch import save

    import sample_models

    directory = Path(directory)
    digits = sample_models.datasets.digits_images()
    net = fit_readout(residual_net(), digits.X_train, digits.y_train)
    (directory / "net.onnx").write_bytes(to_onnx(net, digits.X_test))
    splits = {"X_train": digits.X_train, "y_train": digits.y_train, "X_test": digits.X_test, "y_test": digits.y_test}
    np.savez(directory / "data.npz", **{k: v.numpy() for k, v in splits.items()})
    X = torch.cat([digits.X_train, digits.X_test]).reshape(-1, 64).numpy()
    y = torch.cat([digits.y_train, digits.y_test]).numpy()
    lines = [",".join(f"p{i}" for i in range(64)) + ",digit"]
    lines += [",".join(f"{v:.9g}" for v in row) + f",{label}" for row, label in zip(X, y)]
    (directory / "data.csv").write_text("\n".join(lines) + "\n")
    cnn = sample_models.load_sample("digits-cnn").model
    (directory / "weights.safetensors").write_bytes(save({k: v.contiguous() for k, v in cnn.state_dict().items()}))
    (directory / "mymodels.py").write_text(FACTORY_MODULE)
    return net
