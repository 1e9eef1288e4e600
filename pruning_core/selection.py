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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import overload

import torch

# The first pass bins scores by their high 16 bits (sign bit cleared): 32768 bins, each 1/128 of
# an octave, so the second pass sorts only a sliver of the scores. (Fewer bins were measured
# slower even on small models: the sort grows faster than the histogram shrinks.)
_SHIFT = 16


@dataclass(frozen=True)
class Threshold:
    """Prune every score below ``value`` and the first ``n_equal_pruned`` of those equal to it."""

    k: int
    value: float
    n_equal: int  # how many scores equal ``value``
    n_equal_pruned: int
    pruned_per_tensor: tuple[int, ...] = ()  # how many of each tensor's elements are pruned

    @property
    def is_simple(self) -> bool:
        """True when the pruned set is exactly ``score <= value``: no tie needs breaking."""
        return self.n_equal_pruned == self.n_equal


class Magnitudes(Sequence[torch.Tensor]):
    """The absolute values of some tensors as scores, without a copy of them: ``self[i]`` computes
    ``|tensors[i]|`` when asked, and the selection below reads the tensors themselves (their bit
    patterns with the sign bit cleared are the magnitudes', so the thresholds and masks are the
    same as from the copy). The tensors must not change while the scores are used: a change raises
    RuntimeError rather than ranking other values."""

    def __init__(self, tensors: Iterable[torch.Tensor]) -> None:
        self._tensors = [t.detach() for t in tensors]
        self._versions = [t._version for t in self._tensors]

    @property
    def tensors(self) -> list[torch.Tensor]:
        """The signed tensors whose magnitudes these are (checked unchanged)."""
        if [t._version for t in self._tensors] != self._versions:
            raise RuntimeError("the weights changed after their magnitudes were taken as scores")
        return self._tensors

    def __len__(self) -> int:
        return len(self._tensors)

    @overload
    def __getitem__(self, index: int) -> torch.Tensor: ...

    @overload
    def __getitem__(self, index: slice) -> list[torch.Tensor]: ...

    def __getitem__(self, index: int | slice) -> torch.Tensor | list[torch.Tensor]:
        if isinstance(index, slice):
            return [t.abs() for t in self.tensors[index]]
        return self.tensors[index].abs()


def _signed(scores: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
    """Tensors whose bit patterns, sign bit cleared, are the scores' (no copy of magnitudes)."""
    return scores.tensors if isinstance(scores, Magnitudes) else scores


def shapes(scores: Sequence[torch.Tensor]) -> list[torch.Size]:
    """Each score tensor's shape, without computing lazy scores."""
    return [s.shape for s in _signed(scores)]


def _bits(scores: torch.Tensor) -> torch.Tensor:
    """The scores' bit patterns as int32: a view, no copy (mask the sign bit to read -0.0 as +0.0)."""
    return scores.detach().reshape(-1).view(torch.int32)


def _high_bits(bits: torch.Tensor, shift: int, out: torch.Tensor | None = None) -> torch.Tensor:
    high = bits >> shift if out is None else torch.bitwise_right_shift(bits, shift, out=out)
    return high.bitwise_and_((1 << (31 - shift)) - 1)


# Elements per pass over a large tensor. Each pass writes into buffers made once per tensor: a
# temporary allocated per pass beside the small results that are kept would leave the freed
# temporaries' memory carved up by those results, and the heap would grow by a chunk per pass.
_CHUNK = 1 << 17


def _scratch(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A buffer for one chunk of ``tensor`` (flat), reused by every pass over it."""
    return torch.empty(min(_CHUNK, tensor.numel()), dtype=dtype)


def _histogram(bits: torch.Tensor, shift: int) -> torch.Tensor:
    n_bins = 1 << (31 - shift)
    hist = torch.zeros(n_bins, dtype=torch.int64)
    high = _scratch(bits, torch.int32)
    for chunk in bits.split(_CHUNK):
        hist += torch.bincount(_high_bits(chunk, shift, out=high[: chunk.numel()]), minlength=n_bins)
    return hist


def _pick(bits: torch.Tensor, is_needed: torch.Tensor, shift: int) -> torch.Tensor:
    """The (sign-cleared, sorted) bits of the elements whose high bits are in a needed bin."""
    high, selected = _scratch(bits, torch.int32), _scratch(bits, torch.bool)
    parts = []
    for chunk in bits.split(_CHUNK):
        n = chunk.numel()
        torch.index_select(is_needed, 0, _high_bits(chunk, shift, out=high[:n]), out=selected[:n])
        parts.append(chunk[selected[:n]] & 0x7FFFFFFF)
    return torch.sort(torch.cat(parts)).values


def check_scores(scores: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
    """Scores as float32 (not copied when they already are); negative or NaN scores are a bug in a
    criterion and raise ValueError. :class:`Magnitudes` of float32 tensors stay as they are."""
    if isinstance(scores, Magnitudes) and all(t.dtype == torch.float32 for t in scores.tensors):
        if any(bool(torch.any(torch.isnan(t))) for t in scores.tensors):
            raise ValueError("pruning scores must be non-negative and not NaN")
        return scores
    cleaned = []
    for s in scores:
        s = s.detach()
        if s.dtype != torch.float32:
            s = s.to(torch.float32)
        if bool(torch.any(s < 0)) or bool(torch.any(torch.isnan(s))):
            raise ValueError("pruning scores must be non-negative and not NaN")
        cleaned.append(s)
    return cleaned


def thresholds(scores: Sequence[torch.Tensor], ks: Sequence[int]) -> list[Threshold]:
    """For each k, the threshold that prunes exactly the k lowest of all ``scores`` together, with
    how many elements of each tensor that prunes (so callers need not count them again).

    ``scores`` must come from :func:`check_scores` (non-negative float32).
    """
    signed = _signed(scores)
    total = sum(s.numel() for s in signed)
    for k in ks:
        if not 0 <= k <= total:
            raise ValueError(f"cannot prune {k} of {total} elements")
    found: dict[int, Threshold] = {0: Threshold(0, -1.0, 0, 0, (0,) * len(scores))}  # nothing is <= -1
    positive_ks = sorted({k for k in ks if k > 0})
    if positive_ks:
        # Bit views are free; each temporary below is one tensor's worth, never all of them at once.
        bits = [_bits(s) for s in signed]  # the high bits and _pick clear the sign bit
        shift = _SHIFT
        hists = torch.stack([_histogram(b, shift) for b in bits])  # [tensors, bins]
        cum_hi = torch.cumsum(hists.sum(0), 0)
        k_tensor = torch.tensor(positive_ks, dtype=torch.int64)
        bins = torch.searchsorted(cum_hi, k_tensor)  # the bin holding each k-th smallest value
        below = torch.where(bins > 0, cum_hi[(bins - 1).clamp_min(0)], 0)

        # Second pass: sort the few scores whose high bits fall in a bin that holds some k-th value.
        is_needed = torch.zeros(hists.shape[1], dtype=torch.bool)
        is_needed[bins] = True
        picked = [_pick(b, is_needed, shift) for b in bits]
        picked_all = torch.sort(torch.cat(picked)).values
        bin_start = (bins << shift).to(torch.int32)
        offset = torch.searchsorted(picked_all, bin_start)
        value_bits = picked_all[offset + (k_tensor - below) - 1]
        n_less = below + torch.searchsorted(picked_all, value_bits) - offset
        n_equal = torch.searchsorted(picked_all, value_bits, side="right") - torch.searchsorted(picked_all, value_bits)

        # Per tensor: elements below the value, and its share of the ties (earliest tensors first).
        cum_hi_t = torch.cumsum(hists, 1)
        below_t = torch.where(bins > 0, cum_hi_t[:, (bins - 1).clamp_min(0)], 0)
        less_t = (
            torch.stack([torch.searchsorted(p, value_bits) - torch.searchsorted(p, bin_start) for p in picked])
            + below_t
        )
        equal_t = torch.stack(
            [torch.searchsorted(p, value_bits, side="right") - torch.searchsorted(p, value_bits) for p in picked]
        )
        ties_to_prune = k_tensor - n_less
        ties_before = torch.cumsum(equal_t, 0) - equal_t
        pruned_t = less_t + torch.minimum((ties_to_prune - ties_before).clamp_min(0), equal_t)

        values = value_bits.view(torch.float32).tolist()
        for i, k in enumerate(positive_ks):
            found[k] = Threshold(
                k,
                values[i],
                int(n_equal[i]),
                int(ties_to_prune[i]),
                tuple(pruned_t[:, i].tolist()),
            )
    return [found[k] for k in ks]


def kept_masks(scores: Sequence[torch.Tensor], threshold: Threshold) -> list[torch.Tensor]:
    """Boolean keep-masks (True = kept), shaped like each score tensor, for one threshold."""
    if isinstance(scores, Magnitudes):
        masks = [_magnitude_above(t, threshold.value) for t in scores.tensors]
    else:
        masks = [s > threshold.value for s in scores]
    if threshold.is_simple:
        return masks
    # Ties at the threshold: the first n_equal_pruned equal scores are pruned, the rest kept.
    to_prune = threshold.n_equal_pruned
    for s, mask in zip(_signed(scores), masks, strict=False):
        equal = _equal_positions(s, threshold.value, isinstance(scores, Magnitudes))
        keep = equal[to_prune:]
        to_prune = max(0, to_prune - len(equal))
        mask.view(-1)[keep] = True
    return masks


def _equal_positions(tensor: torch.Tensor, value: float, magnitude: bool) -> torch.Tensor:
    """Flat indices where ``tensor`` (its magnitude when ``magnitude``) equals ``value``, in order,
    a chunk at a time (no whole-tensor temporary)."""
    flat = tensor.detach().reshape(-1)
    found = []
    magnitudes, equal = _scratch(flat, flat.dtype), _scratch(flat, torch.bool)
    for start in range(0, flat.numel(), _CHUNK):
        chunk = flat[start : start + _CHUNK]
        n = chunk.numel()
        chunk = torch.abs(chunk, out=magnitudes[:n]) if magnitude else chunk
        found.append(torch.eq(chunk, value, out=equal[:n]).nonzero().squeeze(1) + start)
    return torch.cat(found) if found else torch.zeros(0, dtype=torch.long)


def _magnitude_above(tensor: torch.Tensor, value: float) -> torch.Tensor:
    """``tensor.abs() > value``, a chunk at a time (no magnitude copy of the whole tensor)."""
    mask = torch.empty(tensor.shape, dtype=torch.bool)
    flat = tensor.reshape(-1)
    magnitudes = _scratch(flat, flat.dtype)
    for start in range(0, flat.numel(), _CHUNK):
        chunk = flat[start : start + _CHUNK]
        torch.gt(torch.abs(chunk, out=magnitudes[: chunk.numel()]), value, out=mask.view(-1)[start : start + _CHUNK])
    return mask


def lowest_k_masks(scores: Sequence[torch.Tensor], ks: Sequence[int]) -> list[list[torch.Tensor]]:
    """Keep-masks that prune the k lowest scores across all tensors together, one list per k."""
    scores = check_scores(scores)
    return [kept_masks(scores, t) for t in thresholds(scores, ks)]
