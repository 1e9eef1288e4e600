"""Decision trees: cost-complexity pruning of a scikit-learn tree, train vs test against alpha."""

import streamlit as st

from ui import lessons, state, trees

state.require_router()
st.title("Decision trees are pruned too")
with st.expander("What am I looking at?"):
    st.markdown(
        """
A **decision tree** asks yes/no questions about the features (here, 30 measurements of breast
tissue) until it reaches a **leaf** that names a class. Grown until every leaf is pure, it
memorises the training data, mislabelled points included. **Cost-complexity pruning** removes the
branches whose gain per leaf is below **ccp_alpha**: the larger alpha, the smaller the tree.
*Label noise* flips a seeded fraction of the training labels, to show what memorising costs.
Cross-validation (5 folds of the training data) picks alpha; the test split only reports.
"""
    )

c1, c2 = st.columns(2)
noise = c1.select_slider("Training labels flipped (noise)", trees.NOISE_LEVELS, value=0.1, key="dt_noise",
                         format_func=lambda f: f"{f:.0%}")  # fmt: skip
seed = int(c2.number_input("Seed (which labels flip)", 0, 2**31 - 1, 0, key="dt_seed"))
slot = st.empty()
slot.progress(0.0, text="Growing and pruning the trees...")
path = trees.pruning_path(noise, seed)
slot.empty()
choice = trees.cv_choice(path)
alphas = [float(a) for a in path.ccp_alpha]
if "dt_alpha" not in st.session_state or st.session_state.dt_alpha not in alphas:
    st.session_state.dt_alpha = min(alphas, key=lambda a: abs(a - choice["ccp_alpha"]))
alpha = st.select_slider("ccp_alpha (larger prunes more)", alphas, key="dt_alpha", format_func=lambda a: f"{a:.4f}")
tree = trees.pruned_tree(noise, seed, alpha)

m1, m2, m3 = st.columns(3)
m1.metric("Leaves", tree["leaves"])
m2.metric("Train accuracy", f"{tree['train_accuracy']:.1%}")
m3.metric("Test accuracy", f"{tree['test_accuracy']:.1%}")
st.caption(
    f"Cross-validation picks ccp_alpha = {choice['ccp_alpha']:.4f} ({int(choice['leaves'])} leaves, test "
    f"{choice['test_accuracy']:.1%}); {tree['flipped']} training labels are flipped."
)
data = {"path": path, "choice": choice, "flipped": tree["flipped"]}
lesson = next(item for item in lessons.load_lessons() if item.view.kind == "trees")
fig = lessons.trees_figure(lesson, data)
fig.add_vline(
    x=alpha, line=dict(color="#d62728", dash="dash"), annotation_text="chosen here", annotation_position="top left"
)
st.plotly_chart(fig, key="dt_path")
st.plotly_chart(trees.tree_figure(tree["layout"], f"The tree at ccp_alpha = {alpha:.4f}"), key="dt_tree")
with st.expander("The tree as text rules"):
    st.code(tree["text"], language=None)
