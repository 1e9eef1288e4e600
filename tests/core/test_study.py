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
import torch
import yaml

from pruning_core import study as study_mod
from pruning_core.choice import Calibration
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
    assert len(info.value.problems) >= 6


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


def test_seeded_calibration_draws_the_engines_shuffled_sample_with_the_cells_seed(monkeypatch):
    bundle = study_mod.SampleBundle.load("cancer-mlp")
    drawn: list[tuple[str, int, torch.Tensor]] = []
    real_select = Calibration.select

    def spy(self, X, y):
        picked = real_select(self, X, y)
        drawn.append((self.order, self.seed, picked[0]))
        return picked

    monkeypatch.setattr(Calibration, "select", spy)
    study = from_dict({**TINY, "methods": ["wanda"], "sparsities": [0.5, 0.9], "calibration": "seeded"})
    runs = [execute_cell(cell, bundle) for cell in study.cells()]  # seeds 0 and 1
    again = execute_cell(study.cells()[0], bundle)
    assert all((r["status"] == "ok").all() for r in [*runs, again]), runs[0]["error"].iloc[0]
    assert [(order, seed) for order, seed, _ in drawn] == [("shuffled", 0), ("shuffled", 1), ("shuffled", 0)]
    X = bundle.data.X_train
    for _, seed, picked in drawn:  # an independent draw: 256 of the train samples, permuted by the seed
        index = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:256]
        assert torch.equal(picked, X[index])
    assert not torch.equal(drawn[0][2], drawn[1][2])
    pd.testing.assert_frame_equal(runs[0].drop(columns="seconds"), again.drop(columns="seconds"))  # same masks
    assert runs[0]["loss"].tolist() != runs[1]["loss"].tolist()  # another sample, other masks

    drawn.clear()
    first = from_dict({**TINY, "methods": ["wanda"], "sparsities": [0.5]})
    for cell in first.cells():
        execute_cell(cell, bundle)
    assert [(order, seed) for order, seed, _ in drawn] == [("first", 0), ("first", 0)]
    assert all(torch.equal(picked, X[:256]) for _, _, picked in drawn)


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


# --- your own model ----------------------------------------------------------------------------


def own_files(directory) -> dict:
    """A model no sample resembles (gated MLP, 13 features, 3 classes) exported to ONNX, and a CSV of
    labelled data it fits; returns the study's model entry, paths relative to ``directory``."""
    from own_model_helpers import fit_readout, to_onnx, wide_mlp

    generator = torch.Generator().manual_seed(0)
    X = torch.randn(300, 13, generator=generator)
    y = (X[:, :3] @ torch.randn(3, 3, generator=generator)).argmax(1)
    torch.manual_seed(0)  # WideMLP's layers initialise from the global RNG: this is test set-up, not a request
    model = fit_readout(wide_mlp(), X, y)
    (directory / "net.onnx").write_bytes(to_onnx(model, X))
    header = ",".join(f"f{i}" for i in range(13)) + ",label\n"
    rows = "".join(",".join(f"{v:.9g}" for v in row.tolist()) + f",{int(t)}\n" for row, t in zip(X, y))
    (directory / "data.csv").write_text(header + rows)
    return {"file": "net.onnx", "data": "data.csv", "label_column": "label"}


OWN = {"version": 1, "methods": ["magnitude", "random"], "sparsities": [0.0, 0.6], "seeds": [0, 1]}


@pytest.fixture(scope="module")
def own_study_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("own")
    entry = own_files(directory)
    (directory / "study.yaml").write_text(yaml.safe_dump({**OWN, "model": entry}))
    return directory


def test_an_own_onnx_model_study_records_the_files_sha256_never_their_path(own_study_dir, tmp_path):
    from own_model_helpers import onnxruntime_outputs

    study = study_mod.load(own_study_dir / "study.yaml")
    assert len(study.cells()) == 2 * 2  # methods x seeds; both sparsities in each (one-shot) cell
    report = run_study(study, tmp_path / "r.parquet", progress=False)
    assert report.computed == 4 and not report.failed
    table = read_results(tmp_path / "r.parquet")
    assert len(table) == 8 and (table["status"] == "ok").all()
    model_bytes = (own_study_dir / "net.onnx").read_bytes()
    assert set(table["model_sha256"]) == {hashlib.sha256(model_bytes).hexdigest()}
    assert set(table["data_sha256"]) == {hashlib.sha256((own_study_dir / "data.csv").read_bytes()).hexdigest()}
    assert set(table["model_format"]) == {"onnx"} and set(table["data_format"]) == {"csv"}
    assert str(own_study_dir) not in table.to_csv() and "net.onnx" not in table.to_csv()
    split = study.loaded[study.models[0]].data
    (logits,) = onnxruntime_outputs(model_bytes, split.X_test)
    reference = float((logits.argmax(1) == split.y_test.numpy()).mean())
    dense = table[table["target_sparsity"] == 0.0]["accuracy"]
    assert list(dense) == pytest.approx([reference] * 4, abs=1e-12)
    random = table[(table["method"] == "random") & (table["target_sparsity"] == 0.6)]
    assert random["loss"].nunique() == 2  # the seed reaches the random masks


def test_own_model_cells_depend_on_the_files_contents_not_where_they_are(own_study_dir, tmp_path):
    ids = [c.cell_id for c in study_mod.load(own_study_dir / "study.yaml").cells()]
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for name in ("net.onnx", "data.csv"):
        (moved / name).write_bytes((own_study_dir / name).read_bytes())
    entry = {"file": "./net.onnx", "data": "data.csv", "label_column": "label"}
    (moved / "s.yaml").write_text(yaml.safe_dump({**OWN, "model": entry}))
    assert [c.cell_id for c in study_mod.load(moved / "s.yaml").cells()] == ids
    spec = study_mod.load(moved / "s.yaml").cells()[0].model_spec
    rows = (moved / "data.csv").read_text().splitlines()
    (moved / "data.csv").write_text("\n".join(rows[:-1]) + "\n")  # one sample fewer
    with pytest.raises(StudyError, match="changed since the study was validated"):
        spec.load_bundle()
    assert study_mod.load(moved / "s.yaml").cells()[0].cell_id not in ids


def test_own_model_problems_are_listed_with_the_others(own_study_dir, tmp_path):
    (tmp_path / "model.txt").write_text("not a model")
    (tmp_path / "pickled.pt").write_bytes(b"\x80\x04not really")
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage")
    (tmp_path / "data.csv").write_bytes((own_study_dir / "data.csv").read_bytes())
    data = {
        **OWN,
        "methods": ["bogus"],
        "models": [
            {"file": "missing.onnx", "data": "data.csv"},
            {"file": "model.txt", "data": "data.csv"},
            {"file": "bad.onnx", "data": "data.csv"},
            {"file": "net.onnx"},
        ],
    }
    with pytest.raises(StudyError) as info:
        from_dict(data, base_dir=tmp_path)
    text = " | ".join(info.value.problems)
    for needle in ("'bogus'", "cannot find the own model's file", "missing.onnx", "unsupported model format .txt",
                   "'bad.onnx'", "give data"):  # fmt: skip
        assert needle in text, needle
    assert len(info.value.problems) == 5


def test_lottery_schedules_are_refused_for_an_own_model(own_study_dir):
    data = {**OWN, "model": {"file": "net.onnx", "data": "data.csv", "label_column": "label"}}
    lottery = {"kind": "lottery", "rounds": 2, "finetune": {"epochs": 1}}
    with pytest.raises(StudyError, match="lottery schedule rewinds to the weights a model was trained from"):
        from_dict({**data, "schedules": [lottery]}, base_dir=own_study_dir)
    iterative = {"kind": "iterative", "rounds": 2, "finetune": {"epochs": 1}}
    trained = from_dict({**data, "schedules": [iterative]}, base_dir=own_study_dir)
    assert trained.cells()  # other schedules are fine


def test_an_unreachable_ray_address_fails_fast_with_what_to_check(tmp_path):
    import socket

    from pruning_core.study_runner import check_reachable

    with socket.socket() as server:  # a port that was just free and is closed again: nothing listens
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
    address = f"127.0.0.1:{port}"
    with pytest.raises(ConnectionError, match=f"cannot reach a Ray cluster at {address}.*ray start --head"):
        check_reachable(address, timeout_s=2)
    with pytest.raises(ConnectionError, match="not a Ray address"):
        check_reachable("nohost:port")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**TINY, "seeds": [0], "methods": ["magnitude"]}))
    pytest.importorskip("ray")
    code = main(["study", str(path), "--out", str(tmp_path / "r.csv"), "--backend", "ray", "--address", address])
    assert code == 2 and not (tmp_path / "r.csv").exists()


@pytest.mark.slow
def test_worker_processes_load_an_own_model_from_its_file_and_give_the_same_results(own_study_dir, tmp_path):
    study = study_mod.load(own_study_dir / "study.yaml")
    here = run_study(study, tmp_path / "here.parquet", progress=False)
    spread = run_study(study, tmp_path / "spread.parquet", workers=2, progress=False)
    assert here.computed == spread.computed == 4 and not spread.failed
    a, b = read_results(tmp_path / "here.parquet"), read_results(tmp_path / "spread.parquet")
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"), check_exact=True)


def test_the_studies_page_names_an_own_model_by_its_sha256(own_study_dir, tmp_path):
    from tests.app.test_pages import run_sidebar_app

    run_study(study_mod.load(own_study_dir / "study.yaml"), tmp_path / "r.csv", progress=False)
    data = (tmp_path / "r.csv").read_bytes()
    at = run_sidebar_app("studies.py")
    at.get("file_uploader")[0].set_value(("r.csv", data, "text/csv"))
    at.run()
    assert not at.exception
    digest = hashlib.sha256((own_study_dir / "net.onnx").read_bytes()).hexdigest()
    assert any(digest in c.value and "onnx file" in c.value for c in at.caption)
    assert str(own_study_dir) not in data.decode()


def test_a_state_dict_study_names_its_architecture_and_records_it(tmp_path):
    from safetensors.torch import save

    import sample_models

    sample = sample_models.load_sample("cancer-mlp")
    (tmp_path / "w.safetensors").write_bytes(save({k: v.contiguous() for k, v in sample.model.state_dict().items()}))
    X = torch.cat([sample.data.X_train, sample.data.X_test])
    y = torch.cat([sample.data.y_train, sample.data.y_test])
    header = ",".join(f"f{i}" for i in range(X.shape[1])) + ",label\n"
    rows = "".join(",".join(f"{v:.9g}" for v in row.tolist()) + f",{int(t)}\n" for row, t in zip(X, y))
    (tmp_path / "d.csv").write_text(header + rows)
    entry = {"file": "w.safetensors", "data": "d.csv", "factory": "cancer-mlp", "label_column": "label"}
    study = from_dict({**OWN, "methods": ["magnitude"], "seeds": [0], "model": entry}, base_dir=tmp_path)
    assert study.cells()[0].describe()["model"]["model"]["factory"] == "cancer-mlp"
    run_study(study, tmp_path / "r.parquet", progress=False)
    table = read_results(tmp_path / "r.parquet")
    assert (table["status"] == "ok").all() and set(table["model_format"]) == {"safetensors"}
    split = study.loaded[study.models[0]].data
    with torch.inference_mode():  # the sample's own weights, evaluated by torch on the study's split
        expected = float((sample.model(split.X_test).argmax(1) == split.y_test).double().mean())
    assert table[table["target_sparsity"] == 0.0]["accuracy"].iloc[0] == pytest.approx(expected, abs=1e-12)
    with pytest.raises(StudyError, match="architecture"):
        from_dict({**OWN, "model": {**entry, "factory": None}}, base_dir=tmp_path)
