"""Model runtimes behind one small interface: TorchScript (torch.jit) and ONNX Runtime.

Only formats that cannot execute arbitrary code on load are accepted here; pickled checkpoints
never reach this module (see builders.validation).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np

FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}


class Backend(Protocol):
    format: str
    input_name: str
    output_name: str

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """float32 inputs (N, …) → float32 outputs (N, …)."""


class OnnxBackend:
    format = "onnx"

    def __init__(self, source: bytes | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        model = source if isinstance(source, bytes) else str(source)
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.input_shape = list(self.session.get_inputs()[0].shape)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]


class TorchScriptBackend:
    format = "torchscript"
    input_name = "input"
    output_name = "logits"

    def __init__(self, source: bytes | Path, threads: int = 1) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        stream = io.BytesIO(source) if isinstance(source, bytes) else str(source)
        with warnings.catch_warnings():  # TorchScript is deprecated upstream, still Triton's format
            warnings.simplefilter("ignore", FutureWarning)
            self.module = torch.jit.load(stream, map_location="cpu").eval()
        self.input_shape = None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(batch)).numpy()


def open_backend(fmt: str, source: bytes | Path, threads: int = 1) -> Backend:
    """Load `source` with the runtime for `fmt` ('onnx' or 'torchscript')."""
    if fmt == "onnx":
        return OnnxBackend(source, threads)
    if fmt == "torchscript":
        return TorchScriptBackend(source, threads)
    raise ValueError(f"unknown model format {fmt!r} (expected one of {', '.join(FORMATS)})")
