"""Studies: a bad file is refused with every problem at once; cells and their ids follow the rules;
an interrupted study resumes without recomputing or duplicating a cell; a failing cell is recorded
and the others go on; seeds reach every random part; summaries match an independent computation."""

from __future__ import annotations

import hashlib
import json
import math
import statistics

import pandas as pd
import pytest
import yaml

from pruning_core import study as study_mod
from pruning_core.cli import main
from pruning_core.study import Cell, StudyError, execute_cell, from_dict, loads
from pruning_core.study_runner import ResultStore, read_results, run_study
from pruning_core.study_stats import knees, summarise


def valid(**changes) -> dict:
    data = {
        "version": 1,
        "name": "t",
        "model": {"sample": "digits-mlp"},
        "methods": ["magnitude", "random"],
        "scopes": ["global", "layerwise"],
        "sparsities": [0.0, 0.5, 0.9],
        "schedules": [{"kind": "oneshot"}, {"kind": "iterative", "rounds": 2, "finetune": {"epochs": 1}}],
        "seeds": {"count": 3},
    }
    data.update(changes)
    return data


# --- the file ----------------------------------------------------------------------------------


def test_a_valid_study_round_trips_through_yaml_and_json():
    data = valid()
    assert loads(yaml.safe_dump(data)) == loads(json.dumps(data)) == from_dict(data)


def test_every_problem_is_listed_at_once():
    data = valid(
        version=99,
        model={"sample": "nope", "file": "x.safetensors"},
        methods=["magnitude", "bogus"],
        sparsities=[0.5, 1.2],
        seeds=[0, 0],
        exclude=["fc9"],
        extra=1,
    )
    with pytest.raises(StudyError) as info:
        from_dict(data)
    text = " | ".join(info.value.problems)
    for needle in ("extra", "newer", "'nope'", "file", "'bogus'", "1.2", "seed 0 is listed twice"):
        assert needle in text, needle
    assert len(info.value.problems) >= 7


@pytest.mark.parametrize(
    "schedules, needle",
    [
        ([{"kind": "iterative"}], "at least 1 epoch"),
        ([{"kind": "oneshot", "finetune": {"epochs": 1, "seed": 3}}], "set by each cell's seed"),
        ([{"kind": "oneshot", "finetune": {"epochs": 1, "lr": -1}}], "lr"),
        ([{"kind": "sometimes"}], "unknown schedule"),
        ([{"kind": "oneshot"}, {"kind": "oneshot", "name": "again"}], "repeats"),
        ([], "non-empty"),
    ],
)
def test_bad_schedules_are_refused_with_the_reason(schedules, needle):
    with pytest.raises(StudyError, match=needle):
        from_dict(valid(schedules=schedules))


def test_yaml_anchors_oversize_and_deep_nesting_are_refused_before_parsing():
    with pytest.raises(StudyError, match="anchors"):
        loads("version: 1\nmethods: &m [magnitude]\nother: *m\n")
    with pytest.raises(StudyError, match="bytes"):
        loads("version: 1\n" + "#" * 70_000)
    with pytest.raises(StudyError, match="nests"):
        loads("a: " + "[" * 40 + "]" * 40)


def test_a_study_too_large_to_run_is_refused():
    with pytest.raises(StudyError, match="cells"):
        from_dict(valid(seeds={"count": 1000}, sparsities=[i / 100 for i in range(40)]))


# --- cells -------------------------------------------------------------------------------------


def test_cells_cover_the_grid_one_per_sparsity_only_for_schedules_that_train():
    study = from_dict(valid())
    cells = study.cells()
    combos = 1 * 2 * 2 * 3  # models x methods x scopes x seeds
    assert len(cells) == combos * (1 + 3)  # oneshot: all levels in one cell; iterative: one cell per level
    oneshot = [c for c in cells if c.schedule.kind == "oneshot"]
    assert all(c.sparsities == (0.0, 0.5, 0.9) for c in oneshot)
    trained = [c for c in cells if c.schedule.kind == "iterative"]
    assert sorted({c.sparsities for c in trained}) == [(0.0,), (0.5,), (0.9,)]
    assert len({c.cell_id for c in cells}) == len(cells)


def test_a_cell_id_is_the_hash_of_its_canonical_description():
    cell = from_dict(valid()).cells()[5]
    canonical = json.dumps(cell.describe(), sort_keys=True, separators=(",", ":"))
    assert cell.cell_id == hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_cell_ids_survive_reordering_and_renaming_and_change_with_what_matters():
    a = {c.describe()["seed"]: c.cell_id for c in from_dict(valid(seeds=[0, 1])).cells()[:2]}
    reordered = from_dict(valid(seeds=[1, 0], methods=["random", "magnitude"], scopes=["layerwise", "global"]))
    assert {c.cell_id for c in from_dict(valid(seeds=[0, 1])).cells()} == {c.cell_id for c in reordered.cells()}
    renamed = valid(schedules=[{"kind": "oneshot", "name": "plain"}])
    plain = valid(schedules=[{"kind": "oneshot"}])
    assert [c.cell_id for c in from_dict(renamed).cells()] == [c.cell_id for c in from_dict(plain).cells()]
    assert a[0] != a[1]
    seeded = from_dict(valid(calibration="seeded")).cells()[0]
    assert seeded.cell_id != from_dict(valid()).cells()[0].cell_id


# --- running -----------------------------------------------------------------------------------

TINY = {
    "version": 1,
    "model": {"sample": "cancer-mlp"},
    "methods": ["magnitude", "random"],
    "sparsities": [0.0, 0.5, 0.9],
    "seeds": [0, 1],
}


class Counting:
    """A cell function that counts the cells it computes (and can stop the run after some)."""

    def __init__(self, stop_after: int | None = None):
        self.calls: list[str] = []
        self.stop_after = stop_after

    def __call__(self, cell: Cell, bundle, threads: int) -> pd.DataFrame:
        if self.stop_after is not None and len(self.calls) == self.stop_after:
            raise KeyboardInterrupt
        self.calls.append(cell.cell_id)
        return execute_cell(cell, bundle, threads)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_an_interrupted_study_resumes_and_never_computes_a_cell_twice(tmp_path, suffix):
    study = from_dict(TINY)
    out = tmp_path / f"results{suffix}"
    first = Counting(stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_study(study, out, progress=False, cell_function=first)
    assert len(first.calls) == 2
    assert sorted(read_results(out)["cell_id"].unique()) == sorted(first.calls)  # written as they finished

    second = Counting()
    report = run_study(study, out, progress=False, cell_function=second)
    assert report.already_done == 2 and report.computed == 2
    assert not set(first.calls) & set(second.calls)
    table = read_results(out)
    assert list(table["cell_id"].drop_duplicates()) == [c.cell_id for c in study.cells()]
    assert len(table) == 4 * 3 and (table["status"] == "ok").all()

    third = Counting()
    assert run_study(study, out, progress=False, cell_function=third).computed == 0 and not third.calls


def test_a_failing_cell_is_recorded_with_its_error_and_the_others_go_on(tmp_path, monkeypatch):
    real = study_mod.run_cell

    def flaky(cell, bundle):
        if cell.method == "random" and cell.seed == 1:
            raise RuntimeError("boom in the random cell")
        return real(cell, bundle)

    monkeypatch.setattr(study_mod, "run_cell", flaky)
    report = run_study(from_dict(TINY), tmp_path / "r.parquet", progress=False)
    assert report.computed == 4 and report.failed == 1
    table = read_results(tmp_path / "r.parquet")
    failed = table[table["status"] == "failed"]
    assert set(failed["method"]) == {"random"} and set(failed["seed"]) == {1}
    assert failed["error"].str.contains("RuntimeError: boom in the random cell").all()
    assert list(failed["target_sparsity"]) == [0.0, 0.5, 0.9]
    assert (table[table["status"] == "ok"]["accuracy"].notna()).all() and len(table) == 12

    monkeypatch.setattr(study_mod, "run_cell", real)  # a failed cell is tried again on the next run
    again = run_study(from_dict(TINY), tmp_path / "r.parquet", progress=False)
    assert again.computed == 1 and again.failed == 0
    assert (read_results(tmp_path / "r.parquet")["status"] == "ok").all()


def test_a_damaged_part_file_is_recomputed(tmp_path):
    study = from_dict(TINY)
    run_study(study, tmp_path / "r.csv", progress=False)
    store = ResultStore(tmp_path / "r.csv")
    victim = study.cells()[1]
    part = store.parts / f"{victim.cell_id}.parquet"
    part.write_bytes(part.read_bytes()[:100])
    counting = Counting()
    run_study(study, tmp_path / "r.csv", progress=False, cell_function=counting)
    assert counting.calls == [victim.cell_id]


def test_seeds_reach_random_masks_and_fine_tuning_and_rows_carry_them():
    bundle = study_mod.SampleBundle.load("cancer-mlp")
    study = from_dict(
        {**TINY, "methods": ["random", "magnitude"], "sparsities": [0.5], "schedules": [{"finetune": {"epochs": 1}}]}
    )
    rows = {(c.method, c.seed): execute_cell(c, bundle) for c in study.cells()}
    assert all((r["status"] == "ok").all() for r in rows.values())
    assert all((r["seed"] == seed).all() for (_, seed), r in rows.items())
    assert rows[("random", 0)]["loss"].iloc[0] != rows[("random", 1)]["loss"].iloc[0]  # mask and shuffling
    assert rows[("magnitude", 0)]["loss"].iloc[0] != rows[("magnitude", 1)]["loss"].iloc[0]  # shuffling alone
    again = execute_cell(study.cells()[0], bundle)
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), rows[("random", 0)].drop(columns="seconds"))


def test_seeded_calibration_draws_a_different_calibration_sample_per_seed():
    data = study_mod.SampleBundle.load("cancer-mlp").data
    a, b = study_mod._seeded_split(data, 0), study_mod._seeded_split(data, 1)
    assert not (a.X_train[:256] == b.X_train[:256]).all()
    assert sorted(a.y_train.tolist()) == sorted(data.y_train.tolist())  # the same samples, reordered
    assert (a.X_test == data.X_test).all()


def test_the_cli_runs_a_study_and_refuses_a_bad_one(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**TINY, "seeds": [0], "methods": ["magnitude"]}))
    assert main(["study", str(path), "--out", str(tmp_path / "r.csv"), "--no-progress"]) == 0
    assert len(read_results(tmp_path / "r.csv")) == 3
    path.write_text(yaml.safe_dump({**TINY, "methods": ["bogus"], "seeds": "many"}))
    assert main(["study", str(path), "--out", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "'bogus'" in err and "'seeds'" in err and "Traceback" not in err


# --- summaries ---------------------------------------------------------------------------------


def synthetic(values: dict[tuple[str, float], list[float]]) -> pd.DataFrame:
    rows = []
    for (method, sparsity), accuracies in values.items():
        for seed, accuracy in enumerate(accuracies):
            rows.append(
                {
                    "status": "ok",
                    "model": "m",
                    "method": method,
                    "scope": "global",
                    "schedule_name": "s",
                    "schedule": "oneshot",
                    "target_sparsity": sparsity,
                    "actual_sparsity": sparsity,
                    "seed": seed,
                    "accuracy": accuracy,
                }  # fmt: skip
            )
    return pd.DataFrame(rows)


T_975_DF4 = 2.7764451051977987  # Student t, two-sided 95 %, 4 degrees of freedom (tables)


def test_summary_matches_an_independent_computation():
    values = {
        ("random", 0.0): [0.9, 0.9, 0.9, 0.9, 0.9],
        ("random", 0.5): [0.50, 0.62, 0.55, 0.71, 0.43],
        ("magnitude", 0.5): [0.88, 0.89, 0.87, 0.90, 0.86],
    }
    table = synthetic(values)
    table = pd.concat([table, table.iloc[:1].assign(status="failed", accuracy=float("nan"))], ignore_index=True)
    summary = summarise(table).set_index(["method", "target_sparsity"])
    for (method, sparsity), accuracies in values.items():
        row = summary.loc[(method, sparsity)]
        mean, std = statistics.fmean(accuracies), statistics.stdev(accuracies)
        half = T_975_DF4 * std / math.sqrt(5)
        assert row["accuracy_n"] == 5
        assert row["accuracy_mean"] == pytest.approx(mean)
        assert row["accuracy_std"] == pytest.approx(std)
        assert row["accuracy_ci_low"] == pytest.approx(mean - half)
        assert row["accuracy_ci_high"] == pytest.approx(mean + half)


def test_one_seed_gives_a_mean_but_no_interval():
    row = summarise(synthetic({("random", 0.5): [0.7]})).iloc[0]
    assert row["accuracy_mean"] == 0.7 and row["accuracy_n"] == 1
    assert math.isnan(row["accuracy_std"]) and math.isnan(row["accuracy_ci_low"])


def test_knees_are_found_per_seed_then_summarised():
    # per seed: dense 0.9; the knee is the highest sparsity within 1 point of it
    table = synthetic(
        {
            ("magnitude", 0.0): [0.90, 0.90, 0.90],
            ("magnitude", 0.5): [0.895, 0.895, 0.85],
            ("magnitude", 0.8): [0.892, 0.80, 0.70],
            ("random", 0.0): [0.90, 0.90, 0.90],
            ("random", 0.5): [0.5, 0.4, 0.3],
        }
    )
    result = knees(table).set_index("method")
    per_seed = [0.8, 0.5, 0.0]
    assert result.loc["magnitude", "knee_mean"] == pytest.approx(statistics.fmean(per_seed))
    assert result.loc["magnitude", "knee_std"] == pytest.approx(statistics.stdev(per_seed))
    assert result.loc["magnitude", "knee_n"] == 3
    assert result.loc["random", "knee_mean"] == 0.0 and result.loc["random", "knee_std"] == 0.0


@pytest.mark.slow
def test_local_worker_processes_give_the_in_process_results_exactly(tmp_path):
    study = from_dict({**TINY, "schedules": [{"kind": "oneshot", "finetune": {"epochs": 1}}], "sparsities": [0.5, 0.9]})
    here = run_study(study, tmp_path / "here.parquet", progress=False)
    spread = run_study(study, tmp_path / "spread.parquet", workers=2, progress=False)
    assert here.computed == spread.computed == 8 and not spread.failed
    a, b = read_results(tmp_path / "here.parquet"), read_results(tmp_path / "spread.parquet")
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"), check_exact=True)
