"""The audio chain end to end on the embedded platform: a real broker, the sources process,
one OS process per replica, a LocalStore. An upload becomes transcript -> sentiment -> music
candidates; unusable uploads end in the dead-letter bucket with a readable reason while the
services keep serving."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import yaml
from audio_support import TALK, models, wav

from knative.demo import audio_pipeline
from knative.embedded import Platform
from knative.spec import default_spec_path
from storage import open_store

__all__ = ["models"]
pytestmark = pytest.mark.slow


def small_pipeline(models: dict[str, Path]):
    """The shipped spec's audio part, on the small test models and tiny compose settings."""
    raw = yaml.safe_load(default_spec_path().read_text())
    uris = {
        "transcribe": models["whisper"],
        "sentiment": models["sentiment"],
        "compose": models["riffusion"],
    }
    for svc in raw["services"]:
        if svc["name"] in uris:
            svc["models"][0]["uri"] = str(uris[svc["name"]])
            svc["config"] = {**svc.get("config", {}), "threads": 1}
        if svc["name"] == "transcribe":
            svc["config"]["max_audio_seconds"] = 20
        if svc["name"] == "compose":
            svc["config"].update(candidates=2, steps=2, width=32)
    return audio_pipeline(raw)


def wait_for(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def test_upload_to_candidates_and_bad_uploads_dead_lettered(data_dir, models):
    platform = Platform(small_pipeline(models), data_dir)
    platform.start()
    try:
        store = open_store(platform.store_url)
        bad = {
            "empty.wav": b"",
            "notes.wav": b"shopping list: eggs, milk\n",
            "cut.wav": wav(2.0)[:9000],
            "long.wav": wav(25.0, rate=8000),
        }
        for key, body in bad.items():
            store.put("uploads", key, body)
        store.put("uploads", "talk.wav", TALK)
        store.put("uploads", "readme.txt", b"not matched by the transcribe trigger")

        manifests = wait_for(
            "music candidates",
            lambda: [
                o.key for o in store.iter_objects("outputs") if o.key.endswith("manifest.json")
            ],
            timeout=240,
        )
        manifest = json.loads(store.get("outputs", manifests[0]))
        transcript = json.loads(store.get("transcripts", manifest["transcript"]["key"]))
        assert transcript["input"]["key"] == "talk.wav"
        assert manifest["sentiment"]["label"] in ("positive", "negative", "neutral")
        assert len(manifest["candidates"]) == 2 and manifest["untrained"] is True
        for cand in manifest["candidates"]:
            assert (data_dir / "outputs" / cand["audio"]["key"]).stat().st_size > 44
            assert (data_dir / "outputs" / cand["image"]["key"]).is_file()

        letters = wait_for(
            "four dead letters",
            lambda: (
                (found := list(store.iter_objects("dead-letters"))) and len(found) >= 4 and found
            ),
            timeout=60,
        )
        reasons = {}
        for info in letters:
            doc = json.loads(store.get("dead-letters", info.key))
            assert doc["knativeerrorcode"] == "422"
            reasons[doc["subject"]] = base64.b64decode(doc["knativeerrordata"]).decode()
        assert set(reasons) == set(bad)
        assert "empty file" in reasons["empty.wav"]
        assert "looks like text" in reasons["notes.wav"]
        assert "truncated WAV" in reasons["cut.wav"]
        assert "over this service's limit of 20 s" in reasons["long.wav"]
        # only the good upload made a transcript; the .txt never reached transcribe
        assert len(list(store.iter_objects("transcripts"))) == 1
    finally:
        platform.stop(drain=5.0)


def test_knflow_demo_narrates_the_chain_and_says_untrained(cli, data_dir, models, tmp_path):
    """`knflow demo` as a user runs it (a real process), on the small models for speed."""
    raw = small_pipeline(models).raw
    spec = tmp_path / "small.yaml"
    spec.write_text(yaml.safe_dump(raw))
    result = cli("demo", "--spec", str(spec), timeout=280)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for stage in ("upload", "transcript", "sentiment", "music"):
        assert f"] {stage}" in out
    assert "[untrained model: the text is noise]" in out
    assert "[untrained model: spectrograms are noise]" in out
    wavs = [line.split()[3] for line in out.splitlines() if line.strip().startswith("#")]
    assert len(wavs) == 2 and all(Path(w).is_file() and w.endswith(".wav") for w in wavs)
    assert str(data_dir / "transcripts") in out and "Stopping" in out
    assert not (data_dir / ".knflow" / "instance.json").exists()  # stopped cleanly
