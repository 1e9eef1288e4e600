"""What the pages need from the engine, in one place: pages import only ``ui``.

The pages draw; the engine (``pruning_core``, ``sample_models``) is reached through ``ui.compute``
for results and through these names for the registry and small pure helpers.
"""

from __future__ import annotations

from pruning_core.choice import PruningChoice
from pruning_core.finetune import steps_per_epoch
from pruning_core.methods import PruningMethod, get_method, method_names
from pruning_core.recipe import Recipe, RecipeError
from pruning_core.recipe import loads as load_recipe_text
from pruning_core.schedules import schedule_curve
from pruning_core.stats import wilson_half_width
from pruning_core.study_stats import MAX_RESULTS_BYTES, knees, read_results_bytes, summarise

__all__ = [
    "MAX_RESULTS_BYTES",
    "PruningChoice",
    "PruningMethod",
    "Recipe",
    "RecipeError",
    "get_method",
    "knees",
    "load_recipe_text",
    "method_names",
    "read_results_bytes",
    "schedule_curve",
    "steps_per_epoch",
    "summarise",
    "wilson_half_width",
]
