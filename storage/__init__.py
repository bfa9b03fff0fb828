"""The object store: a local directory (the embedded default) or any S3/MinIO endpoint, with
S3-format notifications for every create and delete."""

from .base import (
    InvalidKey,
    NoSuchBucket,
    NoSuchObject,
    ObjectInfo,
    ObjectStore,
    Page,
    StoreError,
)

__all__ = [
    "InvalidKey",
    "NoSuchBucket",
    "NoSuchObject",
    "ObjectInfo",
    "ObjectStore",
    "Page",
    "StoreError",
]
