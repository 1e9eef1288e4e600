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

__all__ = [
    "PruningChoice",
    "PruningMethod",
    "Recipe",
    "RecipeError",
    "get_method",
    "load_recipe_text",
    "method_names",
    "schedule_curve",
    "steps_per_epoch",
    "wilson_half_width",
]
