"""Model definitions of the sample zoo.

Layers are named attributes (``fc1``, ``conv1``, ``bn1``...) so that parameter names read well in
the UI and in recipes, and every forward is a plain chain whose recorded dataflow (``pruning_core.dataflow``)
lets the engine link biases and BatchNorm entries to their layer and remove neurons physically.
"""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Fully connected ReLU network: ``in -> hidden... -> out``; layers named fc1, fc2, ..."""

    def __init__(self, sizes: list[int]):
        super().__init__()
        self.sizes = list(sizes)
        self.input_shape = (self.sizes[0],)  # one sample's shape, for analysing the dataflow without data
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False), start=1):
            setattr(self, f"fc{i}", nn.Linear(n_in, n_out))
        self.n_layers = len(sizes) - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for i in range(1, self.n_layers):
            x = torch.relu(getattr(self, f"fc{i}")(x))
        return getattr(self, f"fc{self.n_layers}")(x)


class DigitsCNN(nn.Module):
    """LeNet-style CNN for 1x8x8 digit images: two conv+BatchNorm blocks, then two linear layers."""

    def __init__(self, channels: tuple[int, int] = (16, 32), hidden: int = 64, n_classes: int = 10):
        super().__init__()
        c1, c2 = channels
        self.input_shape = (1, 8, 8)
        self.conv1 = nn.Conv2d(1, c1, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(c2)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(c2 * 2 * 2, hidden)
        self.fc2 = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))  # 8x8 -> 4x4
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))  # 4x4 -> 2x2
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        return self.fc2(x)


class Conv1dNet(nn.Module):
    """1-D CNN for mnist1d sequences (1x40): three strided conv layers, then a linear classifier."""

    def __init__(self, channels: int = 32, length: int = 40, n_classes: int = 10):
        super().__init__()
        self.input_shape = (1, length)
        self.conv1 = nn.Conv1d(1, channels, kernel_size=5, stride=2, padding=2)  # 40 -> 20
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=5, stride=2, padding=2)  # 20 -> 10
        self.conv3 = nn.Conv1d(channels, channels, kernel_size=5, stride=2, padding=2)  # 10 -> 5
        self.fc1 = nn.Linear(channels * (length // 8), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        return self.fc1(torch.flatten(x, 1))
