"""The transcribe stage: decode the uploaded audio (no ffmpeg), run whisper over it in its 30 s
windows, store the transcript, and announce it."""

from __future__ import annotations

import logging
import time
from typing import Any

from eventing.types import TRANSCRIPT_CREATED

from ..common import (
    decode_audio,
    input_ref,
    output_id,
    pick_device,
    put_json,
    read_bytes,
    reply,
    resolve_model,
    torch_threads,
)
from ..config import FunctionConfig
from .whisper_model import load_whisper

SAMPLE_RATE = 16000  # whisper's input rate
log = logging.getLogger("knflow.transcribe")


class Transcribe:
    """Config: `max_audio_seconds` (600), `language` (detect), `bucket` (transcripts),
    `max_tokens` per window (whisper's default; 32 for untrained models, whose output is noise
    anyway), `threads`, `device`."""

    def __init__(self) -> None:
        self.model: Any = None

    def start(self, cfg: FunctionConfig) -> None:
        torch_threads(cfg.config)
        self.cfg = cfg
        self.store = cfg.store
        self.bucket = cfg.config.get("bucket", "transcripts")
        self.max_seconds = float(cfg.config.get("max_audio_seconds", 600))
        self.source = f"/knflow/functions/{cfg.service or cfg.function}"
        self.device, _ = pick_device(cfg.config)
        uri = cfg.model_uri("whisper") or cfg.model_uri() or "builtin:whisper-demo"
        self.spec = resolve_model(uri, cfg.data_dir, self.store)
        self.model = load_whisper(self.spec, cfg.data_dir, self.device)
        self.store.create_bucket(self.bucket)

    def ready(self) -> bool:
        return self.model is not None

    def options(self) -> dict[str, Any]:
        """whisper.transcribe options: untrained weights get greedy, short, unconditioned
        decoding so the demo stays fast."""
        config = self.cfg.config
        opts: dict[str, Any] = {"fp16": self.device == "cuda", "verbose": None}
        if config.get("language"):
            opts["language"] = config["language"]
        if self.spec.untrained:
            opts.update(temperature=0.0, condition_on_previous_text=False)
            opts.setdefault("language", "en")
            opts["sample_len"] = int(config.get("max_tokens", 32))
        elif config.get("max_tokens"):
            opts["sample_len"] = int(config["max_tokens"])
        return opts

    def transcribe(self, audio: Any) -> dict[str, Any]:
        import whisper

        return whisper.transcribe(self.model, audio, **self.options())

    def handle(self, event: Any) -> Any:
        ref = input_ref(event)
        audio, info = decode_audio(
            read_bytes(self.store, ref),
            ref.name,
            sample_rate=SAMPLE_RATE,
            max_seconds=self.max_seconds,
        )
        started = time.perf_counter()
        result = self.transcribe(audio)
        elapsed = time.perf_counter() - started
        log.info("%s: %.1fs of audio in %.1fs", ref.name, info.seconds, elapsed)
        ident = output_id(event, "transcribe")
        doc = {
            "id": ident,
            "input": ref.to_dict(),
            "text": result["text"].strip(),
            "language": result.get("language"),
            "segments": [
                {"id": s["id"], "start": s["start"], "end": s["end"], "text": s["text"].strip()}
                for s in result.get("segments", [])
            ],
            "audio": {
                "format": info.format,
                "sample_rate": info.sample_rate,
                "channels": info.channels,
                "seconds": round(info.seconds, 3),
            },
            "model": self.spec.label,
            "untrained": self.spec.untrained,
            "seconds": round(elapsed, 3),
        }
        out = put_json(self.store, self.bucket, f"{ident}.json", doc)
        data = {
            **out.to_dict(),
            "input": ref.to_dict(),
            "language": doc["language"],
            "chars": len(doc["text"]),
            "untrained": self.spec.untrained,
        }
        return reply(event, "transcribe", TRANSCRIPT_CREATED, self.source, data, out.key)
