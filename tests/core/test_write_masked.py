"""masks.write_masked writes original * mask a chunk at a time: the same bits as torch.mul."""

from __future__ import annotations

import torch

from pruning_core import masks as masks_module
from pruning_core.masks import write_masked


def _case(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    original = torch.randn(shape, generator=generator)
    original.view(-1)[:7] = -0.0
    mask = torch.rand(shape, generator=generator) > 0.4
    return original, mask


def test_chunked_product_has_the_bits_of_torch_mul(monkeypatch):
    monkeypatch.setattr(masks_module, "_MASK_CHUNK", 13)  # chunks that do not divide the tensor
    original, mask = _case((37, 11))
    want = torch.mul(original, mask)
    out = torch.full_like(original, float("nan"))
    write_masked(original, mask, out)
    assert torch.equal(out.view(torch.int32), want.view(torch.int32))  # signed zeros included
    in_place = original.clone()
    write_masked(in_place, mask, in_place)
    assert torch.equal(in_place.view(torch.int32), want.view(torch.int32))


def test_strided_and_broadcast_operands_fall_back_to_the_plain_product():
    original, mask = _case((12, 10))
    out = torch.empty(10, 12)
    write_masked(original.t(), mask.t(), out)  # non-contiguous inputs
    assert torch.equal(out, torch.mul(original.t(), mask.t()))
    row_mask = mask[:1]  # a (1, 10) mask broadcast over the rows
    out = torch.empty(12, 10)
    write_masked(original, row_mask, out)
    assert torch.equal(out, original * row_mask)
