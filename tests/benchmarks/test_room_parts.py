"""The room simulator's parts that need no server: its configurations, the widget values it reports
back, its server measurements and its report."""

from __future__ import annotations

import os

import pytest
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.NumberInput_pb2 import NumberInput
from streamlit.proto.Slider_pb2 import Slider

from benchmarks.room import (
    SAMPLE_MODELS,
    PageRun,
    ProcessTree,
    ScenarioResult,
    ServerLog,
    distinct_queries,
    percentile,
    report,
    widget_state,
)
from ui.config import from_query


def _query_dict(query: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in query.split("&"))


def test_distinct_configurations_are_distinct_valid_links_that_cover_every_model_and_scope():
    queries = distinct_queries(30)
    assert queries == distinct_queries(30), "the same list every time"
    assert len(set(queries)) == 30
    configs = []
    for query in queries:
        config, notices = from_query(_query_dict(query))
        assert notices == [], (query, notices)
        configs.append(config)
    assert {c.model for c in configs[:5]} == set(SAMPLE_MODELS)
    assert len({(c.model, c.scope) for c in configs[:15]}) == 15


def test_a_new_widget_reports_its_default_and_a_mounted_one_keeps_its_value_unless_the_server_sets_it():
    element = Element()
    element.selectbox.id = "model"
    element.selectbox.options.extend(["a", "b", "c"])
    element.selectbox.default = 1
    state = widget_state(element, None)
    assert state.id == "model" and state.string_value == "b"

    element.selectbox.default = 2  # a rerun with a new default does not move a mounted widget
    assert widget_state(element, state).string_value == "b"
    element.selectbox.set_value, element.selectbox.raw_value = True, "c"
    assert widget_state(element, state).string_value == "c"


def test_each_widget_kind_reports_in_the_field_the_server_reads():
    multi = Element()
    multi.multiselect.id, multi.multiselect.default[:] = "m", [0, 2]
    multi.multiselect.options.extend(["x", "y", "z"])
    assert list(widget_state(multi, None).string_array_value.data) == ["x", "z"]

    slider = Element()
    slider.slider.id, slider.slider.default[:] = "s", [0.0, 0.95]
    assert list(widget_state(slider, None).double_array_value.data) == [0.0, 0.95]
    slider.slider.type = Slider.SELECT_SLIDER
    slider.slider.options.extend(["0%", "50%", "95%"])
    slider.slider.default[:] = [1]
    assert list(widget_state(slider, None).string_array_value.data) == ["50%"]

    number = Element()
    number.number_input.id, number.number_input.default, number.number_input.data_type = "n", 3, NumberInput.INT
    assert widget_state(number, None).WhichOneof("value") == "int_value"

    markdown = Element()
    markdown.markdown.body = "text"
    assert widget_state(markdown, None) is None


def test_process_tree_and_server_log(tmp_path):
    tree = ProcessTree(os.getpid())
    assert tree.cpu_s() > 0 and tree.rss_bytes() > 10 * 2**20
    log_path = tmp_path / "stderr"
    log_path.write_text("prunelab: computed sweep key=a in 0.1 s\n")
    log = ServerLog(log_path)
    offset = log.mark()
    with log_path.open("a") as f:
        f.write(
            "noise prunelab: computed\nprunelab: computed sweep key=b in 0.2 s\nprunelab: computed figure x\n"
            "prunelab: computed schedule sweep key=c in 1 s\n"
        )
    # Shared results only (sweeps, schedule sweeps), at the start of a line; figures are per process.
    assert log.count_since(0) == 3 and log.count_since(offset) == 2
    assert ServerLog(None).count_since(0) is None


@pytest.mark.parametrize(("p", "expected"), [(50, 5), (95, 10), (100, 10), (0, 1)])
def test_percentile_is_nearest_rank(p, expected):
    assert percentile(list(range(10, 0, -1)), p) == expected


def test_report_counts_each_distinct_problem_once_with_its_count():
    good = PageRun(page="", query="", first_chart_s=1.0, finished_s=2.0, status="finished")
    bad = [
        PageRun(page="", query="", finished_s=1.5, status="finished", exceptions=["NameError: boom"]) for _ in range(3)
    ]
    text = report([ScenarioResult("cold-default", 4, {"landing": [good, *bad]}, wall_s=3.0, computed=0)])
    assert "3 x exception: NameError: boom" in text
    assert "does not log 'prunelab: computed" in text
