"""Which parameters get pruned, and how parameters relate to layers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class Target:
    """One prunable weight: the module that owns it and the parameter's full name."""

    layer: str  # module name, e.g. "fc1"
    param_name: str  # parameter name, e.g. "fc1.weight"
    module: nn.Module

    @property
    def weight(self) -> torch.Tensor:
        return cast(torch.Tensor, self.module.weight)

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])


def prunable_layers(model: nn.Module) -> list[str]:
    """Names of every module whose ``weight`` PruneLab prunes by default (Linear, Conv1d/2d/3d)."""
    return [name for name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES) and name]


def find_targets(model: nn.Module, exclude: Iterable[str] = ()) -> list[Target]:
    """The weights to prune, in module order; ``exclude`` names layers ("fc3") or params ("fc3.weight").

    An excluded name that is not a prunable layer raises ValueError listing the valid names, so a
    typo never silently prunes the layer the user meant to protect.
    """
    layers = prunable_layers(model)
    excluded = set()
    for item in exclude:
        name = item[: -len(".weight")] if item.endswith(".weight") else item
        if name not in layers:
            raise ValueError(f"cannot exclude {item!r}: not a prunable layer; valid layers: {', '.join(layers)}")
        excluded.add(name)
    modules = dict(model.named_modules())
    targets = [Target(n, f"{n}.weight", modules[n]) for n in layers if n not in excluded]
    if not targets:
        raise ValueError("nothing to prune: every prunable layer is excluded")
    return targets
