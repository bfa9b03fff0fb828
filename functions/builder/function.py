"""The `builder` function: on `model.exported` or an upload to `models`, build an inference
image (a local bundle here, a Kaniko Job in a cluster) and roll the serving service to it with
a canary. Replies `dev.knflow.revision.ready`, or `.failed` with the reason; also emits
`dev.knflow.image.built` once an image exists."""

from __future__ import annotations

import json
import logging
from typing import Any

import requests

from builders import (
    ENV_MODEL_ERROR,
    MAX_MODEL_BYTES,
    ControlAPI,
    KanikoJobBackend,
    LocalBundleBackend,
    RefusedModel,
    Rollout,
    RolloutResult,
    digits_sample,
    make_context,
    v2_smoke,
)
from eventing import types
from eventing.events import derive_id, new_event
from eventing.http import InvalidEvent, data_json, to_http
from functions.contract import BadInput

from .models import ModelRepo, is_model_upload, repo_from_upload

log = logging.getLogger("knflow.builder")

SOURCE = "/knflow/functions/builder"
UPLOADS = "models"
RECORDS = "rollouts/"


class BuilderFunction:
    def __init__(self) -> None:
        self.cfg = None
        self.options: dict[str, Any] = {}
        self._smoke_data = None

    def start(self, cfg) -> None:
        self.cfg = cfg
        self.options = {
            "service": "predict",
            "canary_percent": 10,
            "canary_seconds": 5.0,
            "ready_timeout": 180.0,
            "max_model_bytes": MAX_MODEL_BYTES,
            "smoke_samples": 64,
            "smoke_min_accuracy": 0.9,
            "backend": "local",
            **cfg.config,
        }

    # ---- event handling ------------------------------------------------------------------------
    def handle(self, event):
        kind, request_id = event.get_type(), event.get_id()
        try:
            data = data_json(event)
        except InvalidEvent as exc:
            raise BadInput(str(exc)) from None
        if not isinstance(data, dict):
            raise BadInput("builder events carry a JSON object")
        if kind == types.OBJECT_CREATED and data.get("bucket") == UPLOADS:
            key = str(data.get("key", ""))
            if not is_model_upload(key):
                log.info("ignoring %s/%s: not a model file", UPLOADS, key)
                return None
            origin = data.get("uri") or f"s3://{UPLOADS}/{key}"
            try:
                repo = self._upload(key, origin)
            except RefusedModel as exc:
                return self._refuse(str(exc), origin, request_id)
        elif kind == types.MODEL_EXPORTED:
            repo = self._exported(data)
        else:
            raise BadInput(f"builder does not handle {kind} (bucket {data.get('bucket')!r})")
        try:
            formats = repo.validate(int(self.options["max_model_bytes"]))
        except RefusedModel as exc:
            return self._refuse(str(exc), repo.origin, request_id)
        return self._build_and_roll(repo, formats, request_id)

    def _upload(self, key: str, origin: str) -> ModelRepo:
        store = self.cfg.store
        try:
            size = store.head(UPLOADS, key).size
        except KeyError as exc:
            raise BadInput(f"{UPLOADS}/{key} is gone: {exc}") from None
        limit = int(self.options["max_model_bytes"])
        if size > limit:  # refuse before reading it into memory
            raise RefusedModel(
                f"{key} is {size / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB limit"
            )
        return repo_from_upload(key, store.get(UPLOADS, key), origin, limit)

    def _exported(self, data: dict[str, Any]) -> ModelRepo:
        try:
            name, version = data["name"], int(data["version"])
            bucket, prefix, keys = data["bucket"], data.get("prefix", ""), list(data["files"])
        except (KeyError, TypeError, ValueError):
            raise BadInput("model.exported needs name, version, bucket and files") from None
        files = {}
        for key in keys:
            if not key.startswith(prefix + name + "/"):
                continue
            try:
                files[key[len(prefix) :]] = self.cfg.store.get(bucket, key)
            except KeyError as exc:
                raise BadInput(f"exported file {bucket}/{key} is gone: {exc}") from None
        origin = data.get("repository", f"s3://{bucket}/{prefix}") + f"/{name}/{version}"
        return ModelRepo(name, version, files, origin)

    # ---- build and roll out ---------------------------------------------------------------
    def _build_and_roll(self, repo: ModelRepo, formats: list[str], request_id: str):
        labels = {"model": repo.name, "version": str(repo.version), "origin": repo.origin}
        backend = self._backend()
        context = make_context(
            repo.files, labels=labels, include_code=not isinstance(backend, LocalBundleBackend)
        )
        log.info(
            "building %s v%d: context %s (%d files, %.1f MiB)",
            repo.name,
            repo.version,
            context.digest[:12],
            len(context.files),
            context.size / 2**20,
        )
        image = backend.build(context)
        built = {
            "image": image,
            "digest": context.digest,
            "model": repo.name,
            "version": repo.version,
            "formats": formats,
            "origin": repo.origin,
        }
        self._send(
            new_event(
                types.IMAGE_BUILT,
                SOURCE,
                built,
                subject=repo.name,
                id=derive_id(request_id, "image"),
            )
        )
        result = self._rollout(repo.name).run(
            image,
            env={ENV_MODEL_ERROR: None},
            annotations={
                "knflow.dev/model": f"{repo.name}:{repo.version}",
                "knflow.dev/context-digest": context.digest[:63],
            },
        )
        return self._reply(result, request_id, built)

    def _refuse(self, reason: str, origin: str, request_id: str):
        """A refused model is never packaged. The candidate revision carries the reason and fails
        at start, so it shows in `knflow revision list` like any revision that cannot serve;
        it never receives traffic."""
        log.warning("refused %s: %s", origin, reason)
        current = self._control().service(self.options["service"])
        image = current["spec"]["template"]["spec"]["containers"][0]["image"]
        result = self._rollout("refused").run(
            image,
            env={ENV_MODEL_ERROR: reason},
            annotations={"knflow.dev/model": f"refused:{origin}"[:250]},
        )
        if result.ok:  # the refusal must never become the serving revision
            result.outcome = "rolled-back"
        result.reason = reason
        return self._reply(result, request_id, {"origin": origin, "refused": True})

    def _reply(self, result: RolloutResult, request_id: str, extra: dict[str, Any]):
        record = {**result.as_dict(), **extra}
        self._record(result, record)
        kind = (
            types.REVISION_READY
            if result.outcome == "promoted"
            or (result.outcome == "unchanged" and not extra.get("refused"))
            else types.REVISION_FAILED
        )
        log.info(
            "%s: %s %s%s",
            result.service,
            result.outcome,
            result.revision or "",
            f" ({result.reason})" if result.reason else "",
        )
        return new_event(
            kind,
            SOURCE,
            record,
            subject=result.revision or result.service,
            id=derive_id(request_id, "builder"),
        )

    def _record(self, result: RolloutResult, record: dict[str, Any]) -> None:
        """Keep each rollout's outcome and reason in the store (`artifacts/rollouts/…`)."""
        key = f"{RECORDS}{result.service}/{result.revision or 'none'}.json"
        try:
            self.cfg.store.put(
                "artifacts",
                key,
                json.dumps(record, indent=2).encode(),
                content_type="application/json",
            )
        except Exception:  # the event still carries the record
            log.exception("could not store rollout record %s", key)

    # ---- collaborators ------------------------------------------------------------------------
    def _control(self) -> ControlAPI:
        return ControlAPI.discover(self.cfg.data_dir, self.options.get("namespace"))

    def _backend(self):
        if self.options["backend"] == "kaniko":
            return KanikoJobBackend(
                registry=self.options["registry"],
                store=self.cfg.store,
                namespace=self.options.get("namespace", "knflow"),
                s3_endpoint=self.options.get("s3_endpoint", ""),
            )
        return LocalBundleBackend(self.cfg.data_dir)

    def _rollout(self, model: str) -> Rollout:
        """A rollout whose smoke test asks the candidate for `model` on held-out digits."""
        o = self.options
        smoke = None
        if o.get("smoke", True):
            if self._smoke_data is None:
                self._smoke_data = digits_sample(int(o["smoke_samples"]))
            inputs, labels = self._smoke_data
            smoke = v2_smoke(model, inputs, labels, float(o["smoke_min_accuracy"]))
        return Rollout(
            self._control(),
            o["service"],
            int(o["canary_percent"]),
            float(o["canary_seconds"]),
            float(o["ready_timeout"]),
            smoke,
        )

    def _send(self, event) -> None:
        if not self.cfg.sink:
            log.info("no sink: %s not sent", event.get_type())
            return
        headers, body = to_http(event)
        try:
            requests.post(self.cfg.sink, data=body, headers=headers, timeout=10).raise_for_status()
        except requests.RequestException as exc:
            log.warning("could not send %s to %s: %s", event.get_type(), self.cfg.sink, exc)
