"""Rules of pruning_core.selection.lowest_k_masks: exact "prune the k lowest scores" selection."""

from __future__ import annotations

import math

import pytest
import torch
from core_helpers import FAST
from hypothesis import given
from hypothesis import strategies as st

from pruning_core.selection import lowest_k_masks

shapes = st.lists(st.lists(st.integers(0, 6), min_size=1, max_size=3).map(tuple), min_size=1, max_size=4)

# A small pool so that ties are everywhere: zeros of both signs, subnormals, huge values and infinity.
TIED_VALUES = [0.0, -0.0, 1e-45, 1e-40, 0.25, 1.0, 1.0000001, 3.0, 1e30, math.inf]


def flat(masks: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([m.reshape(-1) for m in masks]) if masks else torch.ones(0, dtype=torch.bool)


@st.composite
def tie_free_scores(draw):
    """Distinct non-negative float32 scores split into tensors of drawn shapes."""
    sizes = draw(shapes)
    total = sum(math.prod(s) for s in sizes)
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-6, 1e-3, 1.0, 1e3, 1e6]))
    generator = torch.Generator().manual_seed(seed)
    values = (torch.randperm(total, generator=generator).float() + draw(st.sampled_from([0.0, 1.0]))) * scale
    assert values.unique().numel() == total
    out, start = [], 0
    for s in sizes:
        n = math.prod(s)
        out.append(values[start : start + n].reshape(s))
        start += n
    return out


@st.composite
def tied_scores(draw):
    sizes = draw(shapes)
    return [
        torch.tensor(
            draw(st.lists(st.sampled_from(TIED_VALUES), min_size=math.prod(s), max_size=math.prod(s))),
            dtype=torch.float32,
        ).reshape(s)
        for s in sizes
    ]


@FAST
@given(scores=tie_free_scores(), data=st.data())
def test_lowest_k_masks_prune_what_torch_topk_smallest_selects_on_tie_free_scores(scores, data):
    total = sum(s.numel() for s in scores)
    ks = data.draw(st.lists(st.integers(0, total), min_size=1, max_size=5))
    everything = torch.cat([s.reshape(-1) for s in scores])
    for k, masks in zip(ks, lowest_k_masks(scores, ks), strict=True):
        expected = torch.ones(total, dtype=torch.bool)
        expected[torch.topk(everything, k, largest=False).indices] = False
        assert torch.equal(flat(masks), expected), k


@FAST
@given(scores=st.one_of(tied_scores(), tie_free_scores()), data=st.data())
def test_lowest_k_masks_are_boolean_and_shaped_like_their_scores(scores, data):
    total = sum(s.numel() for s in scores)
    k = data.draw(st.integers(0, total))
    (masks,) = lowest_k_masks(scores, [k])
    assert len(masks) == len(scores)
    for mask, score in zip(masks, scores, strict=True):
        assert mask.dtype == torch.bool
        assert mask.shape == score.shape


@FAST
@given(scores=tied_scores(), data=st.data())
def test_lowest_k_masks_prune_exactly_k_lowest_even_with_many_ties(scores, data):
    total = sum(s.numel() for s in scores)
    ks = data.draw(st.lists(st.integers(0, total), min_size=1, max_size=6))
    everything = torch.cat([s.reshape(-1) for s in scores]) + 0.0  # -0.0 ties with +0.0
    for k, masks in zip(ks, lowest_k_masks(scores, ks), strict=True):
        kept = flat(masks)
        assert int((~kept).sum()) == k
        if 0 < k < total:
            assert everything[~kept].max() <= everything[kept].min(), "a pruned score exceeds a kept one"


@FAST
@given(scores=tied_scores(), data=st.data())
def test_lowest_k_masks_break_ties_by_position_earliest_pruned_first(scores, data):
    total = sum(s.numel() for s in scores)
    k = data.draw(st.integers(0, total))
    everything = (torch.cat([s.reshape(-1) for s in scores]) + 0.0).tolist()
    order = sorted(range(total), key=lambda i: (everything[i], i))  # stable: value, then position
    expected = torch.ones(total, dtype=torch.bool)
    expected[order[:k]] = False
    (masks,) = lowest_k_masks(scores, [k])
    assert torch.equal(flat(masks), expected)


@FAST
@given(scores=st.one_of(tied_scores(), tie_free_scores()), data=st.data())
def test_lowest_k_masks_are_nested_in_k(scores, data):
    total = sum(s.numel() for s in scores)
    ks = sorted(data.draw(st.lists(st.integers(0, total), min_size=2, max_size=6)))
    kept = [flat(m) for m in lowest_k_masks(scores, ks)]
    for smaller, larger in zip(kept, kept[1:]):
        assert not (~smaller & larger).any(), "an element pruned at a smaller k is kept at a larger k"


@pytest.mark.parametrize("bad", [[-1.0, 2.0], [float("nan"), 1.0]])
def test_lowest_k_masks_reject_negative_or_nan_scores(bad):
    with pytest.raises(ValueError):
        lowest_k_masks([torch.tensor(bad)], [1])


@pytest.mark.parametrize("k", [-1, 5])
def test_lowest_k_masks_reject_k_outside_zero_to_total(k):
    with pytest.raises(ValueError):
        lowest_k_masks([torch.rand(4)], [k])
