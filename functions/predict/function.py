"""The `predict` function: the Open Inference Protocol (V2) REST API over the exported model,
plus a CloudEvent path (`dev.knflow.inference.requested` → `.completed`)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from eventing import types
from eventing.events import derive_id, new_event
from eventing.http import InvalidEvent, data_json
from functions.contract import BadInput

from . import v2
from .repository import LoadedModel, ModelError, fetch_repository, load_model

log = logging.getLogger("knflow.predict")

SOURCE = "/knflow/functions/predict"
ENV_MODEL_DIR = "KNFLOW_MODEL_DIR"  # the revision bundle's model repository
ENV_MODEL_ERROR = "KNFLOW_MODEL_ERROR"  # set by the builder on a refused model


class PredictFunction:
    """Serves one model; with no model configured the server is up but has no models."""

    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self.wanted: str | None = None

    def start(self, cfg) -> None:
        if os.environ.get(ENV_MODEL_ERROR):
            # The builder refused this revision's model; fail here so the revision shows why.
            raise ModelError(os.environ[ENV_MODEL_ERROR])
        options = cfg.config
        self.wanted = options.get("model_name")
        root = self._repository(cfg)
        if root is None:
            log.info("no model configured (%s unset, no model source): serving none", ENV_MODEL_DIR)
            return
        name = self.wanted if self.wanted and (root / self.wanted).is_dir() else None
        # A model that does not load fails the replica: the revision never becomes ready.
        self.model = load_model(root, name, options.get("runtime"), int(options.get("threads", 1)))

    def _repository(self, cfg) -> Path | None:
        if os.environ.get(ENV_MODEL_DIR):
            return Path(os.environ[ENV_MODEL_DIR])
        uri = cfg.model_uri(self.wanted) or cfg.model_uri()
        if not uri:
            return None
        if uri.startswith("s3://"):
            return fetch_repository(cfg.store, uri, Path(cfg.data_dir) / ".knflow" / "models")
        return Path(uri.removeprefix("file://"))

    def ready(self) -> bool:
        return True

    def alive(self) -> bool:
        return True

    # --- the V2 REST API -------------------------------------------------------------------
    def routes(self) -> list:
        return [
            ("/v2", ["GET"], self._server_metadata),
            ("/v2/health/live", ["GET"], lambda: {"live": True}),
            ("/v2/health/ready", ["GET"], lambda: {"ready": True}),
            ("/v2/models/<name>", ["GET"], self._metadata),
            ("/v2/models/<name>/versions/<version>", ["GET"], self._metadata),
            ("/v2/models/<name>/ready", ["GET"], self._model_ready),
            ("/v2/models/<name>/versions/<version>/ready", ["GET"], self._model_ready),
            ("/v2/models/<name>/infer", ["POST"], self._infer_route),
            ("/v2/models/<name>/versions/<version>/infer", ["POST"], self._infer_route),
        ]

    def _server_metadata(self):
        return {"name": "knflow-predict", "version": "2", "extensions": []}

    def _lookup(self, name: str, version: str | None = None) -> LoadedModel:
        if self.model is None or self.model.name != name:
            loaded = self.model.name if self.model else "none"
            raise LookupError(f"model {name!r} is not served here (serving: {loaded})")
        if version is not None and version != self.model.version:
            raise LookupError(
                f"model {name!r} has no version {version} (serving {self.model.version})"
            )
        return self.model

    def _metadata(self, name: str, version: str | None = None):
        try:
            return self._lookup(name, version).metadata()
        except LookupError as exc:
            return {"error": str(exc)}, 404

    def _model_ready(self, name: str, version: str | None = None):
        try:
            model = self._lookup(name, version)
        except LookupError as exc:
            return {"name": name, "ready": False, "error": str(exc)}, 404
        return {"name": model.name, "ready": True}

    def _infer_route(self, name: str, version: str | None = None):
        from flask import request

        body = request.get_json(silent=True)
        if body is None:
            return {"error": "the request body must be JSON (content-type application/json)"}, 400
        try:
            model = self._lookup(name, version)
        except LookupError as exc:
            return {"error": str(exc)}, 404
        try:
            return self.infer(model, body)
        except (v2.ProtocolError, ValueError) as exc:
            return {"error": str(exc)}, 400

    def infer(self, model: LoadedModel, body: Any) -> dict[str, Any]:
        """Run one V2 request; ProtocolError/ValueError for requests the model cannot take."""
        arrays, options = v2.parse_request(body)
        if len(arrays) != 1:
            raise v2.ProtocolError(f"{model.name} takes one input tensor, got {len(arrays)}")
        started = time.perf_counter()
        outputs = model.predict(next(iter(arrays.values())))
        wanted = options["outputs"] or ["logits", "probabilities", "label"]
        unknown = [n for n in wanted if n not in outputs]
        if unknown:
            raise v2.ProtocolError(f"unknown output(s) {unknown}; {model.name} has {list(outputs)}")
        response: dict[str, Any] = {
            "model_name": model.name,
            "model_version": model.version,
            "outputs": [v2.encode_tensor(n, outputs[n]) for n in wanted],
            "parameters": {"compute_ms": round((time.perf_counter() - started) * 1000, 3)},
        }
        if options["id"] is not None:
            response["id"] = options["id"]
        return response

    # --- the CloudEvent path -----------------------------------------------------------------
    def handle(self, event):
        if event.get_type() != types.INFERENCE_REQUESTED:
            raise BadInput(f"predict does not handle events of type {event.get_type()}")
        try:
            body = data_json(event)
        except InvalidEvent as exc:
            raise BadInput(str(exc)) from None
        name = (body or {}).get("model") or (self.model.name if self.model else self.wanted)
        try:
            model = self._lookup(name)
            response = self.infer(model, body)
        except (LookupError, ValueError) as exc:
            raise BadInput(f"inference request: {exc}") from None
        return new_event(
            types.INFERENCE_COMPLETED,
            SOURCE,
            response,
            subject=event.get_subject(),
            id=derive_id(event.get_id(), "predict"),
        )


__all__ = ["ENV_MODEL_DIR", "ModelError", "PredictFunction"]
