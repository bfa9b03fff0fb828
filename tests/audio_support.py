"""Shared pieces of the audio tests: small models built once per session, a real LocalStore,
stage instances started the way the runtime starts them, and object-created events."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile

from eventing.events import new_event
from eventing.types import OBJECT_CREATED
from functions.config import FunctionConfig

REPO = Path(__file__).resolve().parent.parent
TALK = REPO / "knative" / "demo" / "talk.wav"

# whisper's real architecture at toy size (multilingual vocabulary, so the real tokenizer fits).
SMALL_WHISPER = dict(
    n_mels=80,
    n_audio_ctx=1500,
    n_audio_state=64,
    n_audio_head=2,
    n_audio_layer=1,
    n_vocab=51865,
    n_text_ctx=448,
    n_text_state=64,
    n_text_head=2,
    n_text_layer=1,
)


def started(function: str, data: Path, models: list[dict], **config) -> object:
    """`functions.<function>.new()` after `start(cfg)` on a LocalStore rooted at `data`."""
    from functions import load_function

    cfg = FunctionConfig(
        function=function,
        service=function,
        config={"threads": 1, **config},
        models=models,
        store_url=f"file://{data}",
        data_dir=data,
    )
    fn = load_function(function)
    fn.start(cfg)
    return fn


def object_event(bucket: str, key: str, event_id: str = "upload-1"):
    data = {"bucket": bucket, "key": key, "uri": f"s3://{bucket}/{key}", "size": 0}
    return new_event(
        OBJECT_CREATED, f"/knflow/storage/{bucket}", data, subject=key, id=event_id, bucket=bucket
    )


def wav(seconds: float, rate: int = 16000, freq: float = 440.0, fmt: str = "WAV") -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    soundfile.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """Small models, built once: a toy whisper checkpoint file, and the builtin sentiment and
    tiny Riffusion directories (the same builders `knflow demo` uses)."""
    from functions.common.models import builtin_path
    from functions.transcribe.demo_model import build as build_whisper

    root = tmp_path_factory.mktemp("audio-models")
    return {
        "whisper": build_whisper(root / "whisper-small", dims=SMALL_WHISPER),
        "sentiment": builtin_path("minilm-sentiment", root),
        "riffusion": builtin_path("riffusion-demo", root),
    }
