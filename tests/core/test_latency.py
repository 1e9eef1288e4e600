"""Rules of the CPU sparse-kernel measurements: CSR models compute what the masked dense model
computes, the break-even point is read correctly off the measurements, and nothing global changes.
Timings themselves are never asserted (they belong in ``make bench``)."""

from __future__ import annotations

import math

import pytest
import torch
from core_helpers import FEW, SAMPLES, assert_state_unchanged, cases, layers, sample_case, snapshot
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from pruning_core import apply_masks, compute_masks
from pruning_core.latency import (
    BreakEven,
    CSRConv,
    CSRLinear,
    csr_layers,
    csr_model,
    largest_linear,
    measure_break_even,
    random_sparse_weight,
)


def outputs_agree(a: torch.Tensor, b: torch.Tensor) -> None:
    scale = max(1.0, float(b.abs().max()))
    assert a.shape == b.shape
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * scale), float((a - b).abs().max())


@pytest.mark.parametrize("name", SAMPLES)
@pytest.mark.parametrize("method,sparsity", [("magnitude", 0.0), ("magnitude", 0.9), ("random", 0.5), ("nm-2:4", 0.5)])
def test_csr_model_computes_what_the_masked_dense_model_computes_on_the_samples(name, method, sparsity):
    case = sample_case(name)
    before = snapshot(case.model)
    masks = compute_masks(case.model, method=method, scope="layerwise", sparsity=sparsity)
    sparse = csr_model(case.model, masks)
    with torch.inference_mode():
        outputs_agree(sparse(case.x), apply_masks(case.model, masks)(case.x))
    assert_state_unchanged(case.model, before, "csr_model")
    converted = csr_layers(sparse)
    assert set(converted) == set(layers(case.model)), "every Linear and plain Conv1d/2d runs a sparse kernel"


@FEW
@given(case=cases(), sparsity=st.floats(0.0, 0.99), convolutions=st.booleans())
def test_csr_model_agrees_with_the_masked_model_on_random_architectures(case, sparsity, convolutions):
    masks = compute_masks(case.model, method="random", scope="layerwise", sparsity=sparsity)
    sparse = csr_model(case.model, masks, convolutions=convolutions)
    with torch.inference_mode():
        outputs_agree(sparse(case.x), apply_masks(case.model, masks)(case.x))
    for name, module in layers(case.model).items():
        converted = sparse.get_submodule(name)
        if isinstance(module, nn.Linear):
            assert isinstance(converted, CSRLinear)
        else:
            assert isinstance(converted, CSRConv) == convolutions
        if isinstance(converted, CSRLinear | CSRConv):
            assert converted.nonzero == int(torch.count_nonzero(module.weight * masks[f"{name}.weight"]))


@FEW
@given(
    conv_kind=st.sampled_from(["1d", "2d"]),
    channels=st.integers(1, 4),
    out=st.integers(1, 4),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    size=st.integers(5, 9),
    bias=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_im2col_csr_convolution_matches_torch_for_any_stride_padding_and_dilation(
    conv_kind, channels, out, kernel, stride, padding, dilation, size, bias, seed
):
    generator = torch.Generator().manual_seed(seed)
    cls = nn.Conv1d if conv_kind == "1d" else nn.Conv2d
    conv = cls(channels, out, kernel, stride=stride, padding=padding, dilation=dilation, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(
            torch.randn(conv.weight.shape, generator=generator)
            * (torch.rand(conv.weight.shape, generator=generator) > 0.5)
        )
    shape = (2, channels, size) if conv_kind == "1d" else (2, channels, size, size + 1)
    x = torch.randn(shape, generator=generator)
    with torch.inference_mode():
        outputs_agree(CSRConv(conv)(x), conv(x))


def test_unsupported_layers_stay_dense():
    model = nn.Sequential(
        nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 2, 3, padding="same"), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)
    )
    sparse = csr_model(model)
    assert csr_layers(sparse) == {"3": "CSR (torch.sparse.addmm)"}
    x = torch.randn(2, 4, 8, 8)
    with torch.inference_mode():
        outputs_agree(sparse(x), model(x))


def test_a_bare_linear_becomes_a_csr_linear_and_inputs_keep_their_leading_dims():
    linear = nn.Linear(6, 3)
    sparse = csr_model(linear)
    x = torch.randn(2, 5, 6)
    with torch.inference_mode():
        outputs_agree(sparse(x), linear(x))


@given(
    out=st.integers(1, 20),
    fan_in=st.integers(1, 20),
    sparsity=st.floats(0.0, 1.0, exclude_max=True),
    seed=st.integers(0, 9),
)
def test_random_sparse_weight_has_exactly_the_requested_zeros(out, fan_in, sparsity, seed):
    weight = random_sparse_weight(out, fan_in, sparsity, torch.Generator().manual_seed(seed))
    assert weight.shape == (out, fan_in)
    assert int((weight == 0).sum()) == round(sparsity * out * fan_in)


def test_measure_break_even_reports_every_sparsity_and_leaves_the_global_rng_alone():
    rng = torch.get_rng_state()
    threads = torch.get_num_threads()
    result = measure_break_even(8, 12, batch=3, sparsities=(0.5, 0.9), budget_s=0.001, warmup=0)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.get_num_threads() == threads
    assert (result.out_features, result.in_features, result.batch) == (8, 12, 3)
    assert result.sparsities == (0.5, 0.9)
    assert len(result.dense_ms) == len(result.csr_ms) == 2
    assert all(t > 0 for t in result.dense_ms + result.csr_ms)


def made_up(speedups: list[float], sparsities=(0.5, 0.7, 0.9, 0.95)) -> BreakEven:
    """Timings chosen to give these speedups (dense 1 ms each)."""
    return BreakEven(4, 4, 1, tuple(sparsities), (1.0,) * len(speedups), tuple(1 / s for s in speedups))


@pytest.mark.parametrize(
    "speedups,pays_from",
    [
        ([0.3, 0.6, 2.0, 4.0], 0.9),
        ([0.3, 0.6, 0.9, 0.95], None),
        ([1.5, 2.0, 3.0, 4.0], 0.5),
        ([0.3, 1.2, 0.9, 4.0], 0.95),  # faster once, slower again: it pays only from where it stays faster
        ([0.3, 0.6, 1.0, 4.0], 0.95),  # equal is not faster
    ],
)
def test_break_even_is_the_lowest_sparsity_from_which_csr_stays_faster(speedups, pays_from):
    result = made_up(speedups)
    assert result.speedups == pytest.approx(speedups)
    assert result.pays_from == pays_from
    assert result.faster_at == tuple(s for s, v in zip(result.sparsities, speedups) if v > 1)


@pytest.mark.parametrize(
    "speedups,clear",
    [
        ([0.3, 0.6, 2.0, 4.0], True),
        ([0.3, 0.6, 0.9, 0.95], True),
        ([1.5, 2.0, 3.0, 4.0], True),
        ([0.3, 1.2, 0.9, 4.0], False),  # faster, slower, faster: noise, not a break-even
        ([2.2, 3.0, 0.7, 0.5], False),  # faster at low sparsity only
    ],
)
def test_a_break_even_is_clear_only_when_slower_below_and_faster_from_it_on(speedups, clear):
    assert made_up(speedups).clear == clear


def test_crossing_interpolates_log_speedup_between_the_last_slower_and_the_first_faster_level():
    result = made_up([0.3, 0.5, 2.0, 4.0])
    # log(0.5) -> log(2.0) is symmetric around 0: the crossing lies halfway between 70 % and 90 %.
    assert result.crossing == pytest.approx(0.8)
    assert made_up([1.5, 2.0, 3.0, 4.0]).crossing == 0.5
    assert made_up([0.3, 0.6, 0.9, 0.95]).crossing is None
    crossing = made_up([0.3, 0.6, 1.5, 4.0]).crossing
    assert 0.7 < crossing < 0.9
    assert crossing == pytest.approx(0.7 + 0.2 * -math.log(0.6) / (math.log(1.5) - math.log(0.6)))


def test_largest_linear_is_the_one_with_most_weights():
    model = nn.Sequential(nn.Linear(10, 30), nn.ReLU(), nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 2))
    assert largest_linear(model) == ("2", 40, 30)
    assert largest_linear(nn.Sequential(nn.Conv2d(1, 2, 3))) is None
