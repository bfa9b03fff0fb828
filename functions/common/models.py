"""Where a stage's model comes from: a URI in the spec, resolved into a local path.

Accepted forms (the spec's `models: [{name, uri}]`):
- `builtin:<name>`: a demo model knflow builds itself on first use (no downloads needed);
- `s3://bucket/key`: an object, or a prefix holding a model directory, fetched through the
  instance's object store into the model cache (re-fetched when an ETag changes);
- `file:///abs/path`, `/abs/path`, `./rel/path`: a local file or directory;
- anything else: a name the model library knows itself (e.g. whisper's `tiny`).

A model directory or file may carry a card (`knflow_model.json` in the directory, or
`<file>.knflow.json` beside the file) saying whether its weights are untrained, so outputs made
with it are labelled as such.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CARD = "knflow_model.json"

# builtin:<name> -> "module:function" building the model into a directory it is given.
BUILTINS: dict[str, str] = {
    "whisper-demo": "functions.transcribe.demo_model:build",
    "minilm-sentiment": "functions.sentiment.demo_model:build",
    "riffusion-demo": "functions.compose.tiny_model:build",
}


class ModelError(RuntimeError):
    """The configured model cannot be loaded; raised at start so the replica never turns ready."""


@dataclass(frozen=True)
class ResolvedModel:
    uri: str
    path: Path | None  # a local file or directory; None for a library-known name
    name: str | None = None  # the library's own model name when `path` is None
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def untrained(self) -> bool:
        return bool(self.card.get("untrained", False))

    @property
    def label(self) -> str:
        """What outputs say about the model that made them."""
        return self.card.get("label") or self.uri


def model_cache(data_dir: Path) -> Path:
    """`<data>/.knflow/models`: built demo models and fetched `s3://` models live here."""
    return Path(data_dir) / ".knflow" / "models"


def _load_card(card: Path) -> dict[str, Any]:
    try:
        doc = json.loads(card.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def read_card(path: Path) -> dict[str, Any]:
    """The model's card: in the directory, beside the file, or the directory card of which
    this file is the `entry`."""
    if path.is_dir():
        return _load_card(path / CARD)
    beside = path.with_name(path.name + ".knflow.json")
    if beside.is_file():
        return _load_card(beside)
    parent = _load_card(path.parent / CARD) if (path.parent / CARD).is_file() else {}
    return parent if parent.get("entry") == path.name else {}


def write_card(path: Path, **card: Any) -> None:
    target = path / CARD if path.is_dir() else path.with_name(path.name + ".knflow.json")
    target.write_text(json.dumps(card, indent=2) + "\n")


@contextmanager
def _locked(cache: Path, name: str) -> Iterator[None]:
    """Replicas of one service start together; only one of them builds or fetches a model."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{name.replace('/', '_')}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _atomic_dir(dest: Path, fill: Callable[[Path], None]) -> None:
    """Fill a temporary directory, then rename it into place: no half-built model is ever seen."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a model cache is readable like any folder
    try:
        fill(tmp)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def builtin_path(name: str, data_dir: Path, progress: Callable[[str], None] | None = None) -> Path:
    """Build the named demo model on first use (under a lock) and return its directory."""
    if name not in BUILTINS:
        raise ModelError(f"unknown builtin model {name!r} (known: {', '.join(sorted(BUILTINS))})")
    cache = model_cache(data_dir)
    dest = cache / "builtin" / name
    if (dest / CARD).is_file():
        return dest
    with _locked(cache, f"builtin-{name}"):
        if not (dest / CARD).is_file():
            module, func = BUILTINS[name].split(":")
            build = getattr(importlib.import_module(module), func)
            if progress:
                progress(f"building demo model builtin:{name} into {dest}")
            _atomic_dir(dest, build)
    return dest


def download(store: Any, bucket: str, key: str, path: Path) -> None:
    """Stream one object to `path` (temp file, then rename), whatever the store backend."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    with store.open(bucket, key) as src, open(tmp, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    tmp.replace(path)


def _fetch_s3(uri: str, store: Any, data_dir: Path) -> Path:
    from storage import NoSuchBucket, NoSuchObject, StoreError

    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ModelError(f"{uri}: no bucket in the model URI")
    cache = model_cache(data_dir)
    dest = cache / "s3" / bucket / (key.rstrip("/") or "_bucket")
    with _locked(cache, f"s3-{bucket}-{key}"):
        stamp = dest.with_name(dest.name + ".etags.json")
        try:
            objects = []
            if key and not key.endswith("/"):
                try:
                    objects = [store.head(bucket, key)]
                except NoSuchObject:
                    objects = []
            single = bool(objects)
            if not single:
                prefix = key.rstrip("/") + "/" if key else ""
                objects = list(store.iter_objects(bucket, prefix))
            if not objects:
                raise ModelError(f"{uri}: no such object or prefix in the store")
            etags = {o.key: o.etag for o in objects}
            if dest.exists() and stamp.is_file() and json.loads(stamp.read_text()) == etags:
                return dest
            if single:
                dest.parent.mkdir(parents=True, exist_ok=True)
                download(store, bucket, key, dest)
                try:
                    card = dest.with_name(dest.name + ".knflow.json")
                    download(store, bucket, key + ".knflow.json", card)
                except NoSuchObject:
                    pass
            else:
                prefix = key.rstrip("/") + "/" if key else ""

                def fill(tmp: Path) -> None:
                    for obj in objects:
                        rel = obj.key[len(prefix) :]
                        download(store, bucket, obj.key, tmp / rel)

                _atomic_dir(dest, fill)
            stamp.write_text(json.dumps(etags))
        except (NoSuchBucket, StoreError) as exc:
            raise ModelError(f"{uri}: {exc}") from None
    return dest


def resolve_model(
    uri: str,
    data_dir: Path,
    store: Any = None,
    progress: Callable[[str], None] | None = None,
) -> ResolvedModel:
    """Turn a spec model URI into something a library can load (see the module docstring)."""
    if not uri:
        raise ModelError("no model URI configured for this service (spec `models:`)")
    if uri.startswith("builtin:"):
        path = builtin_path(uri[len("builtin:") :], data_dir, progress)
    elif uri.startswith("s3://"):
        if store is None:
            raise ModelError(f"{uri}: no object store configured to fetch it from")
        path = _fetch_s3(uri, store, data_dir)
    elif uri.startswith("file://") or uri.startswith(("/", "./", "../", "~")):
        path = Path(uri.removeprefix("file://")).expanduser()
        if not path.exists():
            raise ModelError(f"{uri}: no such file or directory")
    else:
        return ResolvedModel(uri=uri, path=None, name=uri)
    card = read_card(path)
    if path.is_dir() and card.get("entry"):
        path = path / card["entry"]
    return ResolvedModel(uri=uri, path=path, card=card)


def require_file(model: ResolvedModel, what: str) -> Path:
    """The model as one file (e.g. a whisper checkpoint); ModelError when it is not one."""
    if model.path is None or not model.path.is_file():
        raise ModelError(f"{model.uri}: expected a {what} file")
    return model.path


__all__ = [
    "BUILTINS",
    "CARD",
    "ModelError",
    "ResolvedModel",
    "builtin_path",
    "model_cache",
    "read_card",
    "resolve_model",
    "write_card",
]
