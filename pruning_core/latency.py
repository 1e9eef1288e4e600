"""CPU sparse kernels: a pruned model whose weights are multiplied in CSR, and where that pays.

A dense kernel multiplies zeros like any other number, so masking makes nothing faster. A sparse
kernel (``torch.sparse`` CSR: only the nonzero weights and their column indices are stored and
visited) skips them, but pays for indirect memory access: on a CPU it is slower than dense at
moderate sparsity and faster only past some sparsity, which depends on the layer's size, the batch
and the machine. :func:`measure_break_even` measures that point; :func:`csr_model` turns a pruned
model's Linear layers (and plain convolutions, through im2col) into CSR so the whole model can be
timed beside the dense, masked and physically shrunk ones.

Nothing here changes process-global state (no thread counts, no global RNG): timings run beside
whatever else the process does, interleaved so that load affects every variant alike.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from pruning_core.masks import apply_masks
from pruning_core.shrink import compare_latency_ms

# torch warns once that CSR support is "beta"; the operations used here (to_sparse_csr, sparse.addmm)
# are stable and tested against the dense model, so the warning only confuses readers of the logs.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

BREAK_EVEN_SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)


class CSRLinear(nn.Module):
    """A Linear layer whose weight is stored in CSR and multiplied with ``torch.sparse.addmm``."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight_csr = linear.weight.detach().to_sparse_csr()
        self.bias_column = None if linear.bias is None else linear.bias.detach().reshape(-1, 1).clone()

    @property
    def nonzero(self) -> int:
        return int(self.weight_csr.values().numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # y^T = W x^T (+ b): the sparse operand must come first in torch.sparse.mm/addmm. A strided
        # (transposed) dense operand sends addmm down a path measured ~100x slower at 98 % sparsity.
        columns = x.reshape(-1, self.in_features).T.contiguous()
        if self.bias_column is None:
            out = torch.sparse.mm(self.weight_csr, columns)
        else:
            out = torch.sparse.addmm(self.bias_column, self.weight_csr, columns)
        return out.T.reshape(*x.shape[:-1], self.out_features)


class CSRConv(nn.Module):
    """A Conv1d/Conv2d computed as im2col (``unfold``) followed by a CSR matrix product."""

    def __init__(self, conv: nn.Conv1d | nn.Conv2d):
        super().__init__()
        self.one_d = isinstance(conv, nn.Conv1d)
        as_2d = (lambda v: (1, v[0])) if self.one_d else (lambda v: tuple(v))
        self.kernel_size, self.stride = as_2d(conv.kernel_size), as_2d(conv.stride)
        padding = cast(tuple[int, ...], conv.padding)
        self.padding: tuple[int, ...] = (0, padding[0]) if self.one_d else tuple(padding)
        self.dilation = as_2d(conv.dilation)
        self.out_channels = conv.out_channels
        self.weight_csr = conv.weight.detach().reshape(conv.out_channels, -1).to_sparse_csr()
        self.bias_column = None if conv.bias is None else conv.bias.detach().reshape(-1, 1).clone()

    @property
    def nonzero(self) -> int:
        return int(self.weight_csr.values().numel())

    @staticmethod
    def supports(module: nn.Module) -> bool:
        """Plain convolutions only: one group, zero padding given as numbers."""
        return (
            isinstance(module, nn.Conv1d | nn.Conv2d)
            and module.groups == 1
            and module.padding_mode == "zeros"
            and not isinstance(module.padding, str)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = x.unsqueeze(2) if self.one_d else x
        batch, height, width = images.shape[0], images.shape[2], images.shape[3]
        cols = nn.functional.unfold(images, self.kernel_size, self.dilation, self.padding, self.stride)
        positions = cols.shape[2]
        matrix = cols.transpose(0, 1).reshape(cols.shape[1], batch * positions).contiguous()
        if self.bias_column is None:
            out = torch.sparse.mm(self.weight_csr, matrix)
        else:
            out = torch.sparse.addmm(self.bias_column, self.weight_csr, matrix)
        out_h = _out_size(height, self.kernel_size[0], self.stride[0], self.padding[0], self.dilation[0])
        out_w = _out_size(width, self.kernel_size[1], self.stride[1], self.padding[1], self.dilation[1])
        out = out.reshape(self.out_channels, batch, out_h, out_w).transpose(0, 1)
        return out.squeeze(2) if self.one_d else out


def _out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def csr_model(
    model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None, convolutions: bool = True
) -> nn.Module:
    """A copy of ``model`` (masked by ``masks`` if given) whose Linear layers, and plain Conv1d/2d
    layers when ``convolutions``, store their weights in CSR and run sparse kernels.

    It computes what the masked dense model computes (up to float rounding). Other layers stay dense.
    ``model`` is not modified.
    """
    work = apply_masks(model, masks) if masks is not None else copy.deepcopy(model)
    work.eval()
    if isinstance(work, nn.Linear):
        return CSRLinear(work)
    if convolutions and CSRConv.supports(work):
        return CSRConv(cast(nn.Conv1d | nn.Conv2d, work))
    for name, module in list(work.named_modules()):
        if isinstance(module, nn.Linear):
            work.set_submodule(name, CSRLinear(module))
        elif convolutions and CSRConv.supports(module):
            work.set_submodule(name, CSRConv(module))
    return work


def csr_layers(model: nn.Module) -> dict[str, str]:
    """Which layers of a :func:`csr_model` run a sparse kernel, and which kernel."""
    kinds = {CSRLinear: "CSR (torch.sparse.addmm)", CSRConv: "im2col + CSR"}
    return {name: kinds[type(m)] for name, m in model.named_modules() if type(m) in kinds}


@dataclass(frozen=True)
class BreakEven:
    """Dense versus CSR latency of one Linear layer over a range of sparsities."""

    out_features: int
    in_features: int
    batch: int
    sparsities: tuple[float, ...]
    dense_ms: tuple[float, ...]
    csr_ms: tuple[float, ...]

    @property
    def speedups(self) -> tuple[float, ...]:
        """Dense time over CSR time at each sparsity: above 1, the sparse kernel is faster."""
        return tuple(d / c if c > 0 else math.inf for d, c in zip(self.dense_ms, self.csr_ms, strict=True))

    @property
    def faster_at(self) -> tuple[float, ...]:
        """The measured sparsities at which CSR was faster than dense."""
        return tuple(s for s, v in zip(self.sparsities, self.speedups, strict=True) if v > 1.0)

    @property
    def clear(self) -> bool:
        """True when the measurements show one break-even: slower below :attr:`pays_from`, faster from
        it on (or faster everywhere, or nowhere). Noise on a busy machine can break that pattern."""
        start = self.pays_from
        return self.faster_at == (() if start is None else tuple(s for s in self.sparsities if s >= start))

    @property
    def pays_from(self) -> float | None:
        """The lowest measured sparsity from which CSR is faster at it and every higher one measured,
        or None if CSR is not faster at the highest sparsity measured."""
        result = None
        for sparsity, speedup in reversed(list(zip(self.sparsities, self.speedups, strict=True))):
            if speedup <= 1.0:
                break
            result = sparsity
        return result

    @property
    def crossing(self) -> float | None:
        """Where the speedup crosses 1, interpolated in log speedup between the last measured
        sparsity where CSR is slower and :attr:`pays_from`; None if it never pays, and
        :attr:`pays_from` itself if CSR is already faster at the lowest sparsity measured."""
        start = self.pays_from
        if start is None:
            return None
        i = self.sparsities.index(start)
        if i == 0:
            return start
        s0, s1 = self.sparsities[i - 1], start
        r0, r1 = math.log(self.speedups[i - 1]), math.log(self.speedups[i])
        return s0 + (s1 - s0) * (0 - r0) / (r1 - r0) if r1 != r0 else s1


def random_sparse_weight(
    out_features: int, in_features: int, sparsity: float, generator: torch.Generator
) -> torch.Tensor:
    """A Gaussian weight with exactly ``round(sparsity * numel)`` zeros at random places."""
    numel = out_features * in_features
    weight = torch.randn(numel, generator=generator)
    weight[torch.randperm(numel, generator=generator)[: round(sparsity * numel)]] = 0.0
    return weight.reshape(out_features, in_features)


def measure_break_even(
    out_features: int,
    in_features: int,
    batch: int,
    sparsities: Sequence[float] = BREAK_EVEN_SPARSITIES,
    repeats: int | None = None,
    warmup: int = 2,
    seed: int = 0,
    budget_s: float = 0.25,
) -> BreakEven:
    """Median latency of a dense and a CSR Linear layer (``out_features`` x ``in_features``, no bias)
    on a batch of ``batch`` inputs, at each sparsity. Dense and CSR are timed interleaved, one
    sparsity at a time, so only one copy of the weight lives at once. Without ``repeats``, each
    sparsity gets as many repeats as fit in about ``budget_s`` seconds of dense time (9 to 200):
    small layers are fast and noisy, so they get more."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, in_features, generator=generator)
    dense_ms, csr_ms = [], []
    for sparsity in sparsities:
        # skip_init: a fresh Linear would draw its initial weights from the global RNG.
        dense = torch.nn.utils.skip_init(nn.Linear, in_features, out_features, bias=False)
        with torch.no_grad():
            dense.weight.copy_(random_sparse_weight(out_features, in_features, sparsity, generator))
        sparse = CSRLinear(dense)
        if repeats is None:
            once_ms = compare_latency_ms([dense], x, repeats=1, warmup=1)[0]
            n = int(min(200, max(9, budget_s * 1e3 / max(once_ms, 1e-3))))
        else:
            n = repeats
        d, c = compare_latency_ms([dense, sparse], x, repeats=n, warmup=warmup)
        dense_ms.append(d)
        csr_ms.append(c)
        del dense, sparse
    return BreakEven(out_features, in_features, batch, tuple(sparsities), tuple(dense_ms), tuple(csr_ms))


def largest_linear(model: nn.Module) -> tuple[str, int, int] | None:
    """The Linear layer with the most weights: (name, out_features, in_features), or None."""
    linears = [(n, m.out_features, m.in_features) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return max(linears, key=lambda t: t[1] * t[2]) if linears else None
