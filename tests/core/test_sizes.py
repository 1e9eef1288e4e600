"""Rules of the stored size of a sparse tensor: the smallest real encoding, never above dense."""

from __future__ import annotations

import math

import numpy as np
import torch
from core_helpers import FAST
from hypothesis import given
from hypothesis import strategies as st

from pruning_core.metrics import sparse_tensor_bytes


def encoded_sizes(tensor: torch.Tensor) -> dict[str, int]:
    """Bytes of a tensor in each encoding, measured on the encodings themselves (torch's CSR with
    int32 indices, numpy's packed bitmask), not from a formula."""
    element = tensor.element_size()
    matrix = tensor.reshape(tensor.shape[0], -1) if tensor.dim() > 1 else tensor.reshape(1, -1)
    csr = matrix.to_sparse_csr()
    crow, col = csr.crow_indices().to(torch.int32), csr.col_indices().to(torch.int32)
    values = csr.values()
    bitmask = np.packbits((tensor != 0).reshape(-1).numpy())
    return {
        "dense": tensor.numel() * element,
        "csr": crow.numel() * crow.element_size() + col.numel() * col.element_size() + values.numel() * element,
        "bitmask": bitmask.nbytes + int((tensor != 0).sum()) * element,
    }


@FAST
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    density=st.floats(0.0, 1.0),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.float64]),
    seed=st.integers(0, 2**31 - 1),
)
def test_sparse_size_is_the_smallest_encoding_and_never_above_dense(shape, density, dtype, seed):
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(shape, generator=generator).to(dtype)
    tensor = values * (torch.rand(shape, generator=generator) < density)
    nonzero = int(torch.count_nonzero(tensor))
    sizes = encoded_sizes(tensor)
    stored = sparse_tensor_bytes(tuple(shape), nonzero, tensor.element_size())
    assert stored <= sizes["dense"] == math.prod(shape) * tensor.element_size()
    assert stored == min(sizes.values()), sizes


@given(shape=st.lists(st.integers(1, 64), min_size=2, max_size=3))
def test_a_dense_tensor_costs_exactly_its_dense_bytes(shape):
    numel = math.prod(shape)
    assert sparse_tensor_bytes(tuple(shape), numel, 4) == numel * 4
