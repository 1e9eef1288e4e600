"""Rules of pruning schedules and masked fine-tuning: the Zhu & Gupta curve, iterative rounds, pruned
weights held at zero, training that never sees the test split, determinism, reaching the target,
lottery-ticket rewinding, scheduled sweeps, recipes with a schedule, and validation."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import yaml
from core_helpers import assert_state_unchanged, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

import sample_models
from pruning_core import compute_masks, evaluate, sweep
from pruning_core.export import apply_recipe, make_recipe
from pruning_core.finetune import FineTuneConfig, masked_steps, steps_per_epoch
from pruning_core.recipe import RecipeError, dumps, loads
from pruning_core.schedules import (
    Schedule,
    gradual_timing,
    round_sparsities,
    run_schedule,
    schedule_curve,
    zhu_gupta_sparsity,
)
from sample_models import DataSplit

SAMPLE = "digits-mlp"
WEIGHTS = ("fc1.weight", "fc2.weight", "fc3.weight")  # the prunable weights of digits-mlp, by construction
N_WEIGHTS = 64 * 300 + 300 * 100 + 100 * 10
QUICK = FineTuneConfig(epochs=1, batch_size=256)  # 6 optimiser steps per epoch on the 1437 train rows


@pytest.fixture(scope="module")
def digits():
    return sample_models.load_sample(SAMPLE)


def fresh_model():
    return sample_models.load_sample(SAMPLE).model


def init_state():
    return sample_models.initial_state(SAMPLE)


def reinit(seed: int):
    return sample_models.initial_state(SAMPLE, seed)


def quick_schedule(kind: str) -> Schedule:
    if kind == "oneshot":
        return Schedule("oneshot", QUICK)
    if kind == "gradual":
        return Schedule("gradual", FineTuneConfig(epochs=2, batch_size=256), pruning_steps=4)
    return Schedule(kind, QUICK, rounds=2)


def run(digits, schedule: Schedule, sparsity: float = 0.8, **kwargs):
    data = digits.data
    return run_schedule(digits.model, data.X_train, data.y_train, "magnitude", "global", sparsity, schedule, **kwargs)


def pruned_weights(model) -> int:
    params = dict(model.named_parameters())
    return sum(int((params[name] == 0).sum()) for name in WEIGHTS)


def assert_same_params(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"parameters differ: {different}"


# --- 1. Zhu & Gupta's cubic schedule ------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    pair=st.tuples(st.floats(0, 0.99, exclude_max=True), st.floats(0, 0.99, exclude_max=True)).filter(
        lambda p: p[0] < p[1]
    ),
    half_n=st.integers(1, 50),
    dt=st.integers(1, 40),
    start=st.integers(0, 200),
)
def test_zhu_gupta_starts_at_s_i_ends_at_s_f_and_has_done_seven_eighths_half_way(pair, half_n, dt, start):
    s_i, s_f = pair
    n = 2 * half_n
    end = start + n * dt

    def s(step):
        return zhu_gupta_sparsity(step, s_f, s_i, start, n, dt)

    assert s(start) == s_i
    assert s(end) == pytest.approx(s_f, abs=1e-12)
    half_way = start + n * dt // 2
    assert s(half_way) == pytest.approx(s_i + 0.875 * (s_f - s_i), abs=1e-12)
    values = [s(t) for t in range(max(0, start - 3), end + 4)]
    assert all(b >= a for a, b in zip(values, values[1:])), "the schedule decreased somewhere"
    assert all(s_i - 1e-12 <= v <= s_f + 1e-12 for v in values)
    after = [s(end + k) for k in (0, 1, 7, 10**6)]
    assert all(v == after[0] for v in after), f"not constant after the end: {after}"
    assert all(s(t) == s_i for t in range(max(0, start - 3), start + 1))


def test_zhu_gupta_a_known_value():
    # s_i = 0, s_f = 0.8, n = 4, dt = 5, one quarter through: 0.8 * (1 - 0.75^3)
    assert zhu_gupta_sparsity(5, 0.8, 0.0, 0, 4, 5) == pytest.approx(0.8 * (1 - 0.75**3), abs=1e-15)


@settings(max_examples=100, deadline=None)
@given(total=st.integers(1, 10_000), n=st.integers(1, 1000))
def test_gradual_timing_puts_the_last_increase_at_most_three_quarters_through_when_there_is_room(total, n):
    t0, dt = gradual_timing(total, n)
    assert t0 == 0 and dt >= 1
    if int(0.75 * total) >= n:
        assert t0 + n * dt <= 0.75 * total


def test_schedule_curves_start_dense_and_end_at_the_target():
    n_train = 1437
    target = 0.9
    oneshot = schedule_curve(Schedule("oneshot", FineTuneConfig(epochs=2)), target, n_train)
    per_epoch = steps_per_epoch(n_train, 64)
    assert oneshot == [(0, 0.0), (0, target), (2 * per_epoch, target)]

    iterative = schedule_curve(Schedule("iterative", FineTuneConfig(epochs=1), rounds=3), target, n_train)
    plateaus = round_sparsities(target, 3)
    assert iterative[0] == (0, 0.0)
    assert [s for _, s in iterative[1:]] == [s for s in plateaus for _ in range(2)]
    assert [t for t, _ in iterative[1:]] == [0, per_epoch, per_epoch, 2 * per_epoch, 2 * per_epoch, 3 * per_epoch]

    gradual = schedule_curve(Schedule("gradual", FineTuneConfig(epochs=3), pruning_steps=5), target, n_train)
    steps = [t for t, _ in gradual]
    values = [s for _, s in gradual]
    assert steps == sorted(steps) and values == sorted(values)
    assert gradual[-1] == (3 * per_epoch, target)
    assert values[-2] == pytest.approx(target, abs=1e-12)


# --- 2. iterative rounds ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(target=st.floats(0, 0.99, exclude_max=True), k=st.integers(1, 50))
def test_round_sparsities_prune_the_same_fraction_of_the_remaining_weights_each_round(target, k):
    rounds = round_sparsities(target, k)
    assert len(rounds) == k
    assert rounds[-1] == pytest.approx(target, abs=1e-12)
    kept = [1.0] + [1.0 - s for s in rounds]
    ratios = [b / a for a, b in zip(kept, kept[1:])]
    assert all(r == pytest.approx(ratios[0], rel=1e-9, abs=1e-12) for r in ratios)
    assert ratios[0] == pytest.approx((1.0 - target) ** (1.0 / k), rel=1e-9, abs=1e-12)
    assert all(b >= a for a, b in zip(rounds, rounds[1:]))


@pytest.mark.parametrize("target, k", [(0.1, 1), (0.5, 2), (0.0625, 2), (0.9, 7)])
def test_round_sparsities_reach_the_target_exactly_at_the_last_round(target, k):
    assert round_sparsities(target, k)[-1] == target


# --- 3. pruned weights stay exactly zero through fine-tuning ------------------------------------------


def zero_watch(model, masks):
    """An on_step hook that records, before every optimiser step, any masked element that is not 0.0."""
    params = dict(model.named_parameters())
    seen = {"steps": 0, "violations": []}

    def on_step(step):
        seen["steps"] += 1
        for name, mask in masks.items():
            bad = int((params[name].detach()[~mask] != 0).sum())
            if bad:
                seen["violations"].append((step, name, bad))
        return None

    return on_step, seen


@pytest.mark.parametrize(
    "config",
    [
        FineTuneConfig(epochs=2, lr=1e-2, optimizer="adam", weight_decay=1e-2, batch_size=128),
        FineTuneConfig(epochs=2, lr=5e-2, optimizer="sgd", momentum=0.9, weight_decay=1e-2, batch_size=128),
    ],
    ids=["adam-wd", "sgd-momentum-wd"],
)
@pytest.mark.parametrize("prewarmed", [False, True], ids=["fresh-optimizer", "optimizer-with-dense-momentum"])
def test_masked_weights_are_exactly_zero_between_every_step_and_after_training(digits, config, prewarmed):
    model = fresh_model()
    masks = compute_masks(model, "magnitude", "global", 0.7)
    before = snapshot(model)
    data = digits.data
    optimizer = None
    if prewarmed:
        # Dense steps first, so momentum/Adam moments are nonzero exactly where the mask prunes.
        from pruning_core.finetune import make_optimizer

        optimizer = make_optimizer(model, config)
        model.train()
        for i in range(3):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(
                model(data.X_train[i * 64 : (i + 1) * 64]), data.y_train[i * 64 : (i + 1) * 64]
            ).backward()
            optimizer.step()
    on_step, seen = zero_watch(model, masks)
    masked_steps(model, masks, data.X_train, data.y_train, config, on_step=on_step, optimizer=optimizer)
    assert seen["steps"] == config.epochs * steps_per_epoch(len(data.X_train), config.batch_size)
    assert not seen["violations"], f"pruned weights nonzero before a step: {seen['violations'][:5]}"
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert torch.all(params[name][~mask] == 0.0), f"{name}: a pruned weight is nonzero after training"
        assert not torch.equal(params[name][mask], before[name][mask]), f"{name}: kept weights did not train"
    assert not model.training, "masked_steps leaves the model in eval mode"


def test_masks_returned_by_on_step_are_applied_at_once_and_held_afterwards(digits):
    model = fresh_model()
    data = digits.data
    config = FineTuneConfig(epochs=1, lr=1e-2, batch_size=64)
    later = compute_masks(model, "magnitude", "global", 0.8)
    params = dict(model.named_parameters())
    violations = []

    def on_step(step):
        if step > 5:
            violations.extend((step, n) for n, m in later.items() if torch.any(params[n].detach()[~m] != 0))
        return later if step == 5 else None

    masked_steps(model, {}, data.X_train, data.y_train, config, on_step=on_step)
    assert not violations
    assert all(torch.all(params[n][~m] == 0) for n, m in later.items())


def test_masks_naming_missing_parameters_are_refused(digits):
    with pytest.raises(ValueError, match="nope.weight"):
        masked_steps(
            fresh_model(),
            {"nope.weight": torch.ones(2, dtype=torch.bool)},
            digits.data.X_train,
            digits.data.y_train,
            QUICK,
        )


# --- 4. fine-tuning never reads the test split ---------------------------------------------------------


def garbage_test_split(data: DataSplit) -> DataSplit:
    generator = torch.Generator().manual_seed(7)
    X = torch.rand((50, *data.X_test.shape[1:]), generator=generator) * 5 - 2
    y = torch.randint(0, 10, (50,), generator=generator)
    return DataSplit(data.X_train, data.y_train, X, y)


@pytest.mark.parametrize("kind", ["oneshot", "iterative"])
def test_sweep_fine_tuning_gives_the_same_weights_whatever_the_test_split(digits, monkeypatch, kind):
    trained = []
    import pruning_core.apply as apply_module  # the one path the sweep trains through

    real = apply_module.run_schedule

    def capture(*args, **kwargs):
        result = real(*args, **kwargs)
        trained.append(snapshot(result.model))
        return result

    monkeypatch.setattr(apply_module, "run_schedule", capture)
    schedule = quick_schedule(kind)
    tables = [
        sweep(digits.model, data, sparsities=[0.8], schedule=schedule, generalisation=True)
        for data in (digits.data, garbage_test_split(digits.data))
    ]
    assert len(trained) == 2
    assert list(trained[0]) == list(trained[1])
    assert all(torch.equal(trained[0][k], trained[1][k]) for k in trained[0]), "test split changed the weights"
    for column in ("train_accuracy", "nonzero_params", "actual_sparsity"):
        assert tables[0][column].tolist() == tables[1][column].tolist(), column
    assert tables[0]["accuracy"].tolist() != tables[1]["accuracy"].tolist(), "test metrics should use the test split"


def test_run_schedule_weights_do_not_depend_on_the_test_split(digits):
    # run_schedule only takes train tensors; the same train tensors with a different test split around
    # them (as a sweep or recipe would hold) give the same model.
    garbage = garbage_test_split(digits.data)
    a = run(digits, Schedule("oneshot", QUICK))
    b = run_schedule(
        digits.model, garbage.X_train, garbage.y_train, "magnitude", "global", 0.8, Schedule("oneshot", QUICK)
    )
    assert_same_params(a.model, b.model)


# --- 5. determinism ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["oneshot", "iterative", "gradual", "lottery"])
def test_the_same_schedule_twice_gives_identical_parameters(digits, kind):
    schedule = quick_schedule(kind)
    a = run(digits, schedule, init_state=init_state(), reinit=reinit)
    b = run(digits, schedule, init_state=init_state(), reinit=reinit)
    assert_same_params(a.model, b.model)
    assert list(a.masks) == list(b.masks) and all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)
    if kind == "lottery":
        assert_same_params(a.control, b.control)


# --- 6. fine-tuning recovers accuracy ------------------------------------------------------------------


def test_iterative_fine_tuning_recovers_90_percent_sparsity_but_one_shot_does_not(digits):
    data = digits.data
    dense = evaluate(digits.model, data.X_test, data.y_test)["accuracy"]
    assert dense == pytest.approx(digits.recorded_accuracy, abs=1e-6)
    oneshot = run(digits, Schedule("oneshot"), 0.9).model
    iterative = run(digits, Schedule("iterative", FineTuneConfig(epochs=2), rounds=3), 0.9).model
    oneshot_acc = evaluate(oneshot, data.X_test, data.y_test)["accuracy"]
    iterative_acc = evaluate(iterative, data.X_test, data.y_test)["accuracy"]
    assert pruned_weights(iterative) == round(0.9 * N_WEIGHTS)
    assert iterative_acc >= dense - 0.02, f"iterative {iterative_acc:.4f} vs dense {dense:.4f}"
    assert oneshot_acc < dense - 0.02, f"one-shot without fine-tuning {oneshot_acc:.4f} vs dense {dense:.4f}"


# --- 7. every schedule reaches the target; the caller's model is untouched ----------------------------


@pytest.mark.parametrize("kind", ["oneshot-no-ft", "oneshot", "iterative", "gradual", "lottery"])
def test_every_schedule_reaches_the_target_sparsity_and_leaves_the_callers_model_alone(digits, kind):
    schedule = Schedule("oneshot") if kind == "oneshot-no-ft" else quick_schedule(kind)
    before = snapshot(digits.model)
    target = 0.8
    result = run(digits, schedule, target, init_state=init_state(), reinit=reinit)
    assert_state_unchanged(digits.model, before, f"run_schedule({kind})")
    expected = round(target * N_WEIGHTS)
    masked = sum(int((~result.masks[n]).sum()) for n in WEIGHTS)
    assert abs(masked - expected) <= len(WEIGHTS), f"masks prune {masked}, target {expected}"
    assert abs(pruned_weights(result.model) - expected) <= len(WEIGHTS)
    params = dict(result.model.named_parameters())
    for name, mask in result.masks.items():
        assert torch.all(params[name][~mask] == 0), f"{name}: a pruned weight is nonzero"
    assert not result.model.training


def test_gradual_with_an_initial_sparsity_above_the_target_is_refused_or_reaches_the_target(digits):
    schedule = Schedule("gradual", FineTuneConfig(epochs=1, batch_size=256), initial_sparsity=0.5, pruning_steps=2)
    try:
        result = run(digits, schedule, 0.3)
    except ValueError as exc:
        assert "initial_sparsity" in str(exc) or "0.5" in str(exc)
        return
    assert abs(pruned_weights(result.model) - round(0.3 * N_WEIGHTS)) <= len(WEIGHTS)


def test_gradual_raises_sparsity_along_the_cubic_curve_at_its_pruning_steps(digits):
    schedule = Schedule("gradual", FineTuneConfig(epochs=2, batch_size=256), pruning_steps=4, initial_sparsity=0.1)
    result = run(digits, schedule, 0.8)
    total = 2 * steps_per_epoch(len(digits.data.X_train), 256)
    t0, dt = gradual_timing(total, 4)
    assert [h["step"] for h in result.history] == [t0 + j * dt for j in range(5)]
    for h in result.history:
        assert h["sparsity"] == zhu_gupta_sparsity(h["step"], 0.8, 0.1, t0, 4, dt)
    assert result.history[0]["sparsity"] == 0.1
    assert result.history[-1]["sparsity"] == pytest.approx(0.8, abs=1e-12)


def test_iterative_history_follows_the_round_sparsities(digits):
    result = run(digits, Schedule("iterative", QUICK, rounds=3), 0.8)
    assert [h["round"] for h in result.history] == [1, 2, 3]
    assert [h["sparsity"] for h in result.history] == round_sparsities(0.8, 3)


# --- 8. lottery tickets --------------------------------------------------------------------------------


def test_lottery_rewinds_the_surviving_weights_to_their_initial_values(digits):
    start = init_state()
    tiny = Schedule("lottery", FineTuneConfig(epochs=1, lr=1e-9, batch_size=256), rounds=2)
    result = run(digits, tiny, 0.8, init_state=start, reinit=reinit)
    params = dict(result.model.named_parameters())
    trained = dict(digits.model.named_parameters())
    for name in WEIGHTS:
        mask = result.masks[name]
        assert torch.allclose(params[name][mask], start[name][mask], atol=1e-6), f"{name}: not rewound"
        assert torch.all(params[name][~mask] == 0)
        # and they are not the trained values the pruning started from
        assert not torch.allclose(params[name][mask], trained[name][mask], atol=1e-3)
    for name in ("fc1.bias", "fc2.bias", "fc3.bias"):
        assert torch.allclose(params[name], start[name], atol=1e-6)

    control = dict(result.control.named_parameters())
    other = reinit(1)
    for name in WEIGHTS:
        assert torch.equal(control[name] == 0, params[name] == 0), f"{name}: control has another zero pattern"
        mask = result.masks[name]
        assert not torch.allclose(control[name][mask], params[name][mask], atol=1e-3)
        assert torch.allclose(control[name][mask], other[name][mask], atol=1e-6)


class StepLog:
    """An independent record of training: every optimiser step and every load_state_dict, in order,
    keyed by the parameter objects involved (PyTorch's global optimiser hook, a patched loader)."""

    def __init__(self, monkeypatch):
        self.events: list[tuple[str, int]] = []
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self._handle = register_optimizer_step_post_hook(self._on_step)
        original = torch.nn.Module.load_state_dict
        log = self

        def load_state_dict(module, *args, **kwargs):
            out = original(module, *args, **kwargs)
            log.events.append(("load", id(next(module.parameters()))))
            return out

        monkeypatch.setattr(torch.nn.Module, "load_state_dict", load_state_dict)

    def _on_step(self, optimizer, args, kwargs):
        self.events.append(("step", id(optimizer.param_groups[0]["params"][0])))

    def close(self):
        self._handle.remove()

    def steps_since_last_load(self, model: torch.nn.Module) -> int:
        key = id(next(model.parameters()))
        mine = [kind for kind, k in self.events if k == key]
        last_load = max((i for i, kind in enumerate(mine) if kind == "load"), default=-1)
        return sum(kind == "step" for kind in mine[last_load + 1 :])


@pytest.mark.parametrize(("epochs", "rounds"), [(2, 2), (1, 3)])
def test_lottery_control_gets_exactly_the_training_the_reported_ticket_got(digits, monkeypatch, epochs, rounds):
    """Same mask, same number of optimiser steps since each model's weights were (re)initialised,
    counted from the optimiser's own hook, not from the schedule's code."""
    ft = FineTuneConfig(epochs=epochs, batch_size=256)
    log = StepLog(monkeypatch)
    try:
        result = run(digits, Schedule("lottery", ft, rounds=rounds), 0.8, init_state=init_state(), reinit=reinit)
    finally:
        log.close()
    ticket_steps = log.steps_since_last_load(result.model)
    control_steps = log.steps_since_last_load(result.control)
    assert ticket_steps == control_steps == epochs * steps_per_epoch(len(digits.data.X_train), 256)
    for name in WEIGHTS:
        assert torch.all(result.control.get_parameter(name)[~result.masks[name]] == 0)


def test_lottery_without_initial_weights_is_refused_naming_init_state(digits):
    schedule = Schedule("lottery", QUICK, rounds=2)
    with pytest.raises(ValueError, match="init_state"):
        run(digits, schedule, 0.8)
    with pytest.raises(ValueError, match="init_state"):
        sweep(digits.model, digits.data, sparsities=[0.5], schedule=schedule)


class _Enough(Exception):
    pass


def test_lottery_rewinding_to_iteration_k_rewinds_to_k_steps_of_dense_training(digits):
    """Reference built by hand: k dense steps from the initial weights, then the round's mask (from the
    trained model) and the round's masked training."""
    start, k = init_state(), 3
    ft = FineTuneConfig(epochs=1, lr=1e-2, batch_size=256)
    result = run(digits, Schedule("lottery", ft, rounds=1, rewind_iteration=k), 0.5, init_state=start)
    data = digits.data

    reference = fresh_model()
    reference.load_state_dict(start)

    def stop_after_k(step):
        if step >= k:
            raise _Enough

    with pytest.raises(_Enough):
        masked_steps(reference, {}, data.X_train, data.y_train, ft, on_step=stop_after_k)
    masks = compute_masks(
        digits.model, "magnitude", "global", 0.5, X_calib=data.X_train[:256], y_calib=data.y_train[:256]
    )
    masked_steps(reference, masks, data.X_train, data.y_train, ft)
    assert_same_params(result.model, reference)

    from_init = run(digits, Schedule("lottery", ft, rounds=1), 0.5, init_state=start)
    assert not torch.equal(from_init.model.fc1.weight, result.model.fc1.weight)


# --- 9. sweeps with a schedule -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lottery_tables(digits):
    schedule = Schedule("lottery", QUICK, rounds=2)
    before = snapshot(digits.model)
    kwargs = dict(sparsities=[0.5, 0.8], schedule=schedule, init_state=init_state(), reinit=reinit, generalisation=True)
    serial = sweep(digits.model, digits.data, workers=1, **kwargs)
    parallel = sweep(digits.model, digits.data, workers=2, **kwargs)
    assert_state_unchanged(digits.model, before, "a scheduled sweep")
    return schedule, serial, parallel


def test_scheduled_sweep_rows_carry_the_schedule_and_generalisation_metrics(lottery_tables):
    schedule, table, _ = lottery_tables
    assert len(table) == 4
    assert table["schedule"].tolist() == ["lottery", "lottery", "lottery-reinit", "lottery-reinit"]
    assert table["target_sparsity"].tolist() == [0.5, 0.8, 0.5, 0.8]
    assert schedule.finetune_epochs == 2
    # the ticket spent rounds x epochs; the control trains as the ticket's last round (epochs)
    assert table["finetune_epochs"].tolist() == [2, 2, 1, 1]
    for column in ("accuracy", "train_accuracy", "noisy_accuracy"):
        assert table[column].between(0, 1).all() and table[column].notna().all(), column
    pruned = (table["total_params"] - table["nonzero_params"]).tolist()
    expected = [round(s * N_WEIGHTS) for s in table["target_sparsity"]]
    assert all(abs(a - b) <= len(WEIGHTS) for a, b in zip(pruned, expected)), (pruned, expected)
    # the reinit control has the same masks as the ticket, so the same nonzero count
    assert table["nonzero_params"].tolist()[:2] == table["nonzero_params"].tolist()[2:]


def test_scheduled_sweep_with_two_workers_gives_the_same_table(lottery_tables):
    _, serial, parallel = lottery_tables
    pd.testing.assert_frame_equal(serial.drop(columns="seconds"), parallel.drop(columns="seconds"))
    assert (parallel["seconds"] > 0).all()


def test_sweep_rows_match_the_model_run_schedule_gives(digits):
    schedule = Schedule("iterative", QUICK, rounds=2)
    table = sweep(digits.model, digits.data, sparsities=[0.8], schedule=schedule, generalisation=True)
    model = run(digits, schedule, 0.8).model
    data = digits.data
    row = table.iloc[0]
    assert row["schedule"] == "iterative" and row["finetune_epochs"] == 2
    assert row["accuracy"] == evaluate(model, data.X_test, data.y_test)["accuracy"]
    assert row["train_accuracy"] == evaluate(model, data.X_train, data.y_train)["accuracy"]
    assert row["nonzero_params"] == N_WEIGHTS + 410 - pruned_weights(model)


def test_sweep_without_generalisation_leaves_those_columns_empty(digits):
    table = sweep(
        digits.model, digits.data, sparsities=[0.5], schedule=Schedule("oneshot", QUICK), generalisation=False
    )
    assert table["train_accuracy"].isna().all() and table["noisy_accuracy"].isna().all()
    assert table["schedule"].tolist() == ["oneshot"] and table["finetune_epochs"].tolist() == [1]


def test_a_training_schedule_without_train_data_is_refused(digits):
    data = digits.data
    with pytest.raises(ValueError, match="train data"):
        sweep(digits.model, (data.X_test, data.y_test), sparsities=[0.5], schedule=Schedule("oneshot", QUICK))


# --- 10. stopping --------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_should_stop_after_the_first_level_returns_the_rows_so_far(digits, workers):
    levels = [0.3, 0.6, 0.9]
    state = {"rows": 0}

    def progress(fraction, message):
        state["rows"] += 1

    table = sweep(
        digits.model,
        digits.data,
        sparsities=levels,
        schedule=Schedule("oneshot", QUICK),
        workers=workers,
        progress=progress,
        should_stop=lambda: state["rows"] >= 1,
    )
    assert 1 <= len(table) < len(levels)
    assert table["target_sparsity"].isin(levels).all()


def test_should_stop_is_polled_during_training(digits):
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return False

    sweep(
        digits.model,
        digits.data,
        sparsities=[0.5],
        schedule=Schedule("oneshot", FineTuneConfig(epochs=1)),
        should_stop=should_stop,
    )
    assert calls["n"] > 1, "should_stop was polled only once for a level of 23 optimiser steps"


# --- 11. recipes with a schedule -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def iterative_recipe():
    schedule = Schedule("iterative", FineTuneConfig(epochs=1, batch_size=128), rounds=2)
    return schedule, make_recipe(SAMPLE, "magnitude", "global", 0.8, schedule=schedule)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_a_recipe_with_a_schedule_round_trips(iterative_recipe, fmt):
    schedule, recipe = iterative_recipe
    back = loads(dumps(recipe, fmt))
    assert back == recipe
    assert back.schedule_object == schedule
    assert back.trains


def test_applying_an_iterative_recipe_reproduces_its_recorded_accuracy_exactly(iterative_recipe, digits):
    _, recipe = iterative_recipe
    recorded = recipe.provenance["metrics"]
    applied = apply_recipe(recipe)
    data = digits.data
    assert applied.metrics["accuracy"] == recorded["accuracy"]
    assert evaluate(applied.model, data.X_test, data.y_test)["accuracy"] == recorded["accuracy"]
    assert N_WEIGHTS + 410 - pruned_weights(applied.model) == recorded["nonzero_params"]
    assert applied.metrics == {k: v for k, v in recorded.items()}


def recipe_with(section: str, key: str, value) -> str:
    recipe = make_recipe(
        SAMPLE, "magnitude", "global", 0.5, schedule=Schedule("iterative", FineTuneConfig()), metrics={}
    )
    data = yaml.safe_load(dumps(recipe))
    data[section][key] = value
    return yaml.safe_dump(data)


@pytest.mark.parametrize(
    "section, key, value, named",
    [
        ("schedule", "kind", "zigzag", "zigzag"),
        ("schedule", "rounds", 0, "rounds"),
        ("schedule", "pruning_steps", -2, "pruning_steps"),
        ("finetune", "lr", -1, "lr"),
        ("finetune", "optimizer", "rmsprop", "rmsprop"),
        ("schedule", "bogus", 1, "bogus"),
        ("finetune", "learning_rate", 0.1, "learning_rate"),
        ("finetune", "epochs", 0, "at least 1 epoch"),
        pytest.param(
            "finetune",
            "momentum",
            -1,
            "momentum",
        ),
    ],
)
def test_invalid_schedule_sections_are_refused_naming_the_problem(section, key, value, named):
    with pytest.raises(RecipeError) as info:
        loads(recipe_with(section, key, value))
    assert named in str(info.value)


def test_a_schedule_section_that_is_not_a_mapping_is_refused():
    data = yaml.safe_load(recipe_with("schedule", "kind", "iterative"))
    data["schedule"] = 3
    with pytest.raises(RecipeError, match="schedule"):
        loads(yaml.safe_dump(data))


# --- 12. validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"epochs": -1}, "-1"),
        ({"epochs": 1.5}, "1.5"),
        ({"lr": 0}, "0"),
        ({"lr": -1}, "-1"),
        ({"lr": math.nan}, "nan"),
        ({"lr": 11}, "11"),
        ({"lr": "fast"}, "fast"),
        ({"optimizer": "rmsprop"}, "rmsprop"),
        ({"batch_size": 0}, "0"),
        ({"batch_size": 2.0}, "2.0"),
        pytest.param(
            {"momentum": -1},
            "momentum",
        ),
        pytest.param(
            {"momentum": math.nan},
            "momentum",
        ),
        pytest.param(
            {"weight_decay": -1},
            "weight_decay",
        ),
    ],
)
def test_bad_fine_tuning_settings_raise_value_error_naming_the_value(kwargs, named):
    with pytest.raises(ValueError) as info:
        FineTuneConfig(**kwargs)
    assert named in str(info.value)


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"kind": "zigzag"}, "zigzag"),
        ({"rounds": 0}, "0"),
        ({"rounds": 51}, "51"),
        ({"rounds": 2.5}, "2.5"),
        ({"pruning_steps": 0}, "pruning_steps"),
        ({"rewind_iteration": -1}, "-1"),
        ({"initial_sparsity": 1.0}, "1.0"),
        ({"initial_sparsity": -0.1}, "-0.1"),
        ({"kind": "iterative"}, "iterative"),
        ({"kind": "gradual", "finetune": FineTuneConfig(epochs=0)}, "gradual"),
        ({"kind": "lottery", "finetune": FineTuneConfig(epochs=0)}, "lottery"),
        pytest.param(
            {"kind": "iterative", "finetune": FineTuneConfig(), "rounds": True},
            "True",
        ),
    ],
)
def test_bad_schedules_raise_value_error_naming_the_value(kwargs, named):
    with pytest.raises(ValueError) as info:
        Schedule(**kwargs)
    assert named in str(info.value)


def test_a_schedule_given_a_per_layer_mapping_for_a_multi_step_kind_is_refused(digits):
    with pytest.raises(ValueError, match="per-layer"):
        run(digits, Schedule("iterative", QUICK), {"fc1": 0.5})


def test_schedule_labels_and_epochs():
    assert Schedule("oneshot").finetune_epochs == 0 and Schedule("oneshot").label == "one-shot"
    assert Schedule("iterative", FineTuneConfig(epochs=2), rounds=3).finetune_epochs == 6
    assert Schedule("lottery", FineTuneConfig(epochs=2), rounds=4).finetune_epochs == 8
    assert Schedule("gradual", FineTuneConfig(epochs=5), rounds=4).finetune_epochs == 5
    s = Schedule("gradual", FineTuneConfig(epochs=2, lr=0.01), pruning_steps=7, initial_sparsity=0.2)
    assert Schedule.from_dict(s.to_dict()) == s
