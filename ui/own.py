"""Your own model: a model (and data) uploaded by one session, used by every explorer page.

Safe on a shared server:

- **Per session.** The loaded model lives in this session's ``st.session_state`` only: never in
  ``st.cache_resource``/``st.cache_data``, the shared ``ResultCache``, a disk cache or the URL. Its
  results are kept in a small per-session dictionary beside it (so a rerun does not recompute),
  keyed by the file's SHA-256 and the choice; another session never sees them, even for the same
  file. When the session ends its state, and with it the model and the results, is freed; nothing
  here keeps a module-level reference.
- **Bounded.** Streamlit refuses uploads above ``server.maxUploadSize``; the loaders' ``Limits``
  (sizes checked before parsing, parameters, activations, multiply-adds per evaluation) bound
  conversion and evaluation, and ``factory_imports=False``: a state dict's architecture can only
  be a sample's. Training (schedules) is refused when its multiply-adds exceed the same budget.
  Each computation (loading, and every :func:`cached` result) also runs under a wall-clock limit,
  ``PRUNELAB_UPLOAD_SECONDS`` (default 120 s; ``pruning_core.deadline``): it runs in this session's
  script thread, so the limit is this session's alone. Past it the page shows why and stops; the
  model stays loaded and nothing of the stopped computation is kept.
- **Switchable.** ``PRUNELAB_UPLOADS=0`` hides every upload widget and refuses ``model=upload``
  links (see ``ui.config.uploads_enabled``).

A refused file shows the loader's message and changes nothing: the previous model stays loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NoReturn, Protocol

import streamlit as st
import torch
from streamlit.runtime.scriptrunner_utils.exceptions import StopException

import sample_models
from pruning_core.deadline import TimeLimitExceeded, check_deadline, time_limit
from pruning_core.loaders import Limits, OwnModel, UntrustedFileError, load_own
from pruning_core.loaders.common import MB, check_size, extension, human_bytes
from ui.config import UPLOAD, upload_seconds, uploads_enabled

__all__ = ["UPLOAD", "uploads_enabled"]

LABEL = "Your model (upload)"
MODEL_TYPES = ("onnx", "safetensors", "pt")
DATA_TYPES = ("csv", "npz")
STATE_DICT_TYPES = (".safetensors", ".pt")
_MODEL = "own_model"  # session-state key of the loaded OwnModel
_FILES = "own_files"  # the uploaded files' names, for the sidebar
_RESULTS = "own_results"  # session-state key of the per-session results
_TRIED = "own_tried"  # the upload signature last tried (a refused one is not retried every rerun)
_ERROR = "own_error"
MAX_RESULTS = 48  # results kept per session; the oldest goes first
MAX_PER_KIND = {"export": 2, "size": 4}  # results holding copies of the model's bytes
EXAMPLE_BATCH = 64  # inputs made up for latency when there is no data
# What each kind of cached result is, for the message when it takes too long.
WHAT = {
    "dense": "evaluating your model",
    "sweep": "sweeping your model",
    "schedule": "training and sweeping your model",
    "allocation": "evaluating the per-layer proposal on your model",
    "figure": "computing the trade-off chart of your model",
    "layers": "pruning your model for the layer view",
    "size": "measuring your model's size and speed",
    "sensitivity": "the sensitivity scan of your model",
    "proposal": "checking the per-layer proposal on your model",
    "export": "preparing your model's export",
    "allocation_recipe": "writing your model's per-layer recipe",
}


def time_advice(instead: str = "fewer levels or methods, a smaller data file") -> str:
    """What follows the limit in a time-limit message: why there is one and what to do instead."""
    return (
        f"(this server's limit for each computation on an uploaded model): use {instead}, or the command "
        "line (`prunelab sweep --model-file ...`), which has no time limit"
    )


class Uploaded(Protocol):
    """What is read of a Streamlit ``UploadedFile`` (a test may pass any object like it)."""

    name: str
    size: int

    def getvalue(self) -> bytes: ...


def app_limits() -> Limits:
    """The loaders' limits on this server: no file above Streamlit's own upload limit, and a state
    dict's architecture only by a sample's name (never an import of code named by the user), and
    each computation within ``PRUNELAB_UPLOAD_SECONDS`` (``ui.config.upload_seconds``)."""
    upload_mb = int(st.get_option("server.maxUploadSize"))
    default = Limits()
    return replace(
        default,
        max_model_bytes=min(default.max_model_bytes, upload_mb * MB),
        max_data_bytes=min(default.max_data_bytes, upload_mb * MB),
        factory_imports=False,
        max_seconds=upload_seconds(),
    )


def load_upload(
    model_file: Uploaded,
    data_file: Uploaded | None = None,
    architecture: str | None = None,
    label_column: str | None = None,
    limits: Limits | None = None,
) -> OwnModel:
    """Load an uploaded model (and data) through the safe loaders; UntrustedFileError names the problem.

    Sizes are checked from the upload's declared size before its bytes are read; a state dict
    needs one of the sample architectures; a CSV needs its label column. Loading stops with
    ``TimeLimitExceeded`` (an UntrustedFileError) after ``limits.max_seconds``.
    """
    limits = limits or app_limits()
    with time_limit(limits.max_seconds, "loading your model", time_advice("a smaller model or data file")):
        return _load_upload(model_file, data_file, architecture, label_column, limits)


def _load_upload(
    model_file: Uploaded, data_file: Uploaded | None, architecture: str | None, label_column: str | None, limits: Limits
) -> OwnModel:
    check_size(int(model_file.size), limits.max_model_bytes, f"model file {model_file.name!r}")
    ext = extension(model_file.name)
    if ext in STATE_DICT_TYPES and architecture not in sample_models.available():
        raise UntrustedFileError(
            f"{model_file.name!r} is a state dict (weights only): choose its architecture, one of "
            f"{', '.join(sample_models.available())}; for any other architecture upload ONNX"
        )
    data = None
    if data_file is not None:
        check_size(int(data_file.size), limits.max_data_bytes, f"data file {data_file.name!r}")
        if extension(data_file.name) == ".csv" and not (label_column or "").strip():
            raise UntrustedFileError(f"{data_file.name!r} is a CSV: name its label column")
        data = data_file.getvalue()
    return load_own(
        model_file.getvalue(),
        model_filename=model_file.name,
        data=data,
        data_filename=data_file.name if data_file is not None else None,
        factory=architecture if ext in STATE_DICT_TYPES else None,
        label_column=(label_column or "").strip() or None,
        limits=limits,
    )


def current() -> OwnModel | None:
    """This session's uploaded model, or None."""
    return st.session_state.get(_MODEL)


def remember(own: OwnModel, files: str) -> None:
    """Make ``own`` this session's model (its earlier results are dropped with the earlier model)."""
    st.session_state[_MODEL] = own
    st.session_state[_FILES] = files
    st.session_state[_RESULTS] = {}


def cached(kind: str, args: tuple, compute: Callable[[OwnModel], Any]) -> Any:
    """``compute(own)`` for this session's model, kept in this session's results by ``(kind, args)``
    and the files' digests: a rerun reads it back; no other session ever sees it.

    ``compute`` runs under the server's time limit (:func:`app_limits`). Past it, the page shows
    why and stops (``st.stop``): the model stays loaded and nothing is kept. A result finished
    after the deadline is dropped too (a step that caught the limit's exception may have left it
    incomplete)."""
    own = current()
    if own is None:
        raise LookupError("no model was uploaded in this session: upload one in the sidebar")
    key = _key(own, kind, args)
    results: dict = st.session_state.setdefault(_RESULTS, {})
    if key in results:
        return results[key]
    try:
        with time_limit(app_limits().max_seconds, WHAT.get(kind, "computing on your model"), time_advice()):
            value = compute(own)
            check_deadline()
    except TimeLimitExceeded as exc:
        kept = "Your model is still loaded; nothing of this computation was kept."
        st.error(f"Stopped: {exc}. {kept}", icon=":material/timer:")
        _end_run()
    same_kind = [k for k in results if k[0] == kind]
    for old in same_kind[: max(0, len(same_kind) - MAX_PER_KIND.get(kind, MAX_RESULTS) + 1)]:
        results.pop(old)  # files as big as the model: only the latest few
    while len(results) >= MAX_RESULTS:
        results.pop(next(iter(results)))
    results[key] = value
    return value


def _end_run() -> NoReturn:
    """End this script run quietly, as ``st.stop()`` does, but let the page's ``finally`` blocks
    still clear what they drew (a progress bar): after ``st.stop()`` the runner drops everything the
    script sends, so a half-full progress bar would stay above the message."""
    raise StopException


def peek(kind: str, args: tuple) -> Any:
    """A result :func:`cached` holds for this session's model, or None (nothing is computed)."""
    own = current()
    return None if own is None else st.session_state.get(_RESULTS, {}).get(_key(own, kind, args))


def _key(own: OwnModel, kind: str, args: tuple) -> tuple:
    data_sha = own.data.sha256 if own.data is not None else None
    return (kind, own.loaded.sha256, data_sha, own.label_column, args)


def example_input(own: OwnModel) -> torch.Tensor:
    """Inputs to time and export the model with: the test split, or without data a fixed batch of
    made-up inputs of the model's declared shape (its own generator: no global RNG is touched)."""
    if own.split is not None:
        return own.split.X_test
    if own.loaded.input_shape is None:
        raise ValueError(
            "the model file does not declare its input shape and no data was given: upload data "
            "to measure size and speed"
        )
    generator = torch.Generator().manual_seed(0)
    return torch.randn((EXAMPLE_BATCH, *own.loaded.input_shape), generator=generator)


# --- the sidebar --------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadForm:
    """What the sidebar's upload widgets hold on this run."""

    model_file: Any
    data_file: Any
    architecture: str | None
    label_column: str | None

    def signature(self) -> tuple:
        def of(f: Any) -> tuple | None:
            return None if f is None else (getattr(f, "file_id", None), f.name, f.size)

        return (of(self.model_file), of(self.data_file), self.architecture, self.label_column)


def _form(sb, limits: Limits) -> UploadForm:
    model_mb = max(1, limits.max_model_bytes // MB)
    data_mb = max(1, limits.max_data_bytes // MB)
    model_file = sb.file_uploader(
        "Model file",
        type=list(MODEL_TYPES),
        key="own_model_file",
        max_upload_size=model_mb,
        help=f"ONNX (from PyTorch, tf2onnx, skl2onnx), or a state dict (.safetensors, or .pt read with "
        f"weights only) of a sample architecture. At most {human_bytes(limits.max_model_bytes)} and "
        f"{limits.max_parameters:,} parameters. Whole pickled models, TorchScript and .pt2 are refused: "
        "loading them can run code. The file stays in this session only.",
    )
    architecture = None
    if model_file is not None and extension(model_file.name) in STATE_DICT_TYPES:
        architecture = sb.selectbox(
            "Architecture of the weights",
            sample_models.available(),
            key="own_architecture",
            help="A state dict holds weights only: which sample model's layers they fill.",
        )
    data_file = sb.file_uploader(
        "Data (optional)",
        type=list(DATA_TYPES),
        key="own_data_file",
        max_upload_size=data_mb,
        help=f"CSV with a label column, or NPZ with X_train, y_train, X_test, y_test (or X, y, split "
        f"stratified with seed 0). At most {human_bytes(limits.max_data_bytes)} and {limits.max_rows:,} rows. "
        "Without data, size, speed and layers still work; accuracy needs labels.",
    )
    label_column = None
    if data_file is not None and extension(data_file.name) == ".csv":
        label_column = sb.text_input("Label column (CSV)", value="label", key="own_label_column")
    return UploadForm(model_file, data_file, architecture, label_column)


def _try_load(form: UploadForm, limits: Limits) -> None:
    """Load the form's files once per distinct upload; a refusal is kept to show, the model kept."""
    signature = form.signature()
    # A file stopped by the time limit is tried again when the limit changes.
    if form.model_file is None or st.session_state.get(_TRIED) in (signature, (signature, limits.max_seconds)):
        return
    st.session_state[_TRIED] = signature
    st.session_state.pop(_ERROR, None)
    try:
        own = load_upload(form.model_file, form.data_file, form.architecture, form.label_column, limits)
    except UntrustedFileError as exc:
        if isinstance(exc, TimeLimitExceeded):
            st.session_state[_TRIED] = (signature, limits.max_seconds)
        kept = "the previous model is still in use" if current() is not None else "no model is loaded"
        st.session_state[_ERROR] = f"Refused: {exc}. Nothing was changed: {kept}."
        return
    files = form.model_file.name + (f" + {form.data_file.name}" if form.data_file is not None else "")
    remember(own, files)


def upload_ui(sb) -> OwnModel | None:
    """The sidebar's upload widgets (model, architecture, data, label column); returns the model."""
    limits = app_limits()
    form = _form(sb, limits)
    _try_load(form, limits)
    if _ERROR in st.session_state:
        sb.error(st.session_state[_ERROR])
    own = current()
    if own is None:
        sb.info("Upload your model file to explore it. A link to an uploaded model keeps its settings, not the file.")
        return None
    sb.caption(f"**{own.name}** ({st.session_state.get(_FILES, '')}): {own.loaded.description}.")
    if own.data is not None:
        sb.caption(f"Data: {own.data.format.upper()} {own.data.sha256[:8]}, {describe_split(own)}.")
    else:
        sb.caption("No data: size, speed and layers work; accuracy needs labelled data.")
    return own


def describe_split(own: OwnModel) -> str:
    split = own.split
    if split is None:
        return "no data"
    n_val = len(split.y_val) if getattr(split, "y_val", None) is not None else 0
    return f"{len(split.y_train)} train / {n_val} validation / {len(split.y_test)} test samples"


# --- what pages say when the upload cannot serve them ---------------------------------------------------


def ask_for_model() -> None:
    st.info(
        "This view is for **your model**: upload its file in the sidebar (and data for accuracy). "
        "A link keeps the settings but never the file, so it asks for the file again.",
        icon="📤",
    )


def require_model() -> OwnModel:
    """This session's model, or a message asking for the file and ``st.stop()``."""
    own = current()
    if own is None:
        ask_for_model()
        st.stop()
    return own


def require_chosen(model: str) -> None:
    """When the sidebar chose the upload and no file came yet, ask for it and stop (the router does
    too; a page run on its own checks again)."""
    if model == UPLOAD:
        require_model()


def require_data(model: str, what: str) -> None:
    """On the uploaded model without data, say why ``what`` needs it and stop."""
    if model != UPLOAD:
        return
    own = require_model()
    if own.split is None:
        st.info(
            f"{what} needs labelled data: {own.no_data_reason}. Upload data in the sidebar; "
            "**Layers** and **Size & speed** work without it (with data-free methods).",
            icon="ℹ️",
        )
        st.stop()


def require_method_data(model: str, method: str, needs_data: bool) -> None:
    """On the uploaded model without data, a method that reads data cannot run: say so and stop."""
    own = current() if model == UPLOAD else None
    if own is not None and own.split is None and needs_data:
        st.info(
            f"{method} scores weights on data, and no data was uploaded: pick a data-free method "
            "(magnitude, random, structured L1) or upload data in the sidebar.",
            icon="ℹ️",
        )
        st.stop()


def training_cost_problem(own: OwnModel, epochs: int, rounds: int, levels: int, curves: int) -> str | None:
    """Why fine-tuning this model this much is refused on a shared server, or None when it fits:
    three multiply-adds per weight use (forward and backward) per training sample, every epoch,
    round, level and schedule, against the same budget that bounds one evaluation."""
    macs = own.loaded.macs_per_sample
    split = own.split
    if macs is None or split is None:
        return None
    budget = app_limits().max_eval_macs
    cost = 3 * macs * len(split.y_train) * epochs * rounds * levels * curves
    if cost <= budget:
        return None
    return (
        f"this training would cost about {cost:.2g} multiply-adds ({len(split.y_train):,} samples x {macs:,} per "
        f"sample x 3 x {epochs} epochs x {rounds} rounds x {levels} levels x {curves} schedules); a shared "
        f"server allows {budget:.2g}. Choose fewer levels, epochs or schedules, or use the command line"
    )
