"""Checkpoints as safetensors (tensors only: loading one can never run code) plus metrics.json,
in the `artifacts` bucket under `models/<name>/<version>/` (integer versions, Triton-style)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .model import build_model, make_recipe

ARTIFACTS = "artifacts"
CHECKPOINT = "model.safetensors"
METRICS = "metrics.json"
RECIPE = "recipe.json"


def checkpoint_bytes(model: nn.Module, recipe: dict[str, Any]) -> bytes:
    """The model's state dict as safetensors, the recipe in the header metadata."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    return st_save(state, metadata={"recipe": json.dumps(recipe), "format": "pt"})


def load_checkpoint(raw: bytes, recipe: dict[str, Any] | None = None) -> tuple[nn.Module, dict]:
    """Rebuild a model from safetensors bytes; the recipe comes from the header unless given.

    ValueError (with the reason) when the bytes are not safetensors or do not fit the recipe.
    """
    header_recipe = _header_metadata(raw).get("recipe")
    try:
        recipe = make_recipe(recipe or (json.loads(header_recipe) if header_recipe else None))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"bad architecture recipe: {exc}") from None
    try:
        state = st_load(raw)
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise ValueError(f"not a readable safetensors file: {exc}") from None
    model = build_model(recipe)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:2]
        raise ValueError(f"weights do not fit {recipe['arch']}: {' '.join(first)}") from None
    return model.eval(), recipe


def _header_metadata(raw: bytes) -> dict[str, str]:
    if len(raw) < 8:
        return {}
    size = int.from_bytes(raw[:8], "little")
    try:
        header = json.loads(raw[8 : 8 + size])
    except ValueError:
        return {}
    return header.get("__metadata__") or {} if isinstance(header, dict) else {}


def model_prefix(name: str, version: int) -> str:
    return f"models/{name}/{version}/"


def find_runs(store, name: str) -> dict[int, dict[str, Any]]:
    """Complete versions of `name` (those with metrics.json) and their metrics."""
    runs: dict[int, dict[str, Any]] = {}
    if ARTIFACTS not in store.list_buckets():
        return runs
    for info in store.iter_objects(ARTIFACTS, f"models/{name}/"):
        parts = info.key.split("/")
        if len(parts) == 4 and parts[2].isdigit() and parts[3] == METRICS:
            try:
                runs[int(parts[2])] = json.loads(store.get(ARTIFACTS, info.key))
            except ValueError:
                runs[int(parts[2])] = {}
    return runs


def previous_run(store, name: str, request_id: str) -> dict[str, Any] | None:
    """The stored run of this request (a re-delivery), so it is answered without retraining."""
    for version, metrics in sorted(find_runs(store, name).items()):
        if metrics.get("request_id") == request_id:
            return location(store, name, version, metrics)
    return None


def allocate_version(store, name: str, request_id: str) -> int:
    """The version for this request: the one it already got (re-delivery), else max + 1."""
    runs = find_runs(store, name)
    for version, metrics in runs.items():
        if metrics.get("request_id") == request_id:
            return version
    return max(runs, default=0) + 1


def save_run(
    store,
    model: nn.Module,
    metrics: dict[str, Any],
    request_id: str,
    version: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Store checkpoint, recipe and metrics; return where they are (for the reply event)."""
    name = metrics["name"]
    store.create_bucket(ARTIFACTS)
    version = version or allocate_version(store, name, request_id)
    prefix = model_prefix(name, version)
    recipe = metrics["recipe"]
    store.put(ARTIFACTS, prefix + CHECKPOINT, checkpoint_bytes(model, recipe))
    store.put(
        ARTIFACTS,
        prefix + RECIPE,
        json.dumps(recipe, indent=2).encode(),
        content_type="application/json",
    )
    record = {**metrics, "version": version, "request_id": request_id}
    # metrics.json last: its presence marks a complete version (see allocate_version)
    store.put(
        ARTIFACTS,
        prefix + METRICS,
        json.dumps(record, indent=2).encode(),
        content_type="application/json",
    )
    if log:
        log(f"saved {name} v{version} to {store.uri(ARTIFACTS, prefix + CHECKPOINT)}")
    return location(store, name, version, metrics)


def location(store, name: str, version: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """Where a run's checkpoint lives and its headline metrics (the model.trained data)."""
    prefix = model_prefix(name, version)
    return {
        "name": name,
        "version": version,
        "bucket": ARTIFACTS,
        "key": prefix + CHECKPOINT,
        "uri": store.uri(ARTIFACTS, prefix + CHECKPOINT),
        "metrics_key": prefix + METRICS,
        "accuracy": metrics.get("accuracy"),
        "dataset": metrics.get("dataset"),
    }
