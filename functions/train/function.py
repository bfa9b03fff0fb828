"""The `train` function: a training request (event, or a spec uploaded to `training`) in, a
checkpoint in the store and `dev.knflow.model.trained` out."""

from __future__ import annotations

import json
import logging
from typing import Any

import yaml

from eventing import types
from eventing.events import derive_id, new_event
from eventing.http import InvalidEvent, data_json
from functions.contract import BadInput

from .checkpoint import ARTIFACTS, previous_run, save_run
from .data import Dataset, digits_dataset, mnist_dataset
from .trainer import TrainParams, train_model
from .trial import run_trial

log = logging.getLogger("knflow.train")

SOURCE = "/knflow/functions/train"
MNIST_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
MAX_SPEC_BYTES = 1 << 20


class TrainFunction:
    def __init__(self) -> None:
        self.cfg = None
        self.defaults: dict[str, Any] = {}

    def start(self, cfg) -> None:
        self.cfg = cfg
        self.defaults = dict(cfg.config)

    def handle(self, event):
        kind = event.get_type()
        if kind == types.OBJECT_CREATED:
            request = self._spec_from_object(event)
        elif kind == types.TRIAL_REQUESTED:  # tuning trials: see trial.py
            return run_trial(_event_data(event), event.get_id(), self.cfg, self.defaults)
        elif kind == types.TRAINING_REQUESTED:
            try:
                request = data_json(event)
            except InvalidEvent as exc:
                raise BadInput(str(exc)) from None
            if not isinstance(request, dict):
                raise BadInput("training request data must be a JSON object")
        else:
            raise BadInput(f"train does not handle events of type {kind}")
        request = _unwrap(request)
        hyper = request.get("params") if isinstance(request.get("params"), dict) else {}
        try:
            params = TrainParams.from_mapping({**request, **hyper}, self.defaults)
        except ValueError as exc:
            raise BadInput(f"bad training request: {exc}") from None
        request_id = derive_id(event.get_id(), "train")
        saved = previous_run(self.cfg.store, params.name, request_id)
        if saved is not None:  # a re-delivery: answer with the stored run
            log.info(
                "request %s already trained as %s v%d",
                event.get_id(),
                params.name,
                saved["version"],
            )
            metrics = json.loads(self.cfg.store.get(ARTIFACTS, saved["metrics_key"]))
        else:
            dataset = self._dataset(request.get("data"))
            model, metrics = train_model(params, dataset=dataset)
            saved = save_run(self.cfg.store, model, metrics, request_id, log=log.info)
        saved["metrics"] = _public(metrics)
        return new_event(types.MODEL_TRAINED, SOURCE, saved, subject=saved["key"], id=request_id)

    def _spec_from_object(self, event) -> dict[str, Any]:
        try:
            ref = data_json(event)
            bucket, key = ref["bucket"], ref["key"]
        except (InvalidEvent, KeyError, TypeError):
            raise BadInput("object event without bucket/key in its data") from None
        try:
            info = self.cfg.store.head(bucket, key)
            if info.size > MAX_SPEC_BYTES:
                raise BadInput(f"training spec {key} is {info.size} bytes (limit {MAX_SPEC_BYTES})")
            raw = self.cfg.store.get(bucket, key)
        except KeyError as exc:  # NoSuchObject/NoSuchBucket are KeyErrors
            raise BadInput(f"training spec {bucket}/{key} is gone: {exc}") from None
        try:
            doc = json.loads(raw) if key.endswith(".json") else yaml.safe_load(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise BadInput(f"training spec {key} is not valid JSON/YAML: {exc}") from None
        if not isinstance(doc, dict):
            raise BadInput(f"training spec {key} must be a mapping of parameters")
        if isinstance(doc.get("data"), dict):
            doc["data"].setdefault("bucket", bucket)
        log.info("training spec %s/%s: %s", bucket, key, json.dumps(doc, default=str))
        return doc

    def _dataset(self, data: Any) -> Dataset:
        """MNIST from the store when the request names its idx files, else bundled digits."""
        if (
            not data
            or data == "digits"
            or (isinstance(data, dict) and data.get("kind") == "digits")
        ):
            return digits_dataset()
        if not isinstance(data, dict) or not all(data.get(k) for k in MNIST_KEYS):
            raise BadInput(
                f"data must be 'digits' or name the MNIST idx keys {', '.join(MNIST_KEYS)}"
            )
        bucket = data.get("bucket", "training")
        files = {}
        for name in MNIST_KEYS:
            b, key = _locate(data[name], bucket)
            try:
                files[name] = self.cfg.store.get(b, key)
            except KeyError as exc:
                raise BadInput(f"{name}: {b}/{key} not found: {exc}") from None
        try:
            return mnist_dataset(**files, limit=data.get("limit"))
        except ValueError as exc:
            raise BadInput(f"unreadable MNIST data: {exc}") from None


def _locate(ref: str, bucket: str) -> tuple[str, str]:
    if ref.startswith("s3://"):
        rest = ref[5:]
        b, _, key = rest.partition("/")
        return b, key
    return bucket, ref


def _unwrap(doc: dict[str, Any]) -> dict[str, Any]:
    """Accept Kubernetes-style `{kind, metadata: {name}, spec: {...}}` as well as flat params."""
    if isinstance(doc.get("spec"), dict):
        flat = dict(doc["spec"])
        name = (doc.get("metadata") or {}).get("name")
        if name and "name" not in flat and "model" not in flat:
            flat["name"] = name
        return flat
    return doc


def _public(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("accuracy", "loss", "epochs", "dataset", "seconds", "history")}


def _event_data(event) -> dict[str, Any]:
    try:
        data = data_json(event)
    except InvalidEvent as exc:
        raise BadInput(str(exc)) from None
    if not isinstance(data, dict):
        raise BadInput(f"{event.get_type()} data must be a JSON object")
    return data
