"""The web page: start tuning runs and watch them, deploy the best trial, and see the pipeline
(services, revisions, traffic, replicas, recent events, dead letters, the audio candidates).

`create_app(instance)` returns a Flask app; `knflow up` can mount it, and `knflow ui` serves it
alone against a running instance. Plain HTML and a little vanilla JS in `static/`.
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request, send_from_directory

from eventing.client import BrokerClient, NoBroker
from functions.tune import SpaceError, UnknownRun
from functions.tune.client import (
    deployment_status,
    request_deployment,
    start_run,
    studies_for,
)
from functions.tune.deploy import NotDeployable, dead_letter_reason
from functions.tune.emit import SinkError

from ..instance import Instance, NotRunning

STATIC = Path(__file__).parent / "static"
CODE_LIMIT = 1 << 20
SERVING = "/apis/serving.knative.dev/v1/namespaces/{ns}"
MEDIA = {".png", ".jpg", ".jpeg", ".wav", ".mp3", ".ogg", ".flac"}


class BadRequest(ValueError):
    """Input the page or API cannot use; answered 400 with the message."""


def create_app(instance: Instance, data_dir: Path | str | None = None) -> Flask:
    data = Path(data_dir or instance.data_dir).resolve()
    app = Flask("knflow-ui", static_folder=None)
    broker = BrokerClient(instance.broker_url, timeout=5)

    def store():
        from storage import open_store

        return open_store(instance.store_url or f"file://{data}")

    @app.errorhandler(BadRequest)
    @app.errorhandler(SpaceError)
    @app.errorhandler(NotDeployable)
    def _bad(exc):
        return jsonify({"error": str(exc)}), 400

    @app.errorhandler(UnknownRun)
    def _unknown(exc):
        return jsonify({"error": str(exc)}), 404

    @app.errorhandler(NoBroker)
    @app.errorhandler(SinkError)
    @app.errorhandler(NotRunning)
    def _down(exc):
        return jsonify({"error": str(exc)}), 503

    @app.get("/")
    def index():
        return send_from_directory(STATIC, "index.html")

    @app.get("/static/<path:name>")
    def static_file(name: str):
        return send_from_directory(STATIC, name)

    # --- tuning -------------------------------------------------------------------------------
    @app.get("/api/tuning")
    def runs():
        views = [r.view() for r in studies_for(data).runs()]
        return jsonify(
            [{k: v[k] for k in ("id", "status", "counts", "best", "created")} for v in views]
        )

    @app.post("/api/tuning")
    def start():
        raw = _tuning_form(store)
        tuning = start_run(broker, raw)
        return jsonify({"id": tuning.id, "request": tuning.to_dict()}), 201

    @app.get("/api/tuning/<run_id>")
    def run(run_id: str):
        found = studies_for(data).get(run_id)
        deployment_status(found, instance.services.get("predict", ""), store())
        return jsonify(found.view())

    @app.post("/api/tuning/<run_id>/deploy")
    def deploy(run_id: str):
        body = request.get_json(silent=True) or {}
        trial = body.get("trial")
        if trial is not None and (isinstance(trial, bool) or not isinstance(trial, int)):
            raise BadRequest(f"trial must be a trial number, got {trial!r}")
        return jsonify(request_deployment(broker, studies_for(data).get(run_id), trial)), 202

    # --- the pipeline -------------------------------------------------------------------------
    @app.get("/api/pipeline")
    def pipeline():
        base = SERVING.format(ns=instance.namespace)
        status, listing = instance.api("GET", f"{base}/services")
        if status != 200:
            raise NotRunning(f"control API answered {status}")
        out = []
        for svc in listing.get("items", []):
            name = svc["metadata"]["name"]
            _, revs = instance.api(
                "GET", f"{base}/revisions?labelSelector=serving.knative.dev/service={name}"
            )
            _, stats = instance.api("GET", f"/knflow/v1/services/{name}/stats")
            st = svc.get("status", {})
            out.append(
                {
                    "name": name,
                    "url": st.get("url"),
                    "ready": _ready(st),
                    "latest": st.get("latestReadyRevisionName"),
                    "revisions": [r["metadata"]["name"] for r in (revs or {}).get("items", [])],
                    "traffic": st.get("traffic") or [],
                    "replicas": (stats or {}).get("replicas"),
                    "in_flight": (stats or {}).get("in_flight"),
                }
            )
        return jsonify(out)

    @app.get("/api/events")
    def events():
        return jsonify(broker.get("/.knflow/events", limit=int(request.args.get("limit", 30))))

    @app.get("/api/deadletters")
    def dead_letters():
        out = []
        for info in _objects(store(), "dead-letters")[-30:]:
            try:
                doc = json.loads(store().get("dead-letters", info.key))
            except ValueError:
                continue
            out.append(
                {"key": info.key, "type": doc.get("type"), "reason": dead_letter_reason(doc)}
            )
        return jsonify(out)

    @app.get("/api/candidates")
    def candidates():
        groups: dict[str, dict[str, Any]] = {}
        for info in _objects(store(), "outputs"):
            suffix = Path(info.key).suffix.lower()
            if suffix not in MEDIA:
                continue
            stem = info.key[: -len(suffix)]
            kind = "audio" if suffix in {".wav", ".mp3", ".ogg", ".flac"} else "image"
            groups.setdefault(stem, {"name": stem})[kind] = f"/files/outputs/{info.key}"
        return jsonify(sorted(groups.values(), key=lambda g: g["name"]))

    @app.get("/files/<bucket>/<path:key>")
    def files(bucket: str, key: str):
        if bucket not in ("outputs",) or Path(key).suffix.lower() not in MEDIA:
            return jsonify({"error": "only media in outputs/ is served here"}), 404
        try:
            body = store().get(bucket, key)
        except KeyError:
            return jsonify({"error": f"{bucket}/{key} not found"}), 404
        kind = mimetypes.guess_type(key)[0] or "application/octet-stream"
        return Response(body, mimetype=kind)

    return app


def _tuning_form(store_factory) -> dict[str, Any]:
    """The start form (multipart, with an optional code upload) or a JSON body → request data."""
    if request.is_json:
        raw = request.get_json(silent=True)
        if not isinstance(raw, dict):
            raise BadRequest("the body must be a JSON object (space, objective, budget, …)")
        return raw
    form = request.form
    raw: dict[str, Any] = {}
    if form.get("request", "").strip():
        raw["request"] = form["request"]
    if form.get("space", "").strip():
        try:
            raw["space"] = json.loads(form["space"])
        except ValueError as exc:
            raise BadRequest(f"space is not valid JSON: {exc}") from None
    if not raw:
        raise BadRequest("describe the search space (plain request or parameters)")
    budget = {
        k: form[k] for k in ("max_trials", "parallel_trials", "max_failed_trials") if form.get(k)
    }
    raw["budget"] = budget
    raw["objective"] = {
        "name": form.get("objective") or "val_accuracy",
        "direction": form.get("direction") or "maximize",
        **({"goal": form["goal"]} if form.get("goal") else {}),
    }
    for key in ("sampler", "pruner"):
        if form.get(key):
            raw[key] = form[key]
    fixed = {}
    for key in ("epochs", "limit"):
        if form.get(key):
            try:
                fixed[key] = int(form[key])
            except ValueError:
                raise BadRequest(f"{key} must be a whole number, got {form[key]!r}") from None
    raw["fixed"] = fixed
    upload = request.files.get("code")
    if upload is not None and upload.filename:
        raw["trainer"] = {"code_uri": _save_code(store_factory(), upload)}
    return raw


def _save_code(store, upload) -> str:
    body = upload.read(CODE_LIMIT + 1)
    name = Path(upload.filename).name
    if not body.strip():
        raise BadRequest(f"the uploaded file {name!r} is empty")
    if len(body) > CODE_LIMIT:
        raise BadRequest(f"the uploaded file {name!r} is over {CODE_LIMIT // 1024} KiB")
    if not name.endswith(".py"):
        raise BadRequest(
            f"upload training code as a .py file defining train(params, progress), not {name!r}"
        )
    try:
        source = body.decode()
        compile(source, name, "exec")
    except (UnicodeDecodeError, SyntaxError) as exc:
        raise BadRequest(f"{name} is not valid Python: {exc}") from None
    if "def train" not in source:
        raise BadRequest(f"{name} defines no train(params, progress) function")
    import hashlib

    key = f"tuning/code/{hashlib.sha256(body).hexdigest()[:16]}/{name}"
    store.create_bucket("artifacts")
    store.put("artifacts", key, body)
    return store.uri("artifacts", key)


def _objects(store, bucket: str) -> list:
    from storage import NoSuchBucket

    try:
        return sorted(store.iter_objects(bucket), key=lambda i: i.last_modified)
    except NoSuchBucket:
        return []


def _ready(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
    )
