"""Offline datasets with fixed, seeded train/validation/test splits.

Everything here ships inside a package (scikit-learn) or is generated locally (mnist1d); nothing is
downloaded. Each loader returns float32 inputs already shaped for its model and int64 labels.

The validation split is carved out of the original train split (stratified, ``VAL_FRACTION`` of
it, seeded), so the test split is exactly the one it always was. Anything that *selects* (knees,
sensitivity proposals) looks at validation; the test split only reports.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch

SPLIT_SEED = 0
VAL_FRACTION = 0.2  # of the original train split, stratified by class


class DataSplit(NamedTuple):
    """Train, test and validation tensors of one dataset (validation is optional for callers that
    build their own split; every sample has one)."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    X_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None


def split_indices(
    y: np.ndarray, fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) row indices of ``y``: a stratified, seeded ``fraction`` held out."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    kept, held = train_test_split(index, test_size=fraction, random_state=seed, stratify=np.asarray(y))
    return np.sort(kept), np.sort(held)


def _to_split(X_train, y_train, X_test, y_test, standardise: bool = False) -> DataSplit:
    """Tensors of a split; validation rows are taken out of the given train rows (stratified).
    With ``standardise``, features are centred and scaled with the statistics of the rows that
    remain for training, so neither validation nor test leaks into the preprocessing."""
    X_train, y_train = np.asarray(X_train), np.asarray(y_train)
    X_test, y_test = np.asarray(X_test), np.asarray(y_test)
    kept, held = split_indices(y_train)
    X_fit, y_fit, X_val, y_val = X_train[kept], y_train[kept], X_train[held], y_train[held]
    if standardise:
        mean, std = X_fit.mean(axis=0), X_fit.std(axis=0)
        X_fit, X_val, X_test = (X_fit - mean) / std, (X_val - mean) / std, (X_test - mean) / std

    def features(X) -> torch.Tensor:
        return torch.as_tensor(X, dtype=torch.float32)

    def labels(y) -> torch.Tensor:
        return torch.as_tensor(y, dtype=torch.int64)

    return DataSplit(features(X_fit), labels(y_fit), features(X_test), labels(y_test), features(X_val), labels(y_val))


def _reshape(split: DataSplit, *shape: int) -> DataSplit:
    """The same split with every input reshaped to ``shape`` (per sample)."""
    return DataSplit(
        split.X_train.reshape(-1, *shape),
        split.y_train,
        split.X_test.reshape(-1, *shape),
        split.y_test,
        split.X_val.reshape(-1, *shape) if split.X_val is not None else None,
        split.y_val,
    )


@functools.cache
def _digits_arrays():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = digits.data.astype(np.float32) / 16.0  # pixel intensities 0..16 -> 0..1
    return train_test_split(X, digits.target, test_size=0.2, random_state=SPLIT_SEED, stratify=digits.target)


def digits_flat() -> DataSplit:
    """scikit-learn digits as 64-dimensional vectors in [0, 1]: 1149 train, 288 validation, 360 test."""
    X_train, X_test, y_train, y_test = _digits_arrays()
    return _to_split(X_train, y_train, X_test, y_test)


def digits_images() -> DataSplit:
    """scikit-learn digits as 1x8x8 images in [0, 1]: 1149 train, 288 validation, 360 test."""
    return _reshape(digits_flat(), 1, 8, 8)


@functools.cache
def _mnist1d_arrays():
    # make_dataset generates the data locally; mnist1d's get_dataset() would try a download.
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = 42
    data = make_dataset(args)
    return data["x"], data["y"], data["x_test"], data["y_test"]


def mnist1d() -> DataSplit:
    """mnist1d sequences as 1x40 signals: 3200 train, 800 validation, 1000 test (generated locally, seeded)."""
    X_train, y_train, X_test, y_test = _mnist1d_arrays()
    split = _to_split(X_train, y_train, X_test, y_test)
    return _reshape(split, 1, split.X_train.shape[-1])


def moons() -> DataSplit:
    """Two interleaving half-moons with noise 0.25: 560 train, 140 validation, 300 test points in 2-D."""
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split

    X, y = make_moons(n_samples=1000, noise=0.25, random_state=SPLIT_SEED)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=SPLIT_SEED, stratify=y)
    return _to_split(X_train, y_train, X_test, y_test)


def breast_cancer() -> DataSplit:
    """Wisconsin breast cancer, 30 features standardised with train statistics: 340 train, 86 validation,
    143 test."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=SPLIT_SEED, stratify=data.target
    )
    return _to_split(X_train, y_train, X_test, y_test, standardise=True)
