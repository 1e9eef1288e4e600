"""Offline datasets with fixed, seeded train/test splits.

Everything here ships inside a package (scikit-learn) or is generated locally (mnist1d); nothing is
downloaded. Each loader returns float32 inputs already shaped for its model and int64 labels.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch

SPLIT_SEED = 0


class DataSplit(NamedTuple):
    """Train and test tensors of one dataset."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor


def _to_split(X_train, y_train, X_test, y_test) -> DataSplit:
    return DataSplit(
        torch.as_tensor(np.asarray(X_train), dtype=torch.float32),
        torch.as_tensor(np.asarray(y_train), dtype=torch.int64),
        torch.as_tensor(np.asarray(X_test), dtype=torch.float32),
        torch.as_tensor(np.asarray(y_test), dtype=torch.int64),
    )


@functools.cache
def _digits_arrays():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = digits.data.astype(np.float32) / 16.0  # pixel intensities 0..16 -> 0..1
    return train_test_split(X, digits.target, test_size=0.2, random_state=SPLIT_SEED, stratify=digits.target)


def digits_flat() -> DataSplit:
    """scikit-learn digits as 64-dimensional vectors in [0, 1]: 1437 train, 360 test."""
    X_train, X_test, y_train, y_test = _digits_arrays()
    return _to_split(X_train, y_train, X_test, y_test)


def digits_images() -> DataSplit:
    """scikit-learn digits as 1x8x8 images in [0, 1]: 1437 train, 360 test."""
    X_train, X_test, y_train, y_test = _digits_arrays()
    return _to_split(X_train.reshape(-1, 1, 8, 8), y_train, X_test.reshape(-1, 1, 8, 8), y_test)


@functools.cache
def _mnist1d_arrays():
    # make_dataset generates the data locally; mnist1d's get_dataset() would try a download.
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = 42
    data = make_dataset(args)
    return data["x"], data["y"], data["x_test"], data["y_test"]


def mnist1d() -> DataSplit:
    """mnist1d sequences as 1x40 signals: 4000 train, 1000 test (generated locally, seeded)."""
    X_train, y_train, X_test, y_test = _mnist1d_arrays()
    split = _to_split(X_train, y_train, X_test, y_test)
    return DataSplit(split.X_train[:, None, :], split.y_train, split.X_test[:, None, :], split.y_test)


def moons() -> DataSplit:
    """Two interleaving half-moons with noise 0.25: 700 train, 300 test points in 2-D."""
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split

    X, y = make_moons(n_samples=1000, noise=0.25, random_state=SPLIT_SEED)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=SPLIT_SEED, stratify=y)
    return _to_split(X_train, y_train, X_test, y_test)


def breast_cancer() -> DataSplit:
    """Wisconsin breast cancer, 30 features standardised with train statistics: 426 train, 143 test."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=SPLIT_SEED, stratify=data.target
    )
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    return _to_split((X_train - mean) / std, y_train, (X_test - mean) / std, y_test)
