"""PruneLab: the router and the shared sidebar. Pages live in pages/; the engine in pruning_core/."""

import streamlit as st

from ui import own, state, visibility

st.set_page_config(page_title="PruneLab", page_icon="✂️", layout="wide")

PAGES = [
    st.Page("pages/tradeoff.py", title="Trade-off", icon=":material/show_chart:", url_path="tradeoff", default=True),
    st.Page("pages/layers.py", title="Layers", icon=":material/layers:", url_path="layers"),
    st.Page("pages/size_speed.py", title="Size & speed", icon=":material/speed:", url_path="size-speed"),
    st.Page(
        "pages/schedules.py", title="Fine-tuning & schedules", icon=":material/model_training:", url_path="schedules"
    ),
    st.Page("pages/sensitivity.py", title="Sensitivity", icon=":material/tune:", url_path="sensitivity"),
    st.Page("pages/export.py", title="Export", icon=":material/download:", url_path="export"),
    st.Page("pages/studies.py", title="Studies", icon=":material/stacked_line_chart:", url_path="studies"),
    st.Page("pages/workshop.py", title="Workshop", icon=":material/school:", url_path="workshop"),
    st.Page(
        "pages/decision_trees.py", title="Decision trees", icon=":material/account_tree:", url_path="decision-trees"
    ),
    st.Page("pages/teacher.py", title="Teacher", icon=":material/co_present:", url_path="teacher"),
]

page = st.navigation(PAGES)
loading = st.empty()  # something in the main area at once: a cold server imports and computes for seconds
loading.caption("Loading PruneLab...")
state.init()
visibility.sidebar_hook()
st.session_state.explorer = state.config() if visibility.current().sidebar_hidden else state.sidebar()
st.sidebar.caption("Every setting is in the URL: copy it to share this exact view.")
# The explorer pages work on an uploaded model; these use the samples whatever the sidebar says.
SAMPLE_ONLY = {
    "workshop": "The workshop lessons use",
    "teacher": "Teacher links use",
    "decision-trees": "This page uses",
}
on_upload = st.session_state.explorer.model == own.UPLOAD
# The sidebar is drawn and a page shows its title at once. Emptied before the page runs: after a
# page's st.stop() nothing more reaches the browser, so a later empty() would leave it on the page.
loading.empty()
if on_upload and page.url_path in SAMPLE_ONLY:
    st.info(f"{SAMPLE_ONLY[page.url_path]} the sample models, not your uploaded model.", icon="ℹ️")
if on_upload and page.url_path not in SAMPLE_ONLY and page.url_path != "studies" and own.current() is None:
    own.ask_for_model()  # a link never carries the file: ask for it again
else:
    page.run()
