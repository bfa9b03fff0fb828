"""The `export` function: `dev.knflow.model.trained` in, a Triton repository in the store and
`dev.knflow.model.exported` out (or BadInput → dead letter when the export check fails)."""

from __future__ import annotations

import json
import logging
from typing import Any

from eventing import types
from eventing.events import derive_id, new_event
from eventing.http import InvalidEvent, data_json
from functions.contract import BadInput
from functions.train.checkpoint import ARTIFACTS, METRICS, load_checkpoint

from .exporter import DEFAULT_TOLERANCE, ExportMismatch, export_model

log = logging.getLogger("knflow.export")

SOURCE = "/knflow/functions/export"
REPOSITORY = "repository/"


def write_repository(store, files: dict[str, bytes], prefix: str = REPOSITORY) -> list[str]:
    """Put repository files under `prefix` in `artifacts`; model.json last (marks complete)."""
    store.create_bucket(ARTIFACTS)
    keys = []
    for path in sorted(files, key=lambda p: p.endswith("model.json")):
        store.put(ARTIFACTS, prefix + path, files[path])
        keys.append(prefix + path)
    return keys


class ExportFunction:
    def __init__(self) -> None:
        self.cfg = None
        self.options: dict[str, Any] = {}

    def start(self, cfg) -> None:
        self.cfg = cfg
        self.options = dict(cfg.config)

    def handle(self, event):
        if event.get_type() != types.MODEL_TRAINED:
            raise BadInput(f"export does not handle events of type {event.get_type()}")
        try:
            trained = data_json(event)
            name, version = trained["name"], int(trained["version"])
            bucket, key = trained.get("bucket", ARTIFACTS), trained["key"]
        except (InvalidEvent, KeyError, TypeError, ValueError):
            raise BadInput(
                "model.trained data needs name, version and the checkpoint key"
            ) from None
        store = self.cfg.store
        try:
            raw = store.get(bucket, key)
        except KeyError as exc:
            raise BadInput(f"checkpoint {bucket}/{key} not found: {exc}") from None
        try:
            model, recipe = load_checkpoint(raw)
        except ValueError as exc:
            raise BadInput(f"checkpoint {key}: {exc}") from None
        formats = self.options.get("formats", ["torchscript", "onnx"])
        tolerance = float(self.options.get("tolerance", DEFAULT_TOLERANCE))
        metrics = _metrics(store, bucket, key)
        try:
            result = export_model(
                model,
                recipe,
                name,
                version,
                formats,
                tolerance,
                primary=self.options.get("primary", "onnx"),
                extra={"accuracy": metrics.get("accuracy"), "checkpoint": store.uri(bucket, key)},
            )
        except (ExportMismatch, ValueError) as exc:
            raise BadInput(f"export of {name} v{version} failed its check: {exc}") from None
        keys = write_repository(store, result.files)
        log.info("exported %s v%d: %s", name, version, ", ".join(keys))
        data = {
            "name": name,
            "version": version,
            "bucket": ARTIFACTS,
            "prefix": REPOSITORY,
            "repository": store.uri(ARTIFACTS, REPOSITORY.rstrip("/")),
            "files": keys,
            "formats": list(result.max_abs_diff),
            "max_abs_diff": result.max_abs_diff,
            "accuracy": metrics.get("accuracy", trained.get("accuracy")),
            "checkpoint": store.uri(bucket, key),
        }
        return new_event(
            types.MODEL_EXPORTED,
            SOURCE,
            data,
            subject=f"{name}/{version}",
            id=derive_id(event.get_id(), "export"),
        )


def _metrics(store, bucket: str, checkpoint_key: str) -> dict[str, Any]:
    try:
        return json.loads(store.get(bucket, checkpoint_key.rsplit("/", 1)[0] + "/" + METRICS))
    except (KeyError, ValueError):
        return {}
