"""`knflow demo`: the audio pipeline end to end on this machine, narrated.

Starts the embedded platform with the audio part of a pipeline (transcribe, sentiment, compose,
dead letters, the store-notification source), uploads the bundled spoken clip to `uploads`,
follows the broker's event feed stage by stage, prints where every artifact is, and stops.
"""

from __future__ import annotations

import copy
import json
import mimetypes
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CLIP = Path(__file__).resolve().parent / "talk.wav"
AUDIO_SERVICES = ("transcribe", "sentiment", "compose", "dead-letters")
AUDIO_BUCKETS = ("uploads", "transcripts", "outputs", "dead-letters")
STAGES = {
    "dev.knflow.object.created": "upload",
    "dev.knflow.transcript.created": "transcript",
    "dev.knflow.sentiment.classified": "sentiment",
    "dev.knflow.music.generated": "music",
}


class DemoError(RuntimeError):
    """The demo could not run or did not finish; the message says where it stopped."""


def audio_pipeline(raw: dict[str, Any]) -> Any:
    """The audio part of a pipeline document: its services, the triggers that reach them, and a
    store source for `uploads` only (validated like any spec)."""
    from ..spec import parse_spec

    doc = copy.deepcopy(raw)
    doc["services"] = [s for s in doc.get("services") or [] if s["name"] in AUDIO_SERVICES]
    names = {s["name"] for s in doc["services"]}
    missing = [n for n in AUDIO_SERVICES if n not in names]
    if missing:
        raise DemoError(f"the pipeline has no {', '.join(missing)} service(s)")
    doc["triggers"] = [
        t
        for t in doc.get("triggers") or []
        if (t.get("subscriber") or {}).get("ref", {}).get("name") in names
    ]
    doc["buckets"] = sorted(set(doc.get("buckets") or []) | set(AUDIO_BUCKETS))
    doc["sources"] = [
        {**s, "buckets": ["uploads"]} for s in doc.get("sources") or [] if s.get("kind") == "store"
    ] or [{"name": "store-notifications", "kind": "store", "buckets": ["uploads"]}]
    return parse_spec(yaml.safe_dump(doc, sort_keys=False), "knflow.yaml (audio part)")


def prepare_models(pipeline: Any, data_dir: Path, say: Callable[[str], None]) -> list[str]:
    """Build every `builtin:` model the audio services use (first run only; later runs find
    them in `<data>/.knflow/models/builtin`). Returns the URIs that were built now."""
    from functions.common.models import CARD, builtin_path, model_cache

    built = []
    for name in AUDIO_SERVICES:
        for model in pipeline.service(name).models:
            if not model.uri.startswith("builtin:"):
                continue
            target = model_cache(data_dir) / "builtin" / model.uri.removeprefix("builtin:")
            if (target / CARD).is_file():
                continue
            started = time.monotonic()
            say(f"  building {model.uri} for {name} ...")
            builtin_path(model.uri.removeprefix("builtin:"), data_dir)
            say(f"  built {model.uri} in {time.monotonic() - started:.1f}s -> {target}")
            built.append(model.uri)
    return built


@dataclass
class Progress:
    """What the feed has shown so far for one upload's chain of events."""

    seen: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead: list[dict[str, Any]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


def follow(client: Any, progress: Progress, say: Callable[[str], None], t0: float) -> None:
    """Narrate accepted and dead-lettered events until the music is generated."""
    try:
        for entry in client.follow(limit=0):
            kind, stage = entry.get("kind"), STAGES.get(entry.get("type") or "")
            elapsed = time.monotonic() - t0
            if kind == "accepted" and stage and stage not in progress.seen:
                progress.seen[stage] = entry
                say(f"  [{elapsed:5.1f}s] {stage:<10} {entry.get('type')}  {entry.get('subject')}")
                if stage == "music":
                    progress.done.set()
                    return
            elif kind in ("dead-lettered", "failed"):
                progress.dead.append(entry)
                what = f"{entry.get('type')} via {entry.get('trigger')}"
                say(f"  [{elapsed:5.1f}s] {kind}: {what}: {entry.get('code')}")
                progress.done.set()
                return
            elif kind == "retry":
                say(f"  [{elapsed:5.1f}s] retrying {entry.get('type')} ({entry.get('code')})")
    except Exception as exc:  # the broker went away: the waiting side reports the timeout
        say(f"  (event feed ended: {exc})")


def summarize(store: Any, data_dir: Path, progress: Progress, say: Callable[[str], None]) -> dict:
    """Read back the artifacts the chain wrote and print where they are."""
    out: dict[str, Any] = {}
    transcript_key = (progress.seen.get("transcript") or {}).get("subject")
    if transcript_key:
        doc = json.loads(store.get("transcripts", transcript_key))
        out["transcript"] = {"path": str(data_dir / "transcripts" / transcript_key), **doc}
        flag = "  [untrained model: the text is noise]" if doc.get("untrained") else ""
        say(f"Transcript:  {data_dir / 'transcripts' / transcript_key}{flag}")
        say(f"  text: {doc['text'][:100]!r}")
    music_subject = (progress.seen.get("music") or {}).get("subject")
    if music_subject:
        manifest = json.loads(store.get("outputs", f"{music_subject.rstrip('/')}/manifest.json"))
        out["music"] = manifest
        sentiment = manifest.get("sentiment") or {}
        say(f"Sentiment:   {sentiment.get('label')} (score {sentiment.get('score')})")
        say(f"Prompt:      {manifest.get('prompt')}")
        flag = "  [untrained model: spectrograms are noise]" if manifest.get("untrained") else ""
        say(f"Candidates:  {len(manifest['candidates'])}{flag}")
        for cand in manifest["candidates"]:
            png = data_dir / "outputs" / cand["image"]["key"]
            wav = data_dir / "outputs" / cand["audio"]["key"]
            say(f"  #{cand['index']} seed {cand['seed']:<10} {wav}  ({cand['seconds']}s)")
            say(f"  {'':<16}  {png}")
    return out


def dead_letter_reason(store: Any, event_id: str, wait: float = 10.0) -> str:
    """The reason the dead-letter sink recorded for an event (`knativeerrordata`)."""
    import base64

    from functions.deadletter import BUCKET, dead_letter_key

    deadline = time.monotonic() + wait
    while True:
        try:
            doc = json.loads(store.get(BUCKET, dead_letter_key(event_id)))
            data = doc.get("knativeerrordata") or ""
            return base64.b64decode(data).decode(errors="replace").strip() or "no reason given"
        except Exception:
            if time.monotonic() > deadline:
                return "see `knflow dlq list`"
            time.sleep(0.3)


def run_demo(
    raw_spec: dict[str, Any],
    data_dir: Path,
    *,
    timeout: float = 600.0,
    clip: Path = CLIP,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the whole demo; returns what it found (for tests and `-o json`). `timeout` counts
    from the upload: model preparation and platform start-up are not part of it."""
    from eventing.client import BrokerClient
    from storage import open_store

    from ..embedded import Platform

    t0 = time.monotonic()
    pipeline = audio_pipeline(raw_spec)
    data_dir.mkdir(parents=True, exist_ok=True)
    say("Preparing demo models ...")
    built = prepare_models(pipeline, data_dir, say)
    if not built:
        say("  all models already in " + str(data_dir / ".knflow" / "models"))
    say(f"Starting the audio pipeline (data: {data_dir}) ...")
    platform = Platform(pipeline, data_dir)
    platform.start()
    try:
        say(f"  broker {platform.broker_url}")
        for name, url in platform.service_urls.items():
            say(f"  service {name:<13} {url}")
        progress = Progress()
        client = BrokerClient(platform.broker_url)
        watcher = threading.Thread(target=follow, args=(client, progress, say, t0), daemon=True)
        watcher.start()
        time.sleep(0.3)  # let the feed subscription open before the upload
        store = open_store(platform.store_url)
        key = f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{clip.name}"
        content_type = mimetypes.guess_type(clip.name)[0] or "application/octet-stream"
        store.put("uploads", key, clip, content_type=content_type)
        say(f"Uploaded {clip.name} -> {data_dir / 'uploads' / key}; following events ...")
        if not progress.done.wait(timeout):
            stages = ", ".join(progress.seen) or "nothing"
            raise DemoError(
                f"no music {timeout:.0f}s after the upload (seen: {stages}); "
                f"replica logs: {data_dir / '.knflow' / 'serving' / 'logs'}"
            )
        if progress.dead:
            entry = progress.dead[0]
            reason = dead_letter_reason(store, str(entry.get("id")))
            raise DemoError(
                f"{entry.get('type')} for {entry.get('subject')} was dead-lettered "
                f"({entry.get('code')}): {reason}"
            )
        result = summarize(store, data_dir, progress, say)
        result["seconds"] = round(time.monotonic() - t0, 1)
        result["models_built"] = built
        return result
    finally:
        say("Stopping ...")
        platform.stop(drain=5.0)  # replicas, workers included, are ended after 5 s
