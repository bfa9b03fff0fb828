"""ResNet-50 split into two services at a stage boundary (see `model`), the binary tensor hop
between them (`tensor_codec`) and the emulated link it crosses (`link`).

Names are imported lazily: the link and its settings are used by the CLI and the autoscaler,
which should not pay for importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Link": ".link",
    "LinkError": ".link",
    "LinkSettings": ".link",
    "parse_link": ".link",
    "VARIANTS": ".variants",
    "costs": ".model",
    "split": ".model",
    "untrained_resnet50": ".model",
    "variant_name": ".variants",
    "SplitFunction": ".service",
    "TensorCodecError": ".tensor_codec",
    "decode": ".tensor_codec",
    "encode": ".tensor_codec",
    "WeightsError": ".weights",
    "load_resnet50": ".weights",
}
__all__ = sorted([*_EXPORTS, "new"])


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(name)
    return getattr(import_module(_EXPORTS[name], __name__), name)


def new() -> Any:
    from .service import SplitFunction

    return SplitFunction()
