"""ResNet-50 cut in two at a stage boundary, and what each half costs.

torchvision's ResNet-50 is a stem, four stages (`layer1`..`layer4`) of bottleneck blocks, then
pooling and the classifier. Every residual connection lives inside one block, so cutting between
stages never separates a shortcut from its sum: half A ends with a whole stage and half B starts
with the next one, and `B(A(x))` computes exactly what the unsplit network does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from torch import nn
from torchvision.models import ResNet, ResNet50_Weights, resnet50

from .variants import STAGES, VARIANTS, variant_name

UNTRAINED_SEED = 0
UNTRAINED = f"untrained (deterministic random init, seed {UNTRAINED_SEED})"


def categories() -> list[str]:
    """The 1000 ImageNet class names (shipped with torchvision, no download)."""
    return list(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def untrained_resnet50() -> ResNet:
    """ResNet-50 with torchvision's own init under a fixed seed: every process builds the same
    weights, so two services started without a weights URI still compose exactly."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(UNTRAINED_SEED)
        return resnet50(weights=None).eval()
    finally:
        torch.random.set_rng_state(state)


def stage_modules(model: ResNet) -> dict[str, nn.Module]:
    """The network as its six stages, in order."""
    return {
        "stem": nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool),
        "layer1": model.layer1,
        "layer2": model.layer2,
        "layer3": model.layer3,
        "layer4": model.layer4,
        "head": nn.Sequential(model.avgpool, nn.Flatten(1), model.fc),
    }


def split(model: ResNet, variant: str) -> tuple[nn.Sequential, nn.Sequential]:
    """Halves (A, B) of `model` for `variant`; they share the model's parameters."""
    cut = STAGES.index(VARIANTS[variant_name(variant)]) + 1
    stages = list(stage_modules(model).values())
    return nn.Sequential(*stages[:cut]).eval(), nn.Sequential(*stages[cut:]).eval()


def half(model: ResNet, variant: str, which: str) -> nn.Sequential:
    """Half `a` or `b` of `model`."""
    if which not in ("a", "b"):
        raise ValueError(f"half must be 'a' or 'b', not {which!r}")
    a, b = split(model, variant)
    return a if which == "a" else b


@dataclass(frozen=True)
class HalfCost:
    flops: int
    params: int
    output_shape: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"flops": self.flops, "params": self.params, "output_shape": list(self.output_shape)}


@cache
def costs(variant: str, image_size: int = 224) -> dict[str, HalfCost]:
    """FLOPs (counted by torch's FlopCounterMode, batch 1) and parameters of each half.

    Counted on the meta device: shapes only, no weights allocated and no arithmetic done.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = resnet50(weights=None).eval()
    a, b = split(model, variant)
    x = torch.empty(1, 3, image_size, image_size, device="meta")
    out: dict[str, HalfCost] = {}
    for name, module in (("a", a), ("b", b)):
        with FlopCounterMode(display=False) as counter:
            x = module(x)
        params = sum(p.numel() for p in module.parameters())
        out[name] = HalfCost(int(counter.get_total_flops()), params, tuple(x.shape))
    return out


def top_k(logits: torch.Tensor, k: int = 5) -> list[list[dict[str, Any]]]:
    """Per image, the `k` most probable classes as {index, label, score}."""
    names = categories()
    probs = torch.softmax(logits.float(), dim=1)
    scores, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    return [
        [
            {"index": int(i), "label": names[int(i)], "score": round(float(s), 6)}
            for s, i in zip(row_s, row_i, strict=True)
        ]
        for row_s, row_i in zip(scores, indices, strict=True)
    ]
