"""Exact "prune the k lowest scores" selection, for many k at once, without sorting.

A sort of every score costs O(N log N) time and 3x the scores' memory (values plus int64 indices);
for a 10 M-parameter model that is slower than the evaluations it serves. Non-negative float32
values order like their bit patterns read as integers, so a radix select finds the exact k-th
smallest score for every k at once: one histogram of the high 16 bits tells which bin holds each
k-th value, and only the scores in those few bins are then sorted.

Ties are broken by position: among scores equal to the threshold, the earliest (in the order the
tensors are given, then flat index) are pruned first. So masks for growing k are nested.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

_HI_BINS = 1 << 15  # sign bit is 0 for non-negative floats


@dataclass(frozen=True)
class Threshold:
    """Prune every score below ``value`` and the first ``n_equal_pruned`` of those equal to it."""

    k: int
    value: float
    n_equal: int  # how many scores equal ``value``
    n_equal_pruned: int

    @property
    def is_simple(self) -> bool:
        """True when the pruned set is exactly ``score <= value``: no tie needs breaking."""
        return self.n_equal_pruned == self.n_equal


def _bits(scores: torch.Tensor) -> torch.Tensor:
    return scores.detach().reshape(-1).to(torch.float32).view(torch.int32)


def check_scores(scores: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Scores as float32, with -0.0 turned into +0.0; negative or NaN scores are a bug in a criterion."""
    cleaned = []
    for s in scores:
        s = s.detach().to(torch.float32) + 0.0  # -0.0 + 0.0 == +0.0, so bit order matches value order
        if bool((s < 0).any()) or bool(torch.isnan(s).any()):
            raise ValueError("pruning scores must be non-negative and not NaN")
        cleaned.append(s)
    return cleaned


def thresholds(scores: Sequence[torch.Tensor], ks: Sequence[int]) -> list[Threshold]:
    """For each k, the threshold that prunes exactly the k lowest of all ``scores`` together.

    ``scores`` must come from :func:`check_scores` (non-negative float32).
    """
    total = sum(s.numel() for s in scores)
    for k in ks:
        if not 0 <= k <= total:
            raise ValueError(f"cannot prune {k} of {total} elements")
    hist = torch.zeros(_HI_BINS, dtype=torch.int64)
    for s in scores:
        hist += torch.bincount(_bits(s) >> 16, minlength=_HI_BINS)
    cum_hi = torch.cumsum(hist, 0)
    positive_ks = sorted({k for k in ks if k > 0})
    bins = torch.searchsorted(cum_hi, torch.tensor(positive_ks, dtype=torch.int64))
    needed = torch.unique(bins)

    # Second pass: sort the few scores whose high bits fall in a bin that holds some k-th value.
    found: dict[int, Threshold] = {0: Threshold(0, -1.0, 0, 0)}  # k = 0: nothing is <= -1
    if positive_ks:
        needed_bins = needed.to(torch.int32)
        picked = torch.cat([_bits(s)[torch.isin(_bits(s) >> 16, needed_bins)] for s in scores])
        picked = torch.sort(picked).values
        # Offset of each needed bin inside the sorted picked values: the picked counts of lower bins.
        counts = hist[needed]
        offsets = dict(zip(needed.tolist(), (torch.cumsum(counts, 0) - counts).tolist()))
        for k, b in zip(positive_ks, bins.tolist()):
            below = int(cum_hi[b - 1]) if b > 0 else 0
            value_bits = picked[offsets[b] + (k - below) - 1]
            first = int(torch.searchsorted(picked, value_bits, side="left"))
            last = int(torch.searchsorted(picked, value_bits, side="right"))
            n_less = below + first - offsets[b]
            value = value_bits.view(torch.float32).item()
            found[k] = Threshold(k, value, last - first, k - n_less)
    return [found[k] for k in ks]


def kept_masks(scores: Sequence[torch.Tensor], threshold: Threshold) -> list[torch.Tensor]:
    """Boolean keep-masks (True = kept), shaped like each score tensor, for one threshold."""
    masks = [s > threshold.value for s in scores]
    if threshold.is_simple:
        return masks
    # Ties at the threshold: the first n_equal_pruned equal scores are pruned, the rest kept.
    to_prune = threshold.n_equal_pruned
    for s, mask in zip(scores, masks, strict=False):
        equal = (s.reshape(-1) == threshold.value).nonzero().squeeze(1)
        keep = equal[to_prune:]
        to_prune = max(0, to_prune - len(equal))
        mask.view(-1)[keep] = True
    return masks


def lowest_k_masks(scores: Sequence[torch.Tensor], ks: Sequence[int]) -> list[list[torch.Tensor]]:
    """Keep-masks that prune the k lowest scores across all tensors together, one list per k."""
    scores = check_scores(scores)
    return [kept_masks(scores, t) for t in thresholds(scores, ks)]
