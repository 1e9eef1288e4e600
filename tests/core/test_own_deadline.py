"""Wall-clock limits (``pruning_core.deadline``): raised after the deadline inside ``time_limit`` only,
nested limits, per thread, and honoured by evaluation, sweeps, sensitivity, training and ONNX
execution and conversion. A limit of 0 has already passed: no test waits for a timer."""

from __future__ import annotations

import sys
import threading

import pytest
import torch
from own_model_helpers import WideMLP, to_onnx

import pruning_core
import sample_models
from pruning_core.deadline import (
    TimeLimitExceeded,
    check_deadline,
    remaining_seconds,
    time_limit,
    without_time_limit,
)
from pruning_core.finetune import FineTuneConfig
from pruning_core.loaders import Limits, UntrustedFileError, load_model, load_own
from pruning_core.schedules import Schedule
from pruning_core.sensitivity import layer_sensitivity

SWEEP = sys.modules["pruning_core.sweep"]  # the module (``pruning_core.sweep`` is also the function)


@pytest.fixture(scope="module")
def digits():
    return sample_models.load_sample("digits-mlp")


def test_check_raises_inside_a_passed_limit_and_not_outside():
    check_deadline()  # no limit: nothing happens
    assert remaining_seconds() is None
    with time_limit(3600, "a long thing"):
        check_deadline()
        assert 3500 < remaining_seconds() <= 3600
    with pytest.raises(TimeLimitExceeded) as raised, time_limit(0, "sweeping your model", "(advice): do less"):
        check_deadline()
    assert str(raised.value) == "sweeping your model took longer than 0 s (advice): do less"
    assert isinstance(raised.value, UntrustedFileError)  # shown wherever refusals are shown
    check_deadline()  # the limit ended with its block
    assert remaining_seconds() is None


def test_no_limit_keeps_the_outer_one_and_a_message_without_advice_names_the_limit():
    with time_limit(None, "unlimited"):
        check_deadline()
        assert remaining_seconds() is None
    message = r"^evaluating took longer than 0 s, its time limit$"
    with time_limit(0, "evaluating"), time_limit(None, "ignored"), pytest.raises(TimeLimitExceeded, match=message):
        check_deadline()


def test_nested_limits_the_earliest_wins():
    with time_limit(0, "outer"), time_limit(3600, "inner"), pytest.raises(TimeLimitExceeded, match="^outer took"):
        check_deadline()  # an inner limit cannot extend an outer one
    with time_limit(3600, "outer"):
        with time_limit(0, "inner"), pytest.raises(TimeLimitExceeded, match="^inner took longer"):
            check_deadline()
        check_deadline()  # back under the outer limit only
        assert remaining_seconds() > 3500
    with time_limit(0, "outer"), without_time_limit():
        check_deadline()  # work done for others runs unlimited


def test_a_limit_in_one_thread_does_not_reach_another_running_at_the_same_time():
    limited_inside, other_done = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def limited() -> None:
        with time_limit(0, "the limited session"):
            limited_inside.set()
            other_done.wait(10)
            try:
                check_deadline()
            except TimeLimitExceeded as exc:
                outcome["limited"] = exc

    def other() -> None:
        limited_inside.wait(10)  # the other thread's limit is set (and has passed) now
        try:
            check_deadline()
            outcome["other"] = remaining_seconds()
        except TimeLimitExceeded as exc:  # pragma: no cover - the failure this test looks for
            outcome["other"] = exc
        finally:
            other_done.set()

    threads = [threading.Thread(target=limited), threading.Thread(target=other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert isinstance(outcome.get("limited"), TimeLimitExceeded)
    assert "other" in outcome and outcome["other"] is None  # no limit, no exception
    check_deadline()  # nor in the test's own thread


def test_evaluate_and_sweep_stop_under_a_passed_limit_and_run_without(digits):
    data = digits.data
    with time_limit(0, "evaluating"), pytest.raises(TimeLimitExceeded, match="^evaluating"):
        pruning_core.evaluate(digits.model, data.X_test, data.y_test)
    with time_limit(0, "sweeping"), pytest.raises(TimeLimitExceeded, match="^sweeping"):
        pruning_core.sweep(digits.model, data, ["magnitude"], [0.5])
    with time_limit(3600, "sweeping"):
        limited = pruning_core.sweep(digits.model, data, ["magnitude", "taylor"], [0.5, 0.9])
    unlimited = pruning_core.sweep(digits.model, data, ["magnitude", "taylor"], [0.5, 0.9])
    assert len(limited) == 4
    assert limited["accuracy"].tolist() == unlimited["accuracy"].tolist()


def test_data_driven_scoring_checks_the_limit_per_calibration_batch(digits):
    # mask_plan has no check of its own: the criterion's forward passes on calibration batches stop it.
    from pruning_core.apply import mask_plan
    from pruning_core.choice import Calibration

    choice = SWEEP.choice_at("taylor", "global", 0.5, (), 0, None, Calibration()).resolved()[0]
    train = (digits.data.X_train, digits.data.y_train)
    assert mask_plan(digits.model, train, choice) is not None
    with time_limit(0, "scoring"), pytest.raises(TimeLimitExceeded, match="^scoring"):
        mask_plan(digits.model, train, choice)


def test_scheduled_sweep_and_training_stop_under_a_passed_limit(digits, monkeypatch):
    schedule = Schedule("oneshot", finetune=FineTuneConfig(epochs=1))
    with time_limit(0, "training"), pytest.raises(TimeLimitExceeded, match="^training"):
        pruning_core.sweep(digits.model, digits.data, ["magnitude"], [0.5], schedule=schedule)
    # With the sweep's own checks off, the training loop's check stops it.
    monkeypatch.setattr(SWEEP, "check_deadline", lambda: None)
    monkeypatch.setattr(sys.modules["pruning_core.metrics"], "check_deadline", lambda: None)
    with time_limit(0, "training"), pytest.raises(TimeLimitExceeded, match="^training"):
        pruning_core.sweep(digits.model, digits.data, ["magnitude"], [0.5], schedule=schedule)


def test_sensitivity_stops_under_a_passed_limit(digits):
    with time_limit(0, "the scan"), pytest.raises(TimeLimitExceeded, match="^the scan"):
        layer_sensitivity(digits.model, digits.data, "magnitude", sparsities=[0.5])


def test_onnx_conversion_and_execution_stop_under_a_passed_limit():
    x = torch.randn(4, 13)
    onnx_bytes = to_onnx(WideMLP(), x)
    with time_limit(0, "converting"), pytest.raises(TimeLimitExceeded, match="^converting"):
        load_model(onnx_bytes, filename="wide.onnx")
    module = load_model(onnx_bytes, filename="wide.onnx").model
    expected = module(x)
    with time_limit(0, "running"), pytest.raises(TimeLimitExceeded, match="^running"):
        module(x)  # checked between graph steps, not only by the callers
    with time_limit(3600, "running"):
        assert torch.equal(module(x), expected)


def test_load_own_applies_limits_max_seconds():
    onnx_bytes = to_onnx(WideMLP(), torch.randn(4, 13))
    with pytest.raises(TimeLimitExceeded, match=r"^loading the model took longer than 0 s \(Limits.max_seconds\)"):
        load_own(onnx_bytes, model_filename="wide.onnx", limits=Limits(max_seconds=0))
    own = load_own(onnx_bytes, model_filename="wide.onnx", limits=Limits(max_seconds=3600))
    assert own.loaded.format == "onnx"
    assert Limits().max_seconds is None  # the CLI and the Python API: no limit unless asked
