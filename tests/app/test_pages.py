"""Every page driven through Streamlit's AppTest: widgets change the figures, bad input never raises."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from pruning_core.methods import get_method

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 240


def run_app(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def _decode(value):
    """Plotly serialises numeric arrays as {"dtype", "bdata"} (base64); turn them back into lists."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if "shape" in value:
            shape = value["shape"]
            shape = [int(d) for d in shape.split(",")] if isinstance(shape, str) else shape
            return array.reshape(shape).tolist()
        return array.tolist()
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def figures(at: AppTest) -> list[dict]:
    return [_decode(json.loads(chart.proto.spec)) for chart in at.get("plotly_chart")]


def _sidebar_and_page(page_path: str) -> None:
    import runpy

    import streamlit as st

    from ui import state

    state.init()
    st.session_state.explorer = state.sidebar()
    runpy.run_path(page_path)


def run_sidebar_app(page: str = "tradeoff.py", **query: str) -> AppTest:
    """The sidebar and one page without st.navigation.

    AppTest drops everything the entry file draws from its element tree after the first rerun of
    an app that uses st.navigation (a real browser keeps it; the end-to-end test drives the real
    app), so sidebar interactions are tested on this equivalent single-page script.
    """
    page_path = str(Path(APP).parent / "pages" / page)
    at = AppTest.from_function(_sidebar_and_page, args=(page_path,), default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def method_traces(fig: dict) -> list[dict]:
    return [t for t in fig["data"] if not t["name"].startswith("knee")]


def test_tradeoff_default_view_has_one_line_per_method_and_a_point_per_level():
    at = run_app(n="5")
    assert not at.exception
    (fig,) = figures(at)
    traces = method_traces(fig)
    assert [t["name"] for t in traces] == ["Magnitude", "Random", "Structured L1"]
    assert all(len(t["x"]) == 5 for t in traces)
    assert fig["layout"]["xaxis"]["title"]["text"] == "Parameters still needed, effective (count)"
    assert fig["layout"]["yaxis"]["title"]["text"] == "Test accuracy (%)"
    assert any(s.get("line", {}).get("dash") == "dash" for s in fig["layout"]["shapes"]), "dense line missing"


def test_sidebar_changes_model_and_methods_and_the_chart_follows():
    at = run_sidebar_app(n="4")
    at.selectbox(key="w_model").set_value("moons-mlp").run()
    at.multiselect(key="w_methods").set_value(["magnitude", "nm-2:4"]).run()
    assert not at.exception
    (fig,) = figures(at)
    assert "moons-mlp" in fig["layout"]["title"]["text"]
    traces = method_traces(fig)
    assert [t["name"] for t in traces] == [get_method("magnitude").label, get_method("nm-2:4").label]
    assert len(traces[0]["x"]) == 4 and len(traces[1]["x"]) == 1
    assert at.query_params["model"] in (["moons-mlp"], "moons-mlp")
    assert at.query_params["methods"] in (["magnitude,nm-2:4"], "magnitude,nm-2:4")


@pytest.mark.parametrize(
    "axis, expected_type",
    [("compression", "log"), ("size", "linear"), ("speedup", "linear"), ("direct-compression", "log")],
)
def test_x_axis_choice_sets_title_and_scale(axis, expected_type):
    at = run_app(n="3", methods="magnitude")
    at.selectbox(key="tradeoff_x").set_value(axis).run()
    (fig,) = figures(at)
    assert fig["layout"]["xaxis"].get("type", "linear") == expected_type
    assert (
        fig["layout"]["xaxis"]["title"]["text"]
        .lower()
        .startswith(
            {
                "compression": "compression ratio, effective",
                "direct-compression": "compression ratio, direct",
                "size": "stored size, direct",
                "speedup": "theoretical speedup, effective",
            }[axis]
        )
    )


@pytest.mark.parametrize("metric, title", [("loss", "Test loss (cross-entropy)"), ("f1", "Macro F1 (%)")])
def test_y_axis_switches_metric(metric, title):
    at = run_app(n="3", methods="magnitude", y=metric)
    assert not at.exception
    (fig,) = figures(at)
    assert fig["layout"]["yaxis"]["title"]["text"] == title


def test_bad_link_opens_with_defaults_and_a_notice():
    at = run_app(model="no-such-model", methods="magnitude,bogus", smin="abc", n="999", scope="sideways", x="nope")
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    for bad in ("no-such-model", "bogus", "abc", "999", "sideways", "nope"):
        assert bad in warnings
    assert at.selectbox(key="w_model").value == "digits-mlp"
    assert at.multiselect(key="w_methods").value == ["magnitude"]


def test_bad_sparsity_list_is_reported_and_previous_levels_kept():
    at = run_sidebar_app(n="3", methods="magnitude")
    at.radio(key="w_mode").set_value("List").run()
    at.text_input(key="w_list").input("0, 0.5, banana").run()
    assert not at.exception
    assert any("banana" in e.value for e in at.error)
    (fig,) = figures(at)
    assert len(method_traces(fig)[0]["x"]) == 3


def test_explicit_level_list_drives_the_sweep():
    at = run_app(methods="magnitude", levels="0,0.3,0.6,0.9")
    (fig,) = figures(at)
    assert len(method_traces(fig)[0]["x"]) == 4


def test_layers_page_shows_histograms_bars_mask_and_pixel_map():
    at = run_app(n="5", methods="magnitude,structured-l1")
    at.switch_page("pages/layers.py").run()
    assert not at.exception
    figs = figures(at)
    titles = [f["layout"]["title"]["text"] for f in figs]
    assert titles[0].startswith("Weight histograms") and "threshold" in titles[0]
    assert len(figs[0]["data"]) == 2 * 3  # kept + pruned for fc1..fc3
    assert [b for b in figs[1]["data"][0]["x"]] == ["fc1", "fc2", "fc3"]
    assert any(t.startswith("Mask of fc1") for t in titles)
    assert any(t.startswith("First-layer connections") for t in titles)
    at.selectbox(key="layers_method").set_value("structured-l1").run()
    at.checkbox(key="layers_log").check().run()
    assert not at.exception
    hist = figures(at)[0]
    assert hist["layout"]["yaxis"]["type"] == "log"
    assert "threshold" not in hist["layout"]["title"]["text"]  # no |w| threshold for structured


def test_size_speed_page_shrinks_structured_models():
    at = run_app(n="3", model="digits-cnn", methods="magnitude,structured-l1")
    at.switch_page("pages/size_speed.py").run()
    assert not at.exception
    figs = figures(at)
    assert len(figs) == 4
    params = figs[0]["data"][0]["y"]
    assert params[2] < params[0], "removing neurons must reduce the parameter count"
    latency = figs[1]["data"][0]
    assert latency["x"] == ["dense", "masked (zeros)", "sparse kernel (CSR)", "neurons removed"]
    assert all(v > 0 for v in latency["y"])
    (curve,) = figs[3]["data"]
    # the plotted speedup is the dense time over the CSR time shown beside it, at every sparsity
    for speedup, (dense_ms, csr_ms) in zip(curve["y"], curve["customdata"], strict=True):
        assert speedup == pytest.approx(dense_ms / csr_ms)
    assert any("CSR kernel" in m.value for m in at.markdown)
    metrics = {m.label: m.value for m in at.metric}
    assert "Parameters after removal" in metrics
    at.selectbox(key="size_method").set_value("magnitude").run()
    assert not at.exception
    params = figures(at)[0]["data"][0]["y"]
    assert params[2] == params[0], "unstructured masks remove no neuron"


def test_every_page_has_a_what_am_i_looking_at_expander():
    at = run_app(n="3", methods="magnitude")
    for page in (None, "pages/layers.py", "pages/size_speed.py"):
        if page:
            at.switch_page(page).run()
        assert any(e.label == "What am I looking at?" for e in at.expander)


def test_export_page_offers_every_file_and_their_sizes():
    at = run_app(n="3", model="digits-cnn", methods="structured-l1,magnitude")
    at.switch_page("pages/export.py").run()
    assert not at.exception
    labels = {b.label for b in at.get("download_button")}
    assert {
        "Recipe (YAML)",
        "Recipe (JSON)",
        "Pruned weights (.safetensors)",
        "Standalone script (.py)",
        "Smaller model weights (.safetensors)",
        "Smaller model (ONNX)",
    } <= labels
    (sizes,) = figures(at)
    assert sizes["data"][0]["x"][:4] == ["dense", "dense, gzip", "pruned (zeros in place)", "pruned, gzip"]
    assert "neurons removed" in sizes["data"][0]["x"]
    at.selectbox(key="export_method").set_value("magnitude").run()
    labels = {b.label for b in at.get("download_button")}
    assert "Smaller model (ONNX)" not in labels, "unstructured masks remove no neuron: nothing smaller to offer"


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.get("file_uploader")[0].set_value((name, data, "application/octet-stream"))
    return at.run()


def test_importing_a_recipe_restores_the_view_it_describes():
    from pruning_core.recipe import Recipe, dumps

    recipe = Recipe(model="moons-mlp", method="random", scope="layerwise", sparsity=0.35, exclude=("fc3",), seed=4)
    at = run_sidebar_app("export.py", n="3", methods="magnitude")
    _upload(at, "r.yaml", dumps(recipe).encode())
    assert not at.exception
    assert any("Restored moons-mlp" in s.value for s in at.success)
    assert at.selectbox(key="w_model").value == "moons-mlp"
    assert at.multiselect(key="w_methods").value[0] == "random"
    assert at.multiselect(key="w_exclude").value == ["fc3"]
    assert at.selectbox(key="export_method").value == "random"
    assert at.select_slider(key="export_sparsity").value == 0.35
    assert at.query_params["model"] in ("moons-mlp", ["moons-mlp"])


@pytest.mark.parametrize(
    "name, data, named",
    [
        ("bad.yaml", b"version: 7\nmodel: {sample: nope}\npruning: {method: magnitude, sparsity: 2}\n", "newer"),
        ("bomb.yaml", b"a: &x [1]\nb: *x\n", "aliases"),
        ("binary.json", b"\x00\xff\xfe", "UTF-8"),
    ],
)
def test_importing_a_bad_recipe_explains_and_keeps_the_current_view(name, data, named):
    at = run_sidebar_app("export.py", n="3", methods="magnitude")
    _upload(at, name, data)
    assert not at.exception
    assert any(named in e.value and "Nothing was changed" in e.value for e in at.error)
    assert at.selectbox(key="w_model").value == "digits-mlp"


def test_schedules_page_runs_every_schedule_and_plots_them():
    at = run_app(methods="magnitude")
    at.switch_page("pages/schedules.py").run()
    assert not at.exception
    assert not figures(at), "nothing is trained before Run is pressed"
    at.slider(key="sched_levels").set_value(2)
    at.slider(key="sched_epochs").set_value(1)
    at.slider(key="sched_rounds").set_value(2)
    at.button(key="FormSubmitter:schedule_settings-Run").click().run()
    assert not at.exception
    accuracy, curves, gap = figures(at)
    names = [t["name"] for t in accuracy["data"]]
    assert names == [
        "One-shot, no fine-tuning",
        "One-shot + fine-tuning",
        "Iterative prune + fine-tune",
        "Gradual (Zhu & Gupta)",
        "Lottery ticket (rewind)",
        "Lottery mask, random re-init",
    ]
    assert all(len(t["x"]) == 2 for t in accuracy["data"])
    assert accuracy["layout"]["xaxis"]["title"]["text"] == "Sparsity of prunable weights (%)"
    assert curves["layout"]["xaxis"]["title"]["text"].startswith("Training step")
    assert len(gap["data"]) == 3 * 5  # test, train and noisy accuracy for each trained schedule


def test_sensitivity_page_proposes_within_budget_and_sends_it_to_the_tradeoff_view():
    at = run_app(n="3", methods="magnitude")
    at.switch_page("pages/sensitivity.py").run()
    assert not at.exception
    sens, heat, allocation = figures(at)
    assert [t["name"].split(" ")[0] for t in sens["data"]] == ["fc1", "fc2", "fc3"]
    assert allocation["data"][0]["x"] == ["fc1", "fc2", "fc3"]
    drop = next(m for m in at.metric if m.label.startswith("Measured accuracy drop"))
    assert float(drop.value.split()[0]) <= 1.0
    at.button(key="sens_send").click().run()
    assert not at.exception
    sent = at.session_state["config"]
    assert sent.allocation_method == "magnitude" and [k for k, _ in sent.allocation] == ["fc1", "fc2", "fc3"]
    # The allocation travels in the URL; a link carrying it shows the proposal on the trade-off view.
    link = sent.to_query()["alloc"]
    trade_at = run_app(n="3", methods="magnitude", alloc=link)
    (trade,) = figures(trade_at)
    proposal = [t for t in trade["data"] if "per-layer proposal" in t["name"]]
    assert len(proposal) == 1 and len(proposal[0]["x"]) == 1


def test_export_offers_the_per_layer_proposal_as_a_recipe():
    at = run_app(n="3", methods="magnitude", alloc="magnitude|fc1:0.6,fc2:0.7,fc3:0.3")
    at.switch_page("pages/export.py").run()
    assert not at.exception
    assert "Per-layer proposal recipe (YAML)" in {b.label for b in at.get("download_button")}
    from pruning_core.choice import PruningChoice
    from pruning_core.recipe import loads
    from ui.compute import allocation_recipe

    choice = PruningChoice.per_layer("magnitude", {"fc1": 0.6, "fc2": 0.7, "fc3": 0.3})
    recipe = loads(allocation_recipe("digits-mlp", choice))
    assert recipe.scope == "per-layer" and recipe.layer_sparsities == {"fc1": 0.6, "fc2": 0.7, "fc3": 0.3}


def test_tradeoff_intervals_seeds_and_noise_warning():
    """Intervals on: every accuracy point carries its Wilson 95 % interval (checked against scipy);
    seeds on: the random method gets a band over 3 seeds; a tolerance below the validation noise
    is called out, one above it is not."""
    from scipy import stats as scipy_stats

    import sample_models

    at = run_sidebar_app(n="3", methods="magnitude,random")
    at.checkbox(key="tradeoff_ci").check().run()
    assert not at.exception
    (fig,) = figures(at)
    n_test = len(sample_models.load_sample("digits-mlp").data.y_test)
    for trace in method_traces(fig):
        error = trace["error_y"]
        assert error.get("visible", True) and len(error["array"]) == len(trace["y"])
        for y, up, down in zip(trace["y"], error["array"], error["arrayminus"]):
            correct = round(y / 100 * n_test)
            expected = scipy_stats.binomtest(correct, n_test).proportion_ci(method="wilson")
            assert y + up == pytest.approx(expected.high * 100, abs=1e-6)
            assert y - down == pytest.approx(expected.low * 100, abs=1e-6)

    at.checkbox(key="tradeoff_seeds").check().run()
    assert not at.exception
    (fig,) = figures(at)
    bands = [t for t in fig["data"] if "range over 3 seeds" in t["name"]]
    assert [t["name"] for t in bands] == ["Random: range over 3 seeds"]
    assert any("seeds 0–2" in c.value for c in at.caption)

    sample = sample_models.load_sample("digits-mlp")
    import pruning_core
    from pruning_core.stats import wilson_half_width

    dense_val = pruning_core.evaluate(sample.model, sample.data.X_val, sample.data.y_val)["accuracy"]
    noise_points = wilson_half_width(dense_val, len(sample.data.y_val)) * 100
    at.slider(key="tradeoff_tol").set_value(0.25 * int(noise_points / 0.25 - 1)).run()
    assert any("below the noise" in w.value for w in at.warning)
    at.slider(key="tradeoff_tol").set_value(0.25 * int(noise_points / 0.25 + 2)).run()
    assert not any("below the noise" in w.value for w in at.warning)
    assert not at.exception


def test_export_page_offers_a_standalone_script_for_every_method_random_matched_included():
    at = run_app(n="3", methods="random-matched")
    at.switch_page("pages/export.py").run()
    assert not at.exception
    assert not any("No standalone script" in i.value for i in at.info)
    assert [b for b in at.get("download_button") if "script" in str(b.proto.label).lower()]
