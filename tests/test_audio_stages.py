"""Each audio stage through `handle()` on its small model, with a real LocalStore: what it
writes, what it replies, and how it refuses input it can never process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile
import torch
from audio_support import TALK, models, object_event, started, wav
from PIL import Image

from eventing.events import new_event
from eventing.types import MUSIC_GENERATED, SENTIMENT_CLASSIFIED, TRANSCRIPT_CREATED
from functions import BadInput
from functions.common.models import ModelError
from functions.compose.spectrogram import EXIF_TAGS
from storage import open_store

torch.set_num_threads(1)
__all__ = ["models"]  # the shared session fixture


@pytest.fixture
def store(data_dir: Path):
    s = open_store(f"file://{data_dir}")
    s.create_bucket("uploads")
    return s


def transcriber(data_dir: Path, models, **config):
    uri = str(models["whisper"])
    return started("transcribe", data_dir, [{"name": "whisper", "uri": uri}], **config)


# --- transcribe ----------------------------------------------------------------------------
def test_transcribe_writes_transcript_and_replies(data_dir, store, models):
    store.put("uploads", "talk.wav", TALK)
    fn = transcriber(data_dir, models)
    reply = fn.handle(object_event("uploads", "talk.wav"))

    assert reply.get_type() == TRANSCRIPT_CREATED
    data = reply.get_data()
    assert data["bucket"] == "transcripts" and data["key"] == reply.get_subject()
    doc = json.loads((data_dir / "transcripts" / data["key"]).read_text())
    assert doc["input"]["key"] == "talk.wav"
    assert doc["untrained"] is True and "untrained" in doc["model"]
    assert doc["audio"]["seconds"] == pytest.approx(8.7, abs=0.1)
    assert {"text", "segments", "language"} <= doc.keys()
    # a re-delivery of the same event overwrites the same transcript and keeps the reply id
    again = fn.handle(object_event("uploads", "talk.wav"))
    assert again.get_id() == reply.get_id()
    assert len(list(store.iter_objects("transcripts"))) == 1


@pytest.mark.parametrize(
    "name, body, reason",
    [
        ("empty.wav", b"", "empty file"),
        ("notes.wav", b"these are my meeting notes, not a recording\n", "looks like text"),
        ("cut.wav", wav(2.0)[:20000], "truncated WAV"),
        ("long.wav", wav(3.0), "over this service's limit of 2 s"),
    ],
)
def test_transcribe_refuses_bad_audio_with_reason(data_dir, store, models, name, body, reason):
    store.put("uploads", name, body)
    fn = transcriber(data_dir, models, max_audio_seconds=2)
    with pytest.raises(BadInput, match=reason) as err:
        fn.handle(object_event("uploads", name))
    assert f"uploads/{name}" in str(err.value)
    assert not list(store.iter_objects("transcripts"))


def test_transcribe_reads_flac_ogg_mp3(data_dir, store, models):
    fn = transcriber(data_dir, models)
    for fmt in ("FLAC", "OGG", "MP3"):
        key = f"tone.{fmt.lower()}"
        store.put("uploads", key, wav(1.0, rate=22050, fmt=fmt))
        doc_key = fn.handle(object_event("uploads", key, event_id=key)).get_data()["key"]
        doc = json.loads(store.get("transcripts", doc_key))
        assert doc["audio"]["format"] == fmt and doc["audio"]["seconds"] == pytest.approx(1, 0.05)


def test_transcribe_missing_object_is_bad_input(data_dir, store, models):
    fn = transcriber(data_dir, models)
    with pytest.raises(BadInput, match="no longer exists"):
        fn.handle(object_event("uploads", "gone.wav"))


def test_whisper_checkpoint_from_s3_uri_is_cached(data_dir, store, models):
    store.create_bucket("models")
    store.put("models", "whisper/small.pt", models["whisper"])
    fn = started(
        "transcribe", data_dir, [{"name": "whisper", "uri": "s3://models/whisper/small.pt"}]
    )
    cached = data_dir / ".knflow" / "models" / "s3" / "models" / "whisper" / "small.pt"
    assert cached.is_file() and fn.ready()


def test_whisper_name_not_downloaded_gives_clear_error(data_dir, store):
    with pytest.raises(ModelError, match="cannot be downloaded here"):
        started("transcribe", data_dir, [{"name": "whisper", "uri": "tiny"}])
    with pytest.raises(ModelError, match="neither a whisper model name"):
        started("transcribe", data_dir, [{"name": "whisper", "uri": "enormous"}])


# --- sentiment -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, label",
    [
        ("Today was a wonderful day and I am so happy with the music.", "positive"),
        ("This was a miserable day, everything went wrong and I feel awful.", "negative"),
        ("The meeting is on Thursday at ten in room four.", "neutral"),
    ],
)
def test_sentiment_labels_a_transcript(data_dir, store, models, text, label):
    store.create_bucket("transcripts")
    store.put("transcripts", "t.json", json.dumps({"text": text, "untrained": True}).encode())
    fn = started("sentiment", data_dir, [{"name": "classifier", "uri": str(models["sentiment"])}])
    event = new_event(TRANSCRIPT_CREATED, "/t", {"bucket": "transcripts", "key": "t.json"}, id="t1")
    reply = fn.handle(event)
    data = reply.get_data()
    assert reply.get_type() == SENTIMENT_CLASSIFIED
    assert data["label"] == label, data["scores"]
    assert data["score"] == max(data["scores"].values()) and data["untrained"] is False
    assert data["upstream_untrained"] is True and data["transcript"]["key"] == "t.json"


def test_sentiment_demo_model_held_out_accuracy(models):
    from functions.sentiment.demo_model import load_split
    from functions.sentiment.handler import Classifier

    classify = Classifier(str(models["sentiment"]))
    texts, labels = load_split("heldout")
    hits = sum(
        max(s := classify(t), key=s.get) == classify.labels[y]
        for t, y in zip(texts, labels, strict=True)
    )
    assert hits / len(texts) >= 0.85


def test_sentiment_model_dir_that_is_not_a_model(data_dir, store, tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(ModelError, match="not a transformers classification model"):
        started("sentiment", data_dir, [{"name": "classifier", "uri": str(tmp_path / "junk")}])


# --- compose -------------------------------------------------------------------------------
def test_compose_writes_candidates_with_riffusion_exif(data_dir, store, models):
    store.create_bucket("transcripts")
    store.put("transcripts", "t.json", json.dumps({"text": "sunny beach holiday"}).encode())
    fn = started(
        "compose",
        data_dir,
        [{"name": "riffusion", "uri": str(models["riffusion"])}],
        candidates=2,
        steps=2,
        width=64,
    )
    data = {
        "label": "positive",
        "score": 0.9,
        "transcript": {"bucket": "transcripts", "key": "t.json"},
    }
    reply = fn.handle(new_event(SENTIMENT_CLASSIFIED, "/s", data, id="s1"))

    assert reply.get_type() == MUSIC_GENERATED
    out = reply.get_data()
    assert out["untrained"] is True and "beach" in out["prompt"] and "uplifting" in out["prompt"]
    assert [c["index"] for c in out["candidates"]] == [0, 1]
    assert len({c["seed"] for c in out["candidates"]}) == 2
    waves = []
    for cand in out["candidates"]:
        png = data_dir / "outputs" / cand["image"]["key"]
        assert cand["image"]["key"] == f"{out['id']}/candidate-{cand['index']}.png"
        image = Image.open(png)
        assert image.size == (64, 512)
        exif = image.getexif()
        assert exif[EXIF_TAGS["sample_rate"]] == 44100
        assert exif[EXIF_TAGS["num_frequencies"]] == 512
        assert exif[EXIF_TAGS["max_frequency"]] == 10000
        assert exif[EXIF_TAGS["power_for_image"]] == pytest.approx(0.25)
        samples, rate = soundfile.read(data_dir / "outputs" / cand["audio"]["key"])
        assert rate == 44100 and len(samples) == 63 * 441
        waves.append(samples)
    assert (waves[0] != waves[1]).any()
    manifest = json.loads(store.get("outputs", out["manifest"]["key"]))
    assert manifest["candidates"] == out["candidates"]


def test_compose_needs_a_transcript_reference(data_dir, store, models):
    fn = started(
        "compose",
        data_dir,
        [{"name": "riffusion", "uri": str(models["riffusion"])}],
        candidates=1,
        steps=1,
        width=24,
    )
    with pytest.raises(BadInput, match="no object reference"):
        fn.handle(new_event(SENTIMENT_CLASSIFIED, "/s", {"label": "positive"}, id="s2"))


@pytest.mark.parametrize(
    "config, message",
    [({"width": 16}, "width must be a multiple of 8 and >= 24"), ({"candidates": 0}, ">= 1")],
)
def test_compose_refuses_unusable_config(data_dir, store, models, config, message):
    with pytest.raises(ModelError, match=message):
        started("compose", data_dir, [{"name": "r", "uri": str(models["riffusion"])}], **config)
