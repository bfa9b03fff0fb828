"""The `split` function: one half of ResNet-50 per service.

Half A (`config: {half: a, variant: balanced, next: resnet-b}`) takes images over plain HTTP
(`POST /predict`: an image file or a tensor body) or as a CloudEvent, runs its stages, and sends
the activation to B (`POST /forward`, binary tensor body) over the emulated link (`GET/PUT /link`).
Half B finishes the network and answers the top-5 classes as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
import torch
from flask import Response, request

from functions.contract import BadInput

from . import tensor_codec
from .images import ImageError, batch_from_body
from .link import Link, LinkError, LinkSettings
from .model import UNTRAINED, half, top_k
from .variants import CUT_CHANNELS, VARIANTS, variant_name
from .weights import WeightsError, load_resnet50

if TYPE_CHECKING:
    from cloudevents.core.base import BaseCloudEvent

    from functions.config import FunctionConfig

NEXT_URL_ENV = "KNFLOW_SPLIT_NEXT_URL"
THREADS_ENV = "KNFLOW_TORCH_THREADS"


class UpstreamError(RuntimeError):
    """B could not be reached or refused A's tensor."""


class SplitFunction:
    """Serves half `a` or `b` of one split variant."""

    def __init__(self) -> None:
        self.half = ""
        self.module: torch.nn.Module | None = None
        self._local = threading.local()

    # --- lifecycle ------------------------------------------------------------------------
    def start(self, cfg: FunctionConfig) -> None:
        conf = cfg.config
        self.cfg = cfg
        self.half = str(conf.get("half", "")).lower()
        if self.half not in ("a", "b"):
            raise ValueError(f"split: config.half must be 'a' or 'b', not {conf.get('half')!r}")
        self.variant = variant_name(str(conf.get("variant", "balanced")))
        self.image_size = int(conf.get("image_size", 224))
        self.timeout = float(conf.get("timeout", 120))
        # One forward pass at a time per replica (one model instance, as many model servers run):
        # parallel work then comes from replicas, which is what the concurrency target decides.
        self._compute = threading.Lock() if conf.get("serialize", True) else None
        threads = conf.get("threads") or os.environ.get(THREADS_ENV)
        if threads:
            torch.set_num_threads(int(threads))
        uri = cfg.model_uri("resnet50") or cfg.model_uri() or conf.get("weights")
        model, self.weights = load_resnet50(uri, fetch=self._fetch)
        self.module = half(model, self.variant, self.half)
        self.service = cfg.service or f"split-{self.half}"
        if self.half == "a":
            self.next = str(conf.get("next") or "")
            if not self.next and not os.environ.get(NEXT_URL_ENV):
                raise ValueError("split: half a needs config.next (the B service name or URL)")
            link_dir = knflow_dir(cfg.data_dir) / "split" / f"{self.service}-link"
            initial = LinkSettings.from_dict(conf["link"]) if conf.get("link") else None
            self.link = Link(link_dir, initial)

    def ready(self) -> bool:
        return self.module is not None

    def routes(self) -> list[tuple[str, list[str], Any]]:
        # The runtime asks before start() has run, so every route exists on both halves and
        # each view checks which half it is serving (`_wrong_half`).
        return [
            ("/predict", ["POST"], self._view_predict),
            ("/link", ["GET", "PUT"], self._view_link),
            ("/forward", ["POST"], self._view_forward),
            ("/info", ["GET"], self._view_info),
        ]

    # --- the work -------------------------------------------------------------------------
    def run_half(self, x: torch.Tensor) -> torch.Tensor:
        assert self.module is not None, "start() has not run"
        with self._compute or contextlib.nullcontext(), torch.inference_mode():
            return self.module(x)

    def predict(self, batch: torch.Tensor) -> dict[str, Any]:
        """A's whole job: run half A, send the activation to B, return B's answer plus timings."""
        began = time.perf_counter()
        activation = self.run_half(batch)
        a_done = time.perf_counter()
        answer = self.send_to_b(activation)
        end = time.perf_counter()
        answer["timing_ms"] = {
            "a": round((a_done - began) * 1000, 2),
            "b": answer.get("timing_ms", {}).get("b"),
            "hop": round((end - a_done) * 1000, 2),
            "total": round((end - began) * 1000, 2),
        }
        return answer

    def send_to_b(self, activation: torch.Tensor) -> dict[str, Any]:
        headers, body = tensor_codec.encode(activation)
        url = self.next_url().rstrip("/") + "/forward"
        with self.link.transfer(len(body)):
            try:
                reply = self._session().post(url, data=body, headers=headers, timeout=self.timeout)
            except requests.RequestException as exc:
                raise UpstreamError(f"{self.next} at {url} is unreachable: {exc}") from None
        if reply.status_code != 200:
            raise UpstreamError(f"{self.next} answered {reply.status_code}: {reply.text[:300]}")
        return reply.json()

    def finish(self, activation: torch.Tensor) -> dict[str, Any]:
        """B's whole job: the rest of the network and the top-5 classes."""
        expected = CUT_CHANNELS[VARIANTS[self.variant]]
        if (
            activation.dim() != 4
            or activation.shape[1] != expected
            or not activation.is_floating_point()
        ):
            raise tensor_codec.TensorCodecError(
                f"variant {self.variant} expects a float (N, {expected}, H, W) activation, "
                f"got {activation.dtype} {list(activation.shape)}"
            )
        began = time.perf_counter()
        logits = self.run_half(activation.float())
        return {
            "model": "resnet50",
            "variant": self.variant,
            "weights": self.weights,
            "untrained": self.weights == UNTRAINED,
            "predictions": top_k(logits, 5),
            "timing_ms": {"b": round((time.perf_counter() - began) * 1000, 2)},
        }

    def next_url(self) -> str:
        """B's address: env override, a URL in config, else the running instance's router."""
        override = os.environ.get(NEXT_URL_ENV)
        if override:
            return override
        if self.next.startswith(("http://", "https://")):
            return self.next
        path = knflow_dir(self.cfg.data_dir) / "instance.json"
        try:
            services = json.loads(path.read_text()).get("services", {})
        except (OSError, ValueError):
            # No local instance: in a cluster the service name resolves inside the namespace.
            return f"http://{self.next}"
        if self.next not in services:
            raise UpstreamError(f"service {self.next!r} is not part of the running instance")
        return services[self.next]

    # --- CloudEvents ------------------------------------------------------------------------
    def handle(self, event: BaseCloudEvent) -> BaseCloudEvent | None:
        from eventing import derive_id, new_event, types
        from eventing.http import data_bytes

        if self.half != "a":
            raise BadInput(f"{self.service} (half b) takes tensors on POST /forward, not events")
        data = event.get_data()
        ref = data if isinstance(data, dict) else None
        try:
            if ref is not None:
                body, headers = self._read_object(ref), {}
            else:
                content_type = event.get_attributes().get("datacontenttype") or ""
                body, headers = data_bytes(event), {"content-type": content_type}
            batch = batch_from_body(headers, body, self.image_size)
        except (ImageError, tensor_codec.TensorCodecError) as exc:
            raise BadInput(str(exc)) from None
        result = self.predict(batch)
        if ref is not None:
            result["input"] = {k: ref[k] for k in ("bucket", "key", "uri") if k in ref}
        return new_event(
            types.INFERENCE_COMPLETED,
            f"/knflow/split/{self.service}",
            result,
            subject=event.get_attributes().get("subject"),
            id=derive_id(event.get_id(), self.service),
        )

    def _read_object(self, ref: dict[str, Any]) -> bytes:
        from storage import parse_uri

        try:
            bucket, key = (ref["bucket"], ref["key"]) if "key" in ref else parse_uri(ref["uri"])
            return self.cfg.store.get(bucket, key)
        except (KeyError, ValueError) as exc:
            raise BadInput(f"event data names no readable object ({exc})") from None

    # --- HTTP views -------------------------------------------------------------------------
    def _view_predict(self) -> Response:
        if refused := self._wrong_half("a"):
            return refused
        try:
            batch = batch_from_body(request.headers, request.get_data(), self.image_size)
        except (ImageError, tensor_codec.TensorCodecError) as exc:
            return _json({"error": str(exc)}, 400)
        try:
            return _json(self.predict(batch))
        except UpstreamError as exc:
            return _json({"error": str(exc)}, 502)

    def _view_forward(self) -> Response:
        if refused := self._wrong_half("b"):
            return refused
        try:
            activation = tensor_codec.decode(request.headers, request.get_data())
            return _json(self.finish(activation))
        except tensor_codec.TensorCodecError as exc:
            return _json({"error": str(exc)}, 400)

    def _view_link(self) -> Response:
        if refused := self._wrong_half("a"):
            return refused
        if request.method == "PUT":
            try:
                doc = json.loads(request.get_data() or b"null")
                self.link.update(LinkSettings.from_dict(doc))
            except ValueError as exc:  # JSON errors and LinkError
                reason = str(exc) if isinstance(exc, LinkError) else f"body is not JSON: {exc}"
                return _json({"error": reason}, 400)
        settings = self.link.settings
        stats = self.link.stats.as_dict()
        return _json({**settings.as_dict(), "describe": settings.describe(), **stats})

    def _view_info(self) -> Response:
        if self.module is None:
            return _json({"error": "still loading the model"}, 503)
        return _json(
            {
                "service": self.service,
                "half": self.half,
                "variant": self.variant,
                "weights": self.weights,
                "untrained": self.weights == UNTRAINED,
                "image_size": self.image_size,
                "threads": torch.get_num_threads(),
            }
        )

    # --- helpers ----------------------------------------------------------------------------
    def _wrong_half(self, wanted: str) -> Response | None:
        if self.module is None:
            return _json({"error": "still loading the model"}, 503)
        if self.half != wanted:
            where = "POST /predict and /link" if self.half == "a" else "POST /forward"
            return _json({"error": f"{self.service} is half {self.half}: use {where}"}, 404)
        return None

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _fetch(self, uri: str) -> bytes:
        from storage import parse_uri

        bucket, key = parse_uri(uri)
        return self.cfg.store.get(bucket, key)


def knflow_dir(data_dir: Path) -> Path:
    """`<data>/.knflow`, whether `data_dir` is the instance directory or already that folder."""
    data_dir = Path(data_dir)
    return data_dir if data_dir.name == ".knflow" else data_dir / ".knflow"


def _json(doc: Any, status: int = 200) -> Response:
    return Response(json.dumps(doc), status=status, mimetype="application/json")


__all__ = ["SplitFunction", "UpstreamError", "WeightsError", "knflow_dir"]
