"""The object store: a local directory (the embedded default) or any S3/MinIO endpoint, with
S3-format notifications for every create and delete.

    store = open_store("file:///var/lib/knflow")          # or "s3://?endpoint=http://…:9000"
    store.put("uploads", "talk.wav", Path("talk.wav"))
    bucket, key = parse_uri("s3://uploads/talk.wav")
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from .base import (
    InvalidKey,
    NoSuchBucket,
    NoSuchObject,
    ObjectInfo,
    ObjectStore,
    Page,
    StoreError,
)
from .keys import check_bucket, check_key
from .local import STATE_DIR, LocalStore
from .watcher import FolderWatcher

ENV_STORE = "KNFLOW_STORE"
ENV_S3_ENDPOINT = "KNFLOW_S3_ENDPOINT"

__all__ = [
    "ENV_S3_ENDPOINT",
    "ENV_STORE",
    "FolderWatcher",
    "InvalidKey",
    "LocalStore",
    "NoSuchBucket",
    "NoSuchObject",
    "ObjectInfo",
    "ObjectStore",
    "Page",
    "S3Store",
    "StoreError",
    "open_store",
    "parse_uri",
]


def open_store(url: str | Path) -> ObjectStore:
    """The store a URL names.

    `file:///abs/dir` (or a plain path) → LocalStore rooted there.
    `s3://?endpoint=http://host:9000&region=us-east-1[&addressing=virtual]` → S3Store; without
    `endpoint`, $KNFLOW_S3_ENDPOINT, else AWS's own endpoints. Credentials come from AWS_* env.
    """
    text = str(url)
    if not text:
        raise StoreError("no object store URL given (expected file:///dir or s3://?endpoint=…)")
    parts = urlsplit(text)
    if parts.scheme in ("", "file"):
        if parts.netloc not in ("", "localhost"):
            raise StoreError(f"store URL {text!r}: file URLs need an absolute path (file:///dir)")
        path = unquote(parts.path)
        if not path:
            raise StoreError(f"store URL {text!r} names no directory")
        return LocalStore(path)
    if parts.scheme == "s3":
        from .s3 import S3Store

        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"endpoint", "region", "addressing"}
        if unknown:
            raise StoreError(f"store URL {text!r}: unknown option(s) {', '.join(sorted(unknown))}")
        return S3Store(
            endpoint=query.get("endpoint") or os.environ.get(ENV_S3_ENDPOINT) or None,
            region=query.get("region") or None,
            path_style=query.get("addressing", "path") != "virtual",
        )
    raise StoreError(f"store URL {text!r}: unsupported scheme '{parts.scheme}' (use file or s3)")


def parse_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of an object URI: `s3://bucket/key`, or a local store's `file://` URI.

    A `file://` URI is resolved against the nearest enclosing local store root (the folder
    holding `.store/`), so event `uri`s from either backend can be opened the same way.
    """
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        bucket, key = parts.netloc, unquote(parts.path.lstrip("/"))
        if parts.query or parts.fragment:  # '?' / '#' are legal key characters
            key += ("?" + parts.query if parts.query else "") + (
                "#" + parts.fragment if parts.fragment else ""
            )
    elif parts.scheme == "file":
        path = Path(unquote(parts.path))
        root = next((p for p in path.parents if (p / STATE_DIR).is_dir()), None)
        if root is None or not path.is_absolute():
            raise InvalidKey(f"{uri!r} is not inside a local object store")
        bucket, _, key = path.relative_to(root).as_posix().partition("/")
    else:
        raise InvalidKey(f"{uri!r} is not an object URI (expected s3://bucket/key)")
    return check_bucket(bucket), check_key(key)


def __getattr__(name: str):
    if name == "S3Store":  # imported lazily: boto3 is heavy and the local path never needs it
        from .s3 import S3Store

        return S3Store
    raise AttributeError(name)
