"""Sensitivity analysis: one layer at a time, and proposals that keep their stated budget when swept."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import pruning_core
import sample_models
from pruning_core.cli import main
from pruning_core.sensitivity import layer_sensitivity, propose

LEVELS = (0.2, 0.4, 0.6, 0.8, 0.9)


@pytest.fixture(scope="module", params=["digits-mlp", "cancer-mlp"])
def analysed(request):
    sample = sample_models.load_sample(request.param)
    before = {k: v.clone() for k, v in sample.model.state_dict().items()}
    table = layer_sensitivity(sample.model, sample.data, "magnitude", LEVELS)
    assert all(torch.equal(before[k], v) for k, v in sample.model.state_dict().items()), "model unchanged"
    return sample, table


def test_every_layer_is_pruned_alone_at_every_level(analysed):
    sample, table = analysed
    layers = pruning_core.prunable_layers(sample.model)
    assert list(table["layer"].unique()) == layers
    assert len(table) == len(layers) * len(LEVELS)
    data = sample.data
    dense = pruning_core.evaluate(sample.model, data.X_val, data.y_val)["accuracy"]
    dense_test = pruning_core.evaluate(sample.model, data.X_test, data.y_test)["accuracy"]
    assert (table["split"] == "validation").all()
    for _, row in table.iterrows():
        masks = pruning_core.compute_masks(sample.model, "magnitude", "per-layer", {row["layer"]: row["sparsity"]})
        pruned = pruning_core.apply_masks(sample.model, masks)
        # the drop that selects is measured on validation; test is reported beside it
        accuracy = pruning_core.evaluate(pruned, data.X_val, data.y_val)["accuracy"]
        assert row["accuracy"] == pytest.approx(accuracy, abs=1e-12)
        assert row["accuracy_drop"] == pytest.approx(dense - accuracy, abs=1e-12)
        test_accuracy = pruning_core.evaluate(pruned, data.X_test, data.y_test)["accuracy"]
        assert row["test_drop"] == pytest.approx(dense_test - test_accuracy, abs=1e-12)


@pytest.mark.parametrize("target, budget", [(0.5, 0.02), (0.8, 0.01), (0.9, 0.05), (0.95, 0.0)])
def test_proposals_meet_their_stated_budget_when_swept(analysed, target, budget):
    sample, table = analysed
    proposal = propose(sample.model, sample.data, table, target, budget)
    swept = pruning_core.sweep(sample.model, sample.data, ["magnitude"], [proposal.layer_sparsities], scope="per-layer")
    data = sample.data
    dense = pruning_core.evaluate(sample.model, data.X_val, data.y_val)["accuracy"]
    # the budget is checked on validation (the split that chooses) ...
    assert proposal.split == "validation"
    assert dense - swept["val_accuracy"].iloc[0] <= budget + 1e-12
    assert dense - swept["val_accuracy"].iloc[0] == pytest.approx(proposal.measured_drop, abs=1e-12)
    # ... and the test drop is reported as it is, whatever it is
    dense_test = pruning_core.evaluate(sample.model, data.X_test, data.y_test)["accuracy"]
    assert dense_test - swept["accuracy"].iloc[0] == pytest.approx(proposal.test_drop, abs=1e-12)
    assert set(proposal.layer_sparsities) == set(table["layer"])
    assert all(s in (0.0, *LEVELS) for s in proposal.layer_sparsities.values())
    if proposal.meets_target:
        assert proposal.overall_sparsity >= target - 1e-9


def test_a_reachable_target_is_reached(analysed):
    sample, table = analysed
    proposal = propose(sample.model, sample.data, table, 0.2, budget=0.05)
    assert proposal.meets_target


def test_cli_sensitivity_prints_the_table_and_a_proposal(capsys):
    assert (
        main(["sensitivity", "--model", "cancer-mlp", "--sparsities", "0.5,0.9", "--target", "0.5", "--budget", "2"])
        == 0
    )
    out = capsys.readouterr().out
    assert "fc1" in out and "fc3" in out and "Proposal for 50%" in out


@pytest.mark.parametrize(
    "argv, named",
    [
        (["sensitivity", "--model", "nope"], "nope"),
        (["sensitivity", "--model", "digits-mlp", "--sparsities", "0.5,1.5"], "1.5"),
        (["sensitivity", "--model", "digits-mlp", "--target", "2"], "2"),
        (["sensitivity", "--model", "digits-mlp", "--method", "bogus"], "bogus"),
    ],
)
def test_cli_sensitivity_errors_are_one_line(capsys, argv, named):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0]


def test_the_proposal_is_chosen_on_validation_not_test(monkeypatch):
    """Swap in a test split on which every pruned model fails: a proposal chosen on validation
    must not change, and its reported test drop must show the failure."""
    sample = sample_models.load_sample("digits-mlp")
    data = sample.data
    table = layer_sensitivity(sample.model, data, "magnitude", LEVELS)
    honest = propose(sample.model, data, table, 0.8, budget=0.02)
    # a "test" split whose labels are all wrong for the dense model: any choice made on it would differ
    with torch.no_grad():
        wrong = (sample.model(data.X_test).argmax(1) + 1) % sample.n_classes
    scrambled = data._replace(y_test=wrong)
    scrambled_table = layer_sensitivity(sample.model, scrambled, "magnitude", LEVELS)
    pd.testing.assert_series_equal(scrambled_table["accuracy_drop"], table["accuracy_drop"])
    proposal = propose(sample.model, scrambled, scrambled_table, 0.8, budget=0.02)
    assert proposal.layer_sparsities == honest.layer_sparsities
    assert proposal.measured_drop == honest.measured_drop
    assert proposal.test_drop != honest.test_drop
