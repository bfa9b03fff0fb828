"""Export a trained model to TorchScript and ONNX as a Triton model repository, and prove the
exported files compute what the eager model computes before anyone serves them."""

from __future__ import annotations

import io
import json
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from functions.predict.backends import FORMATS, open_backend
from functions.train.model import sample_input

log = logging.getLogger("knflow.export")

DEFAULT_TOLERANCE = 1e-3
MAX_BATCH = 256


class ExportMismatch(ValueError):
    """An exported model's outputs differ from the eager model's beyond the tolerance."""


@dataclass
class ExportResult:
    """Repository files keyed by path relative to the repository root, and the checks made."""

    name: str
    version: int
    files: dict[str, bytes] = field(default_factory=dict)
    max_abs_diff: dict[str, float] = field(default_factory=dict)


def torchscript_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated upstream, still Triton's
        traced = torch.jit.trace(model.eval(), example, check_trace=False)
        torch.jit.save(traced, buffer)
    return buffer.getvalue()


def onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """ONNX via the dynamo exporter (onnxscript), batch dimension dynamic."""
    buffer = io.BytesIO()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model.eval(),
            (example,),
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes={"x": {0: batch}},
            dynamo=True,
            verbose=False,
        )
        program.save(buffer)
    return buffer.getvalue()


_EXPORTERS = {"onnx": onnx_bytes, "torchscript": torchscript_bytes}


def compare(
    model: nn.Module, fmt: str, data: bytes, inputs: list[torch.Tensor], tolerance: float
) -> float:
    """Max |exported - eager| over `inputs`, scaled by the outputs' magnitude when above 1.

    Float error grows with the size of the logits (an undertrained model can have large ones),
    so the check is relative for large outputs and absolute for outputs within ±1;
    ExportMismatch when above `tolerance`.
    """
    backend = open_backend(fmt, data)
    worst = 0.0
    with torch.inference_mode():
        for x in inputs:
            expected = model(x).numpy()
            got = backend.infer(x.numpy())
            if got.shape != expected.shape:
                raise ExportMismatch(f"{fmt}: output shape {got.shape} != eager {expected.shape}")
            scale = max(1.0, float(np.max(np.abs(expected))))
            worst = max(worst, float(np.max(np.abs(got - expected))) / scale)
    if not worst <= tolerance:  # NaN fails too
        raise ExportMismatch(
            f"{fmt} export differs from the eager model by {worst:.3g} relative to its output "
            f"scale (tolerance {tolerance:g})"
        )
    return worst


def export_model(
    model: nn.Module,
    recipe: dict[str, Any],
    name: str,
    version: int,
    formats: list[str] | tuple[str, ...] = ("torchscript", "onnx"),
    tolerance: float = DEFAULT_TOLERANCE,
    primary: str = "onnx",
    extra: dict[str, Any] | None = None,
) -> ExportResult:
    """Export to each format, check each against eager on batches of 1 and 7, lay out files."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be among {', '.join(FORMATS)}, got {list(formats)}")
    model = model.eval()
    example = sample_input(2, recipe)
    checks = [sample_input(1, recipe, seed=1), sample_input(7, recipe, seed=2)]
    result = ExportResult(name, version)
    for fmt in formats:
        data = _EXPORTERS[fmt](model, example)
        result.max_abs_diff[fmt] = compare(model, fmt, data, checks, tolerance)
        log.info(
            "%s: %s is %d bytes, max |Δ| vs eager %.2e",
            name,
            fmt,
            len(data),
            result.max_abs_diff[fmt],
        )
        result.files[f"{name}/{version}/{FORMATS[fmt]}"] = data
    primary = primary if primary in formats else formats[0]
    result.files[f"{name}/config.pbtxt"] = triton_config(name, recipe, primary).encode()
    meta = {
        "name": name,
        "version": version,
        "formats": list(formats),
        "primary": primary,
        "input": {"name": "input", "datatype": "FP32", "shape": [-1, *recipe["input_shape"]]},
        "output": {"name": "logits", "datatype": "FP32", "shape": [-1, recipe["num_classes"]]},
        "labels": recipe["labels"],
        "recipe": recipe,
        "max_abs_diff": result.max_abs_diff,
        **(extra or {}),
    }
    result.files[f"{name}/{version}/model.json"] = json.dumps(meta, indent=2).encode()
    return result


def triton_config(name: str, recipe: dict[str, Any], fmt: str) -> str:
    """config.pbtxt for Triton's onnxruntime/libtorch backends (dynamic batching on)."""
    platform = {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch"}[fmt]
    in_name, out_name = ("input", "logits") if fmt == "onnx" else ("INPUT__0", "OUTPUT__0")
    dims = ", ".join(str(d) for d in recipe["input_shape"])
    return (
        f'name: "{name}"\n'
        f'platform: "{platform}"\n'
        f'default_model_filename: "{FORMATS[fmt]}"\n'
        f"max_batch_size: {MAX_BATCH}\n"
        f'input [\n  {{ name: "{in_name}", data_type: TYPE_FP32, dims: [ {dims} ] }}\n]\n'
        f'output [\n  {{ name: "{out_name}", data_type: TYPE_FP32, '
        f"dims: [ {recipe['num_classes']} ] }}\n]\n"
        "dynamic_batching { }\n"
        "version_policy: { latest: { num_versions: 1 } }\n"
    )
