""" "Your model" in the app: an uploaded model and data drive every explorer page, for one session only.

Rules checked here (AppTest drives the real sidebar's file uploaders):
- an ONNX model no sample resembles, with NPZ data, gives a trade-off chart whose accuracy at 0 %
  sparsity is onnxruntime's on the same test samples;
- Layers, Size & speed, Sensitivity, Schedules and Export work on it; the recipe records the
  files' format and SHA-256 (no file name, no path) and the pruned ONNX is the user's own graph;
- without data, accuracy views say why and Size & speed still works;
- hostile files are refused with the loader's message, their payload never runs, and the
  previously loaded model stays in use;
- a second session sees nothing of the first's upload, and the shared caches hold none of it;
- ``PRUNELAB_UPLOADS=0`` hides the option; a ``model=upload`` link keeps its settings and asks for the file;
- past ``PRUNELAB_UPLOAD_SECONDS`` loading is refused and a computation stops with a message; the
  session keeps working, the model stays loaded, and nothing of the stopped computation is kept.
"""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_pages import figures, run_app, run_sidebar_app

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "core"))
sys.path.insert(0, str(ROOT))
from own_model_helpers import fit_readout, onnxruntime_outputs, residual_net, to_onnx  # noqa: E402

from tests.hostile.make_hostile import build_corpus  # noqa: E402

ONNX_MIME, NPZ_MIME = "application/octet-stream", "application/octet-stream"


@pytest.fixture(scope="module")
def files() -> dict:
    """A residual/depthwise/concat CNN on digits (readout fitted), as ONNX, and its data as NPZ
    with explicit train and test splits (so the test samples are known here)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = torch.tensor(digits.data / 16, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))
    X, y = X[order], y[order]
    train, test = slice(0, 1400), slice(1400, None)
    model = fit_readout(residual_net(), X[train], y[train])
    onnx = to_onnx(model, X)
    buffer = io.BytesIO()
    np.savez(buffer, X_train=X[train].numpy(), y_train=y[train].numpy(), X_test=X[test].numpy(), y_test=y[test].numpy())
    (logits,) = onnxruntime_outputs(onnx, X[test])
    ort_accuracy = float((logits.argmax(1) == y[test].numpy()).mean())
    return {"onnx": onnx, "npz": buffer.getvalue(), "ort_accuracy": ort_accuracy, "n_test": len(y[test])}


@pytest.fixture(scope="module")
def hostile_corpus(tmp_path_factory) -> tuple[Path, Path, dict]:
    directory = tmp_path_factory.mktemp("hostile")
    marker = tmp_path_factory.mktemp("marker") / "PAYLOAD_RAN"
    return directory, marker, {entry.name: entry for entry in build_corpus(directory, marker)}


def upload(at, files: dict, data: bool = True, model_name: str = "net.onnx", model_bytes: bytes | None = None):
    at.file_uploader(key="own_model_file").set_value((model_name, model_bytes or files["onnx"], ONNX_MIME))
    if data:
        at.file_uploader(key="own_data_file").set_value(("digits.npz", files["npz"], NPZ_MIME))
    return at.run()


def assert_model_untouched(at, files: dict) -> None:
    """The session's model still holds the file's weights: pages prune copies, never it."""
    from pruning_core.loaders import load_own

    fresh = load_own(files["onnx"], model_filename="m.onnx").model.state_dict()
    held = at.session_state["own_model"].model.state_dict()
    assert held.keys() == fresh.keys()
    for name, tensor in fresh.items():
        assert torch.equal(held[name], tensor), name


def texts(at, kind: str) -> str:
    return "\n".join(str(element.value) for element in at.get(kind))


def dense_line(fig: dict) -> float:
    (shape,) = [s for s in fig["layout"]["shapes"] if s.get("line", {}).get("dash") == "dash"]
    return shape["y0"]


def test_uploaded_onnx_and_npz_give_a_tradeoff_whose_accuracy_at_zero_is_onnxruntimes(files):
    from ui import compute

    shared_before = (len(compute.results()), len(compute.figure_cache()))
    at = run_sidebar_app(model="upload", methods="magnitude,structured-l1", levels="0,0.5,0.9")
    assert not at.exception
    assert "upload your model file" in texts(at, "info").lower()
    at = upload(at, files)
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    (fig,) = figures(at)
    assert "onnx model" in fig["layout"]["title"]["text"]
    expected = files["ort_accuracy"] * 100
    assert dense_line(fig) == pytest.approx(expected, abs=1e-6)
    for trace in fig["data"]:
        if trace["name"].startswith("knee"):
            continue
        zero = max(range(len(trace["x"])), key=lambda i: trace["x"][i])  # the most parameters: 0 % sparsity
        assert trace["y"][zero] == pytest.approx(expected, abs=1e-6), trace["name"]
    assert f"test set of {files['n_test']} samples" in texts(at, "caption")
    # Nothing of this session's model went into the caches every session reads.
    assert (len(compute.results()), len(compute.figure_cache())) == shared_before
    assert all(k[0] != "upload" for k in _session_results(at))


def _session_results(at) -> list:
    return [key[1:] for key in at.session_state["own_results"]] if "own_results" in at.session_state else []


def test_a_second_session_does_not_see_the_first_sessions_upload(files):
    first = upload(run_sidebar_app(model="upload", methods="magnitude", levels="0,0.5"), files)
    assert figures(first)
    second = run_sidebar_app(model="upload", methods="magnitude", levels="0,0.5")
    assert not second.exception
    assert not figures(second)
    assert "own_model" not in second.session_state
    assert "upload your model file" in texts(second, "info").lower()


@pytest.mark.parametrize(
    ("page", "expect"),
    [("layers.py", "layers_hist"), ("size_speed.py", "size_files"), ("sensitivity.py", "sens_curves")],
)
def test_explorer_pages_work_on_the_uploaded_model(files, page, expect):
    at = upload(run_sidebar_app(page, model="upload", methods="magnitude,structured-l1", levels="0,0.5,0.9"), files)
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    assert any(expect in chart.proto.id for chart in at.get("plotly_chart")), expect
    names = [c for c in texts(at, "caption").split("\n") if "onnx model" in c]
    assert names, "the sidebar names the uploaded model"
    assert_model_untouched(at, files)


def test_export_records_the_files_by_sha256_and_gives_the_pruned_onnx(files):
    import onnxruntime

    from pruning_core.apply import apply_choice
    from pruning_core.choice import PruningChoice
    from pruning_core.loaders import load_own

    at = upload(run_sidebar_app("export.py", model="upload", methods="magnitude", levels="0,0.5"), files)
    assert not at.exception, at.exception
    recipe_text = next(c.value for c in at.get("code") if "sha256" in str(c.value))
    recipe = yaml.safe_load(recipe_text)
    assert recipe["model"]["file"] == {"format": "onnx", "sha256": hashlib.sha256(files["onnx"]).hexdigest()}
    assert recipe["model"]["data"] == {"format": "npz", "sha256": hashlib.sha256(files["npz"]).hexdigest()}
    assert "net.onnx" not in recipe_text and "digits.npz" not in recipe_text
    assert "No standalone script" in texts(at, "info")
    bundle = _only_bundle(at)
    assert bundle.own_onnx is not None
    session = onnxruntime.InferenceSession(bundle.own_onnx, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]  # the user's own graph, rewritten
    # It computes what the same choice applied to the same files computes, outside the app.
    mine = load_own(files["onnx"], model_filename="m.onnx", data=files["npz"], data_filename="d.npz")
    pruned = apply_choice(mine.model, mine.split, PruningChoice("magnitude", "global", 0.5)).model
    (out,) = session.run(None, {"input": mine.split.X_test.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, pruned(mine.split.X_test).numpy(), atol=1e-4)
    assert (out != onnxruntime_outputs(files["onnx"], mine.split.X_test)[0]).any()  # pruning changed it


def _only_bundle(at):
    (bundle,) = [v for k, v in at.session_state["own_results"].items() if k[0] == "export"]
    return bundle


def test_schedules_train_the_uploaded_model_without_offering_the_lottery(files):
    at = upload(run_sidebar_app("schedules.py", model="upload", methods="magnitude"), files)
    assert "lottery" not in at.multiselect(key="sched_curves").options
    at.multiselect(key="sched_curves").set_value(["oneshot", "oneshot+ft"])
    at.slider(key="sched_levels").set_value(2)
    at.slider(key="sched_epochs").set_value(1)
    at.button[0].click()  # the form's Run
    at.run()
    assert not at.exception, at.exception
    assert figures(at)
    assert_model_untouched(at, files)


def test_without_data_accuracy_views_say_why_and_size_speed_works(files):
    at = upload(run_sidebar_app(model="upload", methods="magnitude"), files, data=False)
    assert not at.exception
    assert "needs labelled data" in texts(at, "info")
    assert not figures(at)
    at = upload(run_sidebar_app("size_speed.py", model="upload", methods="magnitude"), files, data=False)
    assert not at.exception, at.exception
    assert figures(at)


@pytest.mark.parametrize(
    ("name", "filename"),
    [
        ("pickle-runs-command", "weights.pt"),
        ("lying-safetensors", "lying.safetensors"),
        ("onnx-garbage", "g.onnx"),
        ("npz-object-array", "objects.npz"),
    ],
)
def test_hostile_files_are_refused_and_the_previous_model_stays(files, hostile_corpus, name, filename):
    directory, marker, corpus = hostile_corpus
    hostile = (directory / corpus[name].filename).read_bytes()
    at = upload(run_sidebar_app(model="upload", methods="magnitude", levels="0,0.5"), files)
    (before,) = figures(at)
    if corpus[name].kind == "model":
        at = upload(at, files, data=False, model_name=filename, model_bytes=hostile)
    else:  # the same model with hostile data
        at.file_uploader(key="own_data_file").set_value((filename, hostile, NPZ_MIME))
        at.run()
    assert not at.exception, at.exception
    message = texts(at, "error")
    assert "Refused" in message and corpus[name].expect in message.lower()
    assert "previous model is still in use" in message
    assert not marker.exists()
    (after,) = figures(at)  # the session keeps working on the model it had
    assert dense_line(after) == dense_line(before)


def test_uploads_switched_off_hide_the_option_and_refuse_upload_links(monkeypatch):
    monkeypatch.setenv("PRUNELAB_UPLOADS", "0")
    at = run_sidebar_app(model="upload", methods="magnitude", levels="0,0.5")
    assert not at.exception
    assert "upload" not in at.selectbox(key="w_model").options
    assert not at.get("file_uploader")
    assert "does not accept uploaded models" in texts(at, "warning")


def test_a_link_to_an_uploaded_model_keeps_its_settings_and_asks_for_the_file():
    at = run_app(model="upload", methods="magnitude", scope="layerwise", levels="0,0.5")
    assert not at.exception
    assert "asks for the file again" in texts(at, "info")
    config = at.session_state["config"]
    assert (config.model, config.scope, config.methods) == ("upload", "layerwise", ("magnitude",))
    assert config.levels == (0, 0.5)
    assert not at.get("plotly_chart")


@pytest.mark.parametrize(
    "page", ["tradeoff.py", "layers.py", "size_speed.py", "schedules.py", "sensitivity.py", "export.py"]
)
def test_every_explorer_page_asks_for_the_file_before_one_is_uploaded(page):
    at = run_sidebar_app(page, model="upload", methods="magnitude")
    assert not at.exception, at.exception
    assert "asks for the file again" in texts(at, "info")
    assert not at.get("plotly_chart")


class _DeclaredOnly:
    """An upload that declares its size; reading it fails the test (sizes are checked first)."""

    def __init__(self, name: str, size: int) -> None:
        self.name, self.size = name, size

    def getvalue(self) -> bytes:
        raise AssertionError("the file was read before its size was checked")


def test_an_oversized_upload_is_refused_before_it_is_read(files):
    from pruning_core.loaders import UntrustedFileError
    from ui import own

    limit = own.app_limits().max_model_bytes
    assert limit <= 50 * 1024 * 1024  # never above .streamlit/config.toml's server.maxUploadSize
    with pytest.raises(UntrustedFileError, match=r"300\.0 MB; the limit is"):
        own.load_upload(_DeclaredOnly("huge.onnx", 300 * 1024 * 1024))
    with pytest.raises(UntrustedFileError, match="data file"):
        own.load_upload(_Bytes("net.onnx", files["onnx"]), _DeclaredOnly("huge.npz", 300 * 1024 * 1024))
    with pytest.raises(UntrustedFileError, match="choose its architecture"):
        own.load_upload(_Bytes("w.safetensors", b"x" * 64))  # a state dict needs a sample architecture
    with pytest.raises(UntrustedFileError, match="choose its architecture"):  # never code named by the user
        own.load_upload(_Bytes("w.safetensors", b"x" * 64), architecture="os:system")


class _Bytes:
    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.size, self._data = name, len(data), data

    def getvalue(self) -> bytes:
        return self._data


def test_fine_tuning_beyond_the_evaluation_budget_is_refused(files):
    from ui import own

    loaded = own.load_upload(_Bytes("net.onnx", files["onnx"]), _Bytes("d.npz", files["npz"]))
    assert own.training_cost_problem(loaded, epochs=1, rounds=2, levels=2, curves=2) is None
    budget = own.app_limits().max_eval_macs
    per_epoch = 3 * loaded.loaded.macs_per_sample * len(loaded.split.y_train)
    epochs = budget // per_epoch + 1
    problem = own.training_cost_problem(loaded, epochs=int(epochs), rounds=1, levels=1, curves=1)
    assert problem is not None and "shared server allows" in problem


def test_a_recipe_for_an_own_model_reopens_its_settings_and_asks_for_that_file(files):
    first = upload(run_sidebar_app("export.py", model="upload", methods="magnitude", levels="0,0.5"), files)
    recipe_yaml = _only_bundle(first).recipe_yaml
    other = run_sidebar_app("export.py", methods="magnitude", levels="0,0.5", n="2")
    other.file_uploader(key="recipe_upload").set_value(("r.yaml", recipe_yaml.encode(), "application/yaml"))
    other.run()
    assert not other.exception, other.exception
    assert other.session_state["config"].model == "upload"
    sha = hashlib.sha256(files["onnx"]).hexdigest()
    assert f"SHA-256 {sha[:12]}" in texts(other, "success") and "upload that file" in texts(other, "success")


def test_a_state_dict_uses_the_architecture_chosen_and_a_wrong_one_is_refused_then_fixed():
    import pruning_core
    import sample_models

    sample = sample_models.load_sample("moons-mlp")
    weights = (ROOT / "sample_models" / "weights" / "moons-mlp.safetensors").read_bytes()
    d = sample.data
    buffer = io.BytesIO()
    np.savez(
        buffer, X_train=d.X_train.numpy(), y_train=d.y_train.numpy(), X_test=d.X_test.numpy(), y_test=d.y_test.numpy()
    )
    at = run_sidebar_app(model="upload", methods="magnitude", levels="0,0.5")
    at.file_uploader(key="own_model_file").set_value(("moons.safetensors", weights, ONNX_MIME))
    at.file_uploader(key="own_data_file").set_value(("moons.npz", buffer.getvalue(), NPZ_MIME))
    at.run()
    assert at.selectbox(key="own_architecture").value == "digits-mlp"  # the first sample: the wrong one here
    assert "Refused" in texts(at, "error") and not figures(at)
    at.selectbox(key="own_architecture").set_value("moons-mlp").run()
    assert not at.exception and not at.error, texts(at, "error")
    (fig,) = figures(at)
    expected = pruning_core.evaluate(sample.model, d.X_test, d.y_test)["accuracy"] * 100
    assert dense_line(fig) == pytest.approx(expected, abs=1e-6)


def test_session_results_are_bounded_and_files_as_big_as_the_model_few(monkeypatch):
    """The per-session store keeps at most MAX_PER_KIND exports (each holds the model's bytes)."""
    from types import SimpleNamespace

    import streamlit as st

    from ui import own

    state: dict = {}
    monkeypatch.setattr(st, "session_state", SimpleNamespace(get=state.get, setdefault=state.setdefault))
    fake = SimpleNamespace(loaded=SimpleNamespace(sha256="a" * 64), data=None, label_column=None)
    monkeypatch.setattr(own, "current", lambda: fake)
    computed = []
    for i in range(5):
        own.cached("export", (i,), lambda o, i=i: computed.append(i) or i)
    own.cached("export", (4,), lambda o: pytest.fail("recomputed a kept result"))
    kept = [k[-1] for k in state[own._RESULTS] if k[0] == "export"]
    assert kept == [(3,), (4,)] and computed == [0, 1, 2, 3, 4]
    for i in range(own.MAX_RESULTS + 5):
        own.cached("sweep", (i,), lambda o, i=i: i)
    assert len(state[own._RESULTS]) == own.MAX_RESULTS


def test_a_per_layer_proposal_in_the_link_applies_to_the_uploaded_model(files):
    at = run_sidebar_app(model="upload", methods="magnitude", levels="0,0.5", alloc="magnitude|fc1:0.5,fc2:0.25")
    at = upload(at, files)
    assert not at.exception, at.exception
    (fig,) = figures(at)
    assert any("per-layer proposal" in trace["name"] for trace in fig["data"])
    assert "fc1 50%, fc2 25%" in texts(at, "caption")


def test_a_link_whose_layers_the_uploaded_model_lacks_drops_them_with_a_message(files):
    at = run_sidebar_app(
        model="upload", methods="magnitude", levels="0,0.5", exclude="fc1,nope", alloc="magnitude|x:0.5"
    )
    at = upload(at, files)
    assert not at.exception, at.exception
    assert "no longer excluded: nope" in texts(at, "info") and "lacks (x); cleared" in texts(at, "info")
    assert at.session_state["config"].exclude == ("fc1",) and not at.session_state["config"].allocation
    assert figures(at)


def test_csv_data_needs_its_label_column_named(files):
    import pandas as pd

    npz = np.load(io.BytesIO(files["npz"]))
    X = np.concatenate([npz["X_train"], npz["X_test"]]).reshape(-1, 64)
    y = np.concatenate([npz["y_train"], npz["y_test"]])
    frame = pd.DataFrame(X, columns=[f"p{i}" for i in range(64)]).assign(digit=y)
    at = run_sidebar_app(model="upload", methods="magnitude", levels="0,0.5")
    at.file_uploader(key="own_model_file").set_value(("net.onnx", files["onnx"], ONNX_MIME))
    at.file_uploader(key="own_data_file").set_value(("digits.csv", frame.to_csv(index=False).encode(), "text/csv"))
    at.run()
    assert "no label column 'label'" in texts(at, "error")  # the default name, refused with the columns it has
    assert not figures(at)
    at.text_input(key="own_label_column").set_value("digit").run()
    assert not at.exception and not at.error, texts(at, "error")
    assert figures(at)
    assert at.session_state["own_model"].data_identity["label_column"] == "digit"


def test_loading_past_the_time_limit_is_refused_and_a_higher_limit_loads_it(files, monkeypatch):
    monkeypatch.setenv("PRUNELAB_UPLOAD_SECONDS", "0")  # every computation on an upload is past its limit
    at = upload(run_sidebar_app(model="upload", methods="magnitude", levels="0,0.5"), files)
    assert not at.exception, at.exception
    assert "loading your model took longer than 0 s" in texts(at, "error")
    assert "use a smaller model or data file, or the command line (`prunelab sweep" in texts(at, "error")
    assert "own_model" not in at.session_state and not figures(at)
    monkeypatch.setenv("PRUNELAB_UPLOAD_SECONDS", "off")
    at = at.run()  # the same files, tried again under the new limit
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    assert figures(at)


def test_a_sweep_past_the_time_limit_stops_with_a_message_and_the_session_keeps_working(files, monkeypatch):
    at = upload(run_sidebar_app(model="upload", methods="magnitude", levels="0,0.5"), files)
    assert figures(at)
    loaded = at.session_state["own_model"]
    at.session_state["own_results"] = {}  # computed again: now under a limit that has passed
    monkeypatch.setenv("PRUNELAB_UPLOAD_SECONDS", "0")
    at = at.run()
    assert not at.exception, at.exception
    error = texts(at, "error")
    assert "Stopped: sweeping your model took longer than 0 s" in error, error
    assert "Your model is still loaded" in error and "Refused" not in error  # the file is not loaded again
    assert not figures(at)
    assert at.session_state["own_model"] is loaded
    assert _session_results(at) == []  # nothing of the stopped computations was kept
    monkeypatch.delenv("PRUNELAB_UPLOAD_SECONDS")  # the default limit: ample for this model
    at = at.run()
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    assert figures(at)


def test_the_upload_time_limit_setting(monkeypatch):
    from ui import config, own

    monkeypatch.delenv("PRUNELAB_UPLOAD_SECONDS", raising=False)
    assert own.app_limits().max_seconds == config.UPLOAD_SECONDS_DEFAULT == 120
    for text, expected in [("30", 30.0), (" 0.5 ", 0.5), ("0", 0.0), ("off", None), ("-3", 120.0), ("x", 120.0)]:
        monkeypatch.setenv("PRUNELAB_UPLOAD_SECONDS", text)
        assert config.upload_seconds() == expected, text


def _swallowing_compute() -> None:
    """A session whose computation catches the time limit's exception and returns anyway."""
    from types import SimpleNamespace

    import streamlit as st

    from pruning_core.deadline import TimeLimitExceeded, check_deadline
    from ui import own

    def compute(o) -> str:
        try:
            check_deadline()
        except TimeLimitExceeded:
            return "incomplete"
        return "complete"

    loaded = SimpleNamespace(sha256="f" * 64)
    st.session_state.setdefault("own_model", SimpleNamespace(loaded=loaded, data=None, label_column=None))
    st.write(own.cached("sweep", ("a",), compute))


def test_a_result_finished_past_the_time_limit_is_not_kept(monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PRUNELAB_UPLOAD_SECONDS", "0")
    at = AppTest.from_function(_swallowing_compute).run()
    assert not at.exception, at.exception
    assert "Stopped: sweeping your model took longer than 0 s" in texts(at, "error")
    assert "incomplete" not in [m.value for m in at.markdown]
    assert at.session_state["own_results"] == {}
    monkeypatch.setenv("PRUNELAB_UPLOAD_SECONDS", "60")
    at = at.run()
    assert not at.error and [m.value for m in at.markdown] == ["complete"]
    assert list(at.session_state["own_results"].values()) == ["complete"]
