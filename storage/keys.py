"""Bucket-name, object-key and user-metadata validation shared by every backend.

The rules are S3's, tightened where a key must also be a safe relative path under the local
store's root: a key that S3 would accept but that could escape the bucket folder, collide with
another key once mapped to a file, or hide among other programs' temporary files is refused too.
Both backends apply the same rules, so a pipeline that works locally works against MinIO.
"""

from __future__ import annotations

import re

from .base import InvalidKey

MAX_KEY_BYTES = 1024  # S3's limit on the UTF-8 encoding of a key
MAX_SEGMENT_BYTES = 255  # NAME_MAX: one path segment must fit a file name
MAX_METADATA_BYTES = 2048  # S3's limit on user metadata (names + values)

_BUCKET_CHARS = re.compile(r"[a-z0-9.-]+")
_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_META_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def check_bucket(bucket: str) -> str:
    """Return `bucket` if it is a valid S3 (DNS-style) bucket name, else raise InvalidKey."""
    if not isinstance(bucket, str) or not bucket:
        raise InvalidKey("bucket name is empty")
    shown = repr(bucket)
    if bucket.startswith("."):
        raise InvalidKey(f"bucket name {shown} starts with '.': such names are reserved")
    if not 3 <= len(bucket) <= 63:
        raise InvalidKey(f"bucket name {shown} must be 3 to 63 characters long")
    if not _BUCKET_CHARS.fullmatch(bucket):
        raise InvalidKey(
            f"bucket name {shown} may contain only lower-case letters, digits, '.' and '-'"
        )
    if not (bucket[0].isalnum() and bucket[-1].isalnum()):
        raise InvalidKey(f"bucket name {shown} must start and end with a letter or digit")
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        raise InvalidKey(f"bucket name {shown} has an empty or malformed DNS label")
    if _IPV4.fullmatch(bucket):
        raise InvalidKey(f"bucket name {shown} looks like an IP address")
    if bucket.startswith(("xn--", "sthree-")) or bucket.endswith(("-s3alias", "--ol-s3")):
        raise InvalidKey(f"bucket name {shown} uses a prefix or suffix S3 reserves")
    return bucket


def check_key(key: str) -> str:
    """Return `key` if it is a valid object key, else raise InvalidKey naming the problem."""
    if not isinstance(key, str) or not key:
        raise InvalidKey("object key is empty")
    shown = repr(key) if len(key) <= 80 else repr(key[:77] + "...")
    for ch in key:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            what = "NUL" if ch == "\0" else f"control character U+{ord(ch):04X}"
            raise InvalidKey(f"object key {shown} contains a {what}")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKey(f"object key {shown} is not valid Unicode text") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise InvalidKey(
            f"object key {shown} is {len(encoded)} bytes long; the limit is {MAX_KEY_BYTES} bytes"
        )
    if key.startswith("/"):
        raise InvalidKey(f"object key {shown} is an absolute path; keys are relative")
    if key.endswith("/"):
        raise InvalidKey(f"object key {shown} ends with '/': that names a folder, not an object")
    for segment in key.split("/"):
        if segment in (".", ".."):
            raise InvalidKey(f"object key {shown} contains a '{segment}' path segment")
        if not segment:
            raise InvalidKey(f"object key {shown} contains an empty path segment ('//')")
        if segment.startswith("."):
            raise InvalidKey(
                f"object key {shown}: segment {segment!r} starts with '.'; such names are "
                "reserved for other programs' temporary files"
            )
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidKey(
                f"object key {shown}: a path segment is longer than {MAX_SEGMENT_BYTES} bytes"
            )
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: any leading part of a valid key (may end with '/', may be empty)."""
    if prefix:
        trimmed = prefix.rstrip("/")
        if not trimmed or "//" in prefix:
            raise InvalidKey(f"prefix {prefix!r} contains an empty path segment")
        check_key(trimmed)
    return prefix


def check_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """User metadata as S3 stores it: lower-case names, printable ASCII values, ≤ 2 KiB."""
    out: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        lowered = str(name).lower()
        if not _META_NAME.fullmatch(lowered):
            raise InvalidKey(f"metadata name {name!r} may contain only letters, digits, '-', '_'")
        if not isinstance(value, str) or not all(0x20 <= ord(c) < 0x7F for c in value):
            raise InvalidKey(f"metadata {name!r} must be printable ASCII text")
        out[lowered] = value
    if sum(len(k) + len(v) for k, v in out.items()) > MAX_METADATA_BYTES:
        raise InvalidKey(f"user metadata is larger than {MAX_METADATA_BYTES} bytes")
    return out


def check(bucket: str, key: str) -> None:
    """Validate a bucket/key pair (the usual entry point of every store operation)."""
    check_bucket(bucket)
    check_key(key)
