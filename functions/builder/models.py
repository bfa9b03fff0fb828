"""What the builder deploys: a Triton repository assembled from an export or an upload."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from builders.validation import RefusedModel, check_model
from functions.predict.backends import FORMATS

MODEL_SUFFIXES = (
    ".onnx",
    ".pt",
    ".pth",
    ".pts",
    ".safetensors",
    ".pkl",
    ".pickle",
    ".bin",
    ".ckpt",
    ".joblib",
)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass
class ModelRepo:
    """Repository files (paths relative to the repository root) for one model version."""

    name: str
    version: int
    files: dict[str, bytes] = field(default_factory=dict)
    origin: str = ""

    def validate(self, limit: int) -> list[str]:
        """Check every model file (RefusedModel on the first bad one); the formats found."""
        formats = []
        for path, data in self.files.items():
            if PurePosixPath(path).name in FORMATS.values():
                formats.append(check_model(data, f"{self.name}/{path}", limit).format)
        if not formats:
            raise RefusedModel(f"{self.origin or self.name}: no model.onnx or model.pt to serve")
        return formats


def is_model_upload(key: str) -> bool:
    """Uploads the builder reacts to (a repository's config.pbtxt or labels are not models)."""
    return key.lower().endswith(MODEL_SUFFIXES)


def model_name(key: str) -> str:
    """`digits/model.onnx` → digits; `digits.onnx` → digits."""
    path = PurePosixPath(key)
    name = path.parts[0] if len(path.parts) > 1 else path.stem
    if not NAME.match(name):
        raise RefusedModel(f"{key}: model name {name!r} must be letters, digits, '-', '_' or '.'")
    return name


def repo_from_upload(key: str, raw: bytes, origin: str, limit: int) -> ModelRepo:
    """A one-version repository for an uploaded file; safetensors are exported first."""
    from functions.export.exporter import export_model, triton_config
    from functions.train.checkpoint import load_checkpoint
    from functions.train.model import make_recipe

    name = model_name(key)
    kind = check_model(raw, key, limit).format
    if kind == "safetensors":
        try:
            model, recipe = load_checkpoint(raw)
        except ValueError as exc:
            raise RefusedModel(f"{key}: {exc}") from None
        result = export_model(model, recipe, name, 1, extra={"origin": origin})
        return ModelRepo(name, 1, result.files, origin)
    recipe = make_recipe()
    meta = {
        "name": name,
        "version": 1,
        "formats": [kind],
        "primary": kind,
        "input": {"name": "input", "datatype": "FP32", "shape": [-1, *recipe["input_shape"]]},
        "output": {"name": "logits", "datatype": "FP32", "shape": [-1, recipe["num_classes"]]},
        "labels": recipe["labels"],
        "origin": origin,
    }
    files = {
        f"{name}/config.pbtxt": triton_config(name, recipe, kind).encode(),
        f"{name}/1/{FORMATS[kind]}": raw,
        f"{name}/1/model.json": json.dumps(meta, indent=2).encode(),
    }
    return ModelRepo(name, 1, files, origin)
