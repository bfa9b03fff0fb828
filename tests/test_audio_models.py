"""Model URIs: local paths, `s3://` objects and prefixes fetched into the cache (re-fetched when
an object changes), builtin demo models, and the errors for each kind of wrong URI. Also the
`knflow demo` entry point's refusals and the audio part it cuts out of a pipeline."""

from __future__ import annotations

import pytest
import yaml
from audio_support import models

from functions.common.models import ModelError, read_card, resolve_model
from knative.demo import AUDIO_SERVICES, audio_pipeline
from knative.spec import default_spec_path
from storage import open_store

__all__ = ["models"]


@pytest.fixture
def store(data_dir):
    s = open_store(f"file://{data_dir}")
    s.create_bucket("models")
    return s


def test_s3_prefix_is_fetched_as_a_directory_and_cached(data_dir, store, models):
    source = models["riffusion"]
    for path in source.rglob("*"):
        if path.is_file():
            store.put("models", f"riffusion/{path.relative_to(source)}", path)
    first = resolve_model("s3://models/riffusion", data_dir, store)
    assert (first.path / "model_index.json").is_file() and (first.path / "unet").is_dir()
    assert first.untrained  # the card travelled with the directory
    index = first.path / "model_index.json"
    stamp = index.stat().st_mtime_ns
    assert resolve_model("s3://models/riffusion/", data_dir, store).path == first.path
    assert index.stat().st_mtime_ns == stamp  # unchanged ETags: nothing downloaded again
    store.put("models", "riffusion/scheduler/scheduler_config.json", b'{"changed": true}')
    again = resolve_model("s3://models/riffusion", data_dir, store)
    assert (again.path / "scheduler" / "scheduler_config.json").read_text() == '{"changed": true}'


@pytest.mark.parametrize(
    "uri, message",
    [
        ("s3://models/nothing-here", "no such object or prefix"),
        ("s3://no-such-bucket/x.pt", "no-such-bucket"),
        ("/does/not/exist.pt", "no such file or directory"),
        ("builtin:gpt-17", "unknown builtin model 'gpt-17'"),
        ("", "no model URI configured"),
    ],
)
def test_wrong_model_uris_say_what_is_wrong(data_dir, store, uri, message):
    with pytest.raises(ModelError, match=message):
        resolve_model(uri, data_dir, store)


def test_library_names_pass_through(data_dir):
    resolved = resolve_model("tiny", data_dir)
    assert resolved.path is None and resolved.name == "tiny" and not resolved.untrained


def test_builtin_models_carry_cards(models):
    assert read_card(models["whisper"])["untrained"] is True  # the directory card names it entry
    assert read_card(models["sentiment"])["untrained"] is False
    assert read_card(models["riffusion"])["untrained"] is True


def test_demo_runs_only_the_audio_part_of_the_shipped_spec():
    pipeline = audio_pipeline(yaml.safe_load(default_spec_path().read_text()))
    assert sorted(s.name for s in pipeline.services) == sorted(AUDIO_SERVICES)
    assert {t.subscriber.ref for t in pipeline.triggers} <= set(AUDIO_SERVICES)
    assert [s.kind for s in pipeline.sources] == ["store"]
    assert pipeline.sources[0].buckets == ["uploads"]
    uris = {s.name: s.models[0].uri for s in pipeline.services if s.models}
    assert uris == {
        "transcribe": "builtin:whisper-demo",
        "sentiment": "builtin:minilm-sentiment",
        "compose": "builtin:riffusion-demo",
    }


def test_demo_refuses_a_missing_clip_and_a_bad_spec(cli, tmp_path):
    result = cli("demo", "--clip", str(tmp_path / "nope.wav"))
    assert result.returncode != 0 and "no such clip" in result.stderr
    spec = tmp_path / "broken.yaml"
    spec.write_text("services: [\n")
    result = cli("demo", "--spec", str(spec))
    assert result.returncode != 0 and "broken.yaml" in result.stderr
    spec.write_text(yaml.safe_dump({"services": [{"name": "echo", "function": "echo"}]}))
    result = cli("demo", "--spec", str(spec))
    assert result.returncode != 0 and "no transcribe, sentiment, compose" in result.stderr
