"""The digits classifier: torchvision's ResNet-18, adapted to 1x28x28 inputs.

The architecture is described by a small JSON-able *recipe* saved next to every checkpoint, so a
checkpoint (safetensors: tensors only, nothing executable) can be rebuilt anywhere without pickles.
"""

from __future__ import annotations

from typing import Any

import torch
import torchvision
from torch import nn

INPUT_SHAPE = (1, 28, 28)

# 3x3 stride-2 stem + max-pool keeps a CPU epoch on digits to seconds; stride 1 without the pool
# (the usual small-image variant) is available through the recipe when time is no issue.
DEFAULT_RECIPE: dict[str, Any] = {
    "arch": "resnet18",
    "in_channels": 1,
    "num_classes": 10,
    "stem_kernel": 3,
    "stem_stride": 2,
    "maxpool": True,
    "input_shape": list(INPUT_SHAPE),
    "input_range": [0.0, 1.0],
    "labels": [str(i) for i in range(10)],
}

_ARCHS = {"resnet18": torchvision.models.resnet18, "resnet34": torchvision.models.resnet34}


def make_recipe(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The default recipe with `overrides` applied and checked (ValueError says which key)."""
    recipe = {**DEFAULT_RECIPE, **(overrides or {})}
    if recipe["arch"] not in _ARCHS:
        raise ValueError(f"recipe.arch must be one of {sorted(_ARCHS)}, not {recipe['arch']!r}")
    for key in ("in_channels", "num_classes", "stem_kernel", "stem_stride"):
        if not isinstance(recipe[key], int) or recipe[key] < 1:
            raise ValueError(f"recipe.{key} must be a positive integer, not {recipe[key]!r}")
    if len(recipe["labels"]) != recipe["num_classes"]:
        recipe["labels"] = [str(i) for i in range(recipe["num_classes"])]
    return recipe


def build_model(recipe: dict[str, Any] | None = None) -> nn.Module:
    """An untrained network for `recipe` (weights=None: nothing is downloaded)."""
    recipe = make_recipe(recipe)
    model = _ARCHS[recipe["arch"]](weights=None, num_classes=recipe["num_classes"])
    k = recipe["stem_kernel"]
    model.conv1 = nn.Conv2d(
        recipe["in_channels"], 64, k, stride=recipe["stem_stride"], padding=k // 2, bias=False
    )
    if not recipe["maxpool"]:
        model.maxpool = nn.Identity()
    return model


def sample_input(batch: int = 2, recipe: dict[str, Any] | None = None, seed: int = 0):
    """Deterministic inputs in the model's input range, for export checks and smoke tests."""
    shape = tuple(make_recipe(recipe)["input_shape"])
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((batch, *shape), generator=generator)
