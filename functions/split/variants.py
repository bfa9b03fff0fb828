"""The split variants: where each cuts ResNet-50 (no torch needed to name or check them)."""

from __future__ import annotations

# Where each variant cuts: the last stage that belongs to half A.
VARIANTS: dict[str, str] = {"a-light": "layer1", "balanced": "layer2", "a-heavy": "layer3"}
ALIASES = {"light": "a-light", "heavy": "a-heavy", "a_light": "a-light", "a_heavy": "a-heavy"}
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4", "head")
# Channels of the tensor that crosses each cut (what B must be sent).
CUT_CHANNELS = {"layer1": 256, "layer2": 512, "layer3": 1024}


def variant_name(name: str) -> str:
    """The canonical variant name; ValueError listing the known ones otherwise."""
    key = ALIASES.get(name, name)
    if key not in VARIANTS:
        raise ValueError(f"unknown split variant {name!r} (known: {', '.join(VARIANTS)})")
    return key
