"""`export`: trained checkpoints → TorchScript + ONNX in a Triton model repository, each export
checked against the eager model before it is published."""

from .exporter import (
    DEFAULT_TOLERANCE,
    ExportMismatch,
    ExportResult,
    compare,
    export_model,
    onnx_bytes,
    torchscript_bytes,
    triton_config,
)
from .function import REPOSITORY, ExportFunction, write_repository

__all__ = [
    "DEFAULT_TOLERANCE",
    "REPOSITORY",
    "ExportFunction",
    "ExportMismatch",
    "ExportResult",
    "compare",
    "export_model",
    "onnx_bytes",
    "torchscript_bytes",
    "triton_config",
    "write_repository",
]


def new() -> ExportFunction:
    return ExportFunction()
