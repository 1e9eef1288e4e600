"""Magnitude scores are the weights read without their sign (selection.Magnitudes), not a copy of
|w|: the thresholds and masks must be exactly those of the copy, ties and signed zeros included."""

from __future__ import annotations

import pytest
import torch

from pruning_core import selection
from pruning_core.masks import MaskPlan


def _weights() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(300, 70, generator=generator)
    a.view(-1)[:50] = 0.0
    a.view(-1)[50:100] = -0.0
    b = torch.randn(5, 3, 3, 3, generator=generator).round(decimals=1)  # many ties, both signs
    c = -a[:40, :10].clone()  # magnitudes equal to a's, opposite signs
    return [a, b, c]


def test_thresholds_and_masks_of_magnitudes_equal_those_of_the_absolute_copy():
    weights = _weights()
    lazy = selection.check_scores(selection.Magnitudes(weights))
    copied = selection.check_scores([w.abs() for w in weights])
    total = sum(w.numel() for w in weights)
    ks = [0, 1, 49, 100, 101, total // 3, total // 2, total - 1, total]
    assert selection.thresholds(lazy, ks) == selection.thresholds(copied, ks)
    for threshold in selection.thresholds(copied, ks):
        for got, want in zip(selection.kept_masks(lazy, threshold), selection.kept_masks(copied, threshold)):
            assert torch.equal(got, want)
    assert all(torch.equal(lazy[i], copied[i]) for i in range(len(weights)))


def test_magnitude_plan_keeps_no_copy_and_refuses_changed_weights():
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    plan = MaskPlan.build(model, "magnitude")
    assert isinstance(plan.scores, selection.Magnitudes)
    assert plan.scores.tensors[0].data_ptr() == model[0].weight.data_ptr()
    masks = plan.masks(0.5)
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.5 * (8 * 16 + 16 * 4))
    with torch.no_grad():
        model[0].weight.mul_(2)
    with pytest.raises(RuntimeError, match="weights changed"):
        plan.masks(0.5)


def test_masks_read_large_tensors_a_chunk_at_a_time_with_the_same_result(monkeypatch):
    """Thresholds, masks and tie positions are computed over chunks of a large tensor; with chunks
    smaller than every tensor (ties falling on both sides of chunk boundaries) nothing changes."""
    weights = _weights()
    copied = selection.check_scores([w.abs() for w in weights])
    total = sum(w.numel() for w in weights)
    ks = [1, 49, 100, 101, total // 3, total // 2, total - 1]
    expected = [[m.clone() for m in selection.kept_masks(copied, t)] for t in selection.thresholds(copied, ks)]
    monkeypatch.setattr(selection, "_CHUNK", 37)
    lazy = selection.check_scores(selection.Magnitudes(weights))
    assert selection.thresholds(lazy, ks) == selection.thresholds(copied, ks)
    assert any(not t.is_simple for t in selection.thresholds(lazy, ks))  # ties are resolved here
    for want, threshold in zip(expected, selection.thresholds(lazy, ks), strict=True):
        for got_mask, want_mask in zip(selection.kept_masks(lazy, threshold), want, strict=True):
            assert torch.equal(got_mask, want_mask)
