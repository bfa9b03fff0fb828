"""The sentiment stage: read the transcript an event points at, classify its text, and reply
with the label (small JSON; nothing is written to the store)."""

from __future__ import annotations

from typing import Any

from eventing.types import SENTIMENT_CLASSIFIED

from ..common import input_ref, read_json, reply, resolve_model, torch_threads
from ..common.models import ModelError
from ..config import FunctionConfig

EXCERPT = 240  # characters of transcript carried along for the prompt downstream


class Classifier:
    """A transformers sequence-classification model directory, applied to one text at a time."""

    def __init__(self, path: str, device: str = "cpu") -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, logging

        logging.disable_progress_bar()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: not a transformers classification model: {exc}") from None
        self.model.to(device)
        self.device = device
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    def __call__(self, text: str) -> dict[str, float]:
        """Probability of each label."""
        import torch

        batch = self.tokenizer(text, truncation=True, max_length=512, return_tensors="pt")
        with torch.no_grad():
            probs = self.model(**batch.to(self.device)).logits.softmax(-1)[0]
        return {label: float(p) for label, p in zip(self.labels, probs, strict=True)}


class Sentiment:
    """Config: `threads`. Model: `classifier` (default `builtin:minilm-sentiment`)."""

    def __init__(self) -> None:
        self.classifier: Classifier | None = None

    def start(self, cfg: FunctionConfig) -> None:
        torch_threads(cfg.config)
        self.store = cfg.store
        self.source = f"/knflow/functions/{cfg.service or cfg.function}"
        uri = cfg.model_uri("classifier") or cfg.model_uri() or "builtin:minilm-sentiment"
        self.spec = resolve_model(uri, cfg.data_dir, self.store)
        if self.spec.path is None or not self.spec.path.is_dir():
            raise ModelError(f"{uri}: expected a transformers model directory")
        self.classifier = Classifier(str(self.spec.path))

    def ready(self) -> bool:
        return self.classifier is not None

    def handle(self, event: Any) -> Any:
        ref = input_ref(event)
        transcript = read_json(self.store, ref)
        text = str(transcript.get("text") or "").strip()
        scores = self.classifier(text) if text else {}
        label = max(scores, key=scores.get) if scores else "neutral"
        data = {
            "label": label,
            "score": round(scores.get(label, 1.0), 4),
            "scores": {k: round(v, 4) for k, v in scores.items()},
            "transcript": ref.to_dict(),
            "excerpt": text[:EXCERPT],
            "language": transcript.get("language"),
            "model": self.spec.label,
            "untrained": self.spec.untrained,
            "upstream_untrained": bool(transcript.get("untrained")),
        }
        return reply(event, "sentiment", SENTIMENT_CLASSIFIED, self.source, data, ref.key)
