"""A Triton-layout model repository on disk (`<name>/config.pbtxt`, `<name>/<version>/…`) and
the served model loaded from it."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backends import FORMATS, Backend, open_backend

log = logging.getLogger("knflow.predict")

MAX_BATCH = 256


class ModelError(RuntimeError):
    """The model repository is missing, incomplete or its model does not load."""


@dataclass
class LoadedModel:
    """One served model version: its runtime, metadata and input geometry."""

    name: str
    version: str
    backend: Backend
    meta: dict[str, Any]

    @property
    def input_shape(self) -> list[int]:
        return list(self.meta.get("input", {}).get("shape", [-1, 1, 28, 28]))[1:]

    @property
    def labels(self) -> list[str]:
        return list(self.meta.get("labels") or [])

    def metadata(self) -> dict[str, Any]:
        """The V2 model metadata response."""
        platform = {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch"}
        out = self.meta.get("output", {})
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": platform[self.backend.format],
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, *self.input_shape]}],
            "outputs": [
                {"name": "logits", "datatype": "FP32", "shape": out.get("shape", [-1, 10])},
                {"name": "probabilities", "datatype": "FP32", "shape": out.get("shape", [-1, 10])},
                {"name": "label", "datatype": "INT64", "shape": [-1]},
            ],
        }

    def prepare(self, array: np.ndarray) -> np.ndarray:
        """Accept (N, C, H, W), (N, H, W) or (N, H·W); uint8 pixels are scaled to [0, 1]."""
        shape = self.input_shape
        if array.dtype == np.uint8:
            array = array.astype(np.float32) / 255.0
        array = np.ascontiguousarray(array, dtype=np.float32)
        if array.ndim < 2:
            raise ValueError(
                f"input needs a batch dimension: expected [N, {', '.join(map(str, shape))}]"
            )
        n = array.shape[0]
        if int(np.prod(array.shape[1:])) != int(np.prod(shape)):
            raise ValueError(
                f"input shape {list(array.shape)} does not fit [N, {', '.join(map(str, shape))}]"
            )
        if not 1 <= n <= MAX_BATCH:
            raise ValueError(f"batch size must be 1..{MAX_BATCH}, got {n}")
        if not np.isfinite(array).all():
            raise ValueError("input contains NaN or infinity")
        return array.reshape(n, *shape)

    def predict(self, array: np.ndarray) -> dict[str, np.ndarray]:
        logits = self.backend.infer(self.prepare(array))
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return {
            "logits": logits.astype(np.float32),
            "probabilities": (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32),
            "label": logits.argmax(axis=1).astype(np.int64),
        }


def find_model(root: Path, name: str | None = None) -> tuple[str, Path]:
    """The model directory to serve: `name` if given, else the repository's only model."""
    if not root.is_dir():
        raise ModelError(f"model repository {root} does not exist")
    models = sorted(p.name for p in root.iterdir() if (p / "config.pbtxt").is_file())
    if name:
        if name not in models:
            raise ModelError(
                f"model {name!r} not in repository {root} (has: {', '.join(models) or 'none'})"
            )
        return name, root / name
    if len(models) != 1:
        raise ModelError(f"repository {root} holds {len(models)} models; set config model_name")
    return models[0], root / models[0]


def load_model(
    root: Path, name: str | None = None, runtime: str | None = None, threads: int = 1
) -> LoadedModel:
    """Load the newest version of a model, with `runtime` ('onnx'/'torchscript') or its primary."""
    name, model_dir = find_model(root, name)
    versions = sorted((int(p.name) for p in model_dir.iterdir() if p.name.isdigit()), reverse=True)
    if not versions:
        raise ModelError(f"model {name!r} has no numbered version directory")
    version_dir = model_dir / str(versions[0])
    meta_path = version_dir / "model.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    present = [fmt for fmt, file in FORMATS.items() if (version_dir / file).is_file()]
    # `runtime` is a preference: a repository with only the other format still serves.
    chosen = next((f for f in (runtime, meta.get("primary"), *present) if f in present), None)
    if chosen is None:
        raise ModelError(f"{name} v{versions[0]} has no model.onnx or model.pt")
    started = time.monotonic()
    try:
        backend = open_backend(chosen, version_dir / FORMATS[chosen], threads)
    except Exception as exc:  # each runtime raises its own error types
        raise ModelError(f"{name} v{versions[0]}: {chosen} model does not load: {exc}") from None
    log.info("loaded %s v%d (%s) in %.2fs", name, versions[0], chosen, time.monotonic() - started)
    return LoadedModel(name, str(versions[0]), backend, meta)


def fetch_repository(store, uri: str, cache: Path) -> Path:
    """Copy a repository prefix (`s3://bucket/prefix`) from the store into a local cache dir."""
    from storage import parse_uri

    bucket, prefix = parse_uri(uri)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    target = cache / hashlib.sha256(uri.encode()).hexdigest()[:16]
    count = 0
    for info in store.iter_objects(bucket, prefix):
        path = target / info.key[len(prefix) :]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.get(bucket, info.key))
        count += 1
    if not count:
        raise ModelError(f"nothing stored under {uri}")
    return target
