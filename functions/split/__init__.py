"""ResNet-50 split into two services at a stage boundary (see `model`), the binary tensor hop
between them (`tensor_codec`) and the emulated link it crosses (`link`)."""

from .link import Link, LinkError, LinkSettings, parse_link
from .model import VARIANTS, costs, split, untrained_resnet50, variant_name
from .service import SplitFunction
from .tensor_codec import TensorCodecError, decode, encode
from .weights import WeightsError, load_resnet50


def new() -> SplitFunction:
    return SplitFunction()


__all__ = [
    "VARIANTS",
    "Link",
    "LinkError",
    "LinkSettings",
    "SplitFunction",
    "TensorCodecError",
    "WeightsError",
    "costs",
    "decode",
    "encode",
    "load_resnet50",
    "new",
    "parse_link",
    "split",
    "untrained_resnet50",
    "variant_name",
]
