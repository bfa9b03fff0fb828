"""The S3 backend (MinIO in a cluster, or any S3 endpoint), on boto3.

Credentials come only from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional
AWS_SESSION_TOKEN), never from files or instance metadata, and never appear in a repr, log line
or error message. Large objects move as multipart transfers (boto3's TransferConfig), so memory
stays bounded; notifications come from the server itself (MinIO webhook → eventing source).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from . import keys
from .base import (
    Body,
    NoSuchBucket,
    NoSuchObject,
    ObjectInfo,
    ObjectStore,
    Page,
    Progress,
    StoreError,
)
from .etag import MULTIPART_THRESHOLD, PART_SIZE
from .files import open_body
from .local import guess_type

_MISSING_OBJECT = {"NoSuchKey", "404", "NotFound"}
_MISSING_BUCKET = {"NoSuchBucket"}


class S3Store(ObjectStore):
    """Buckets on an S3-protocol endpoint (path-style addressing by default, as MinIO wants)."""

    def __init__(
        self,
        endpoint: str | None = None,
        region: str | None = None,
        *,
        path_style: bool = True,
        transfer: TransferConfig | None = None,
        attempts: int = 5,
    ):
        self.endpoint = endpoint
        self.region = region or os.environ.get("AWS_REGION") or "us-east-1"
        access = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not access or not secret:
            raise StoreError(
                "S3 credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        session = boto3.session.Session(
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            aws_session_token=os.environ.get("AWS_SESSION_TOKEN") or None,
            region_name=self.region,
        )
        self.client = session.client(
            "s3",
            endpoint_url=endpoint,
            config=Config(
                s3={"addressing_style": "path" if path_style else "virtual"},
                signature_version="s3v4",
                retries={"max_attempts": attempts, "mode": "standard"},
                max_pool_connections=16,
            ),
        )
        # boto3's defaults, shared with the local store's etags (see storage.etag).
        self.transfer = transfer or TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=PART_SIZE
        )

    def __repr__(self) -> str:
        return f"S3Store(endpoint={self.endpoint!r}, region={self.region!r})"

    # ----------------------------------------------------------------- errors
    @contextlib.contextmanager
    def _errors(self, bucket: str, key: str | None = None) -> Iterator[None]:
        """Turn botocore's exceptions into the store's, with messages a user can act on."""
        where = f"'{bucket}/{key}'" if key else f"bucket '{bucket}'"
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _MISSING_BUCKET:
                raise NoSuchBucket(f"bucket '{bucket}' does not exist at {self._at}") from None
            if code in _MISSING_OBJECT and key is not None:
                if code != "NoSuchKey" and not self._bucket_exists(bucket):
                    raise NoSuchBucket(f"bucket '{bucket}' does not exist at {self._at}") from None
                raise NoSuchObject(f"object '{key}' does not exist in bucket '{bucket}'") from None
            message = error.get("Message") or code
            raise StoreError(f"S3 refused {where} at {self._at}: {code}: {message}") from None
        except EndpointConnectionError:
            raise StoreError(f"cannot reach the S3 endpoint {self._at}") from None
        except BotoCoreError as exc:
            raise StoreError(f"S3 request for {where} failed: {exc}") from None
        except OSError as exc:  # reading the local side of an upload (or writing a download)
            raise StoreError(f"transfer of {where} failed: {exc.strerror or exc}") from None

    @property
    def _at(self) -> str:
        return self.endpoint or f"AWS S3 ({self.region})"

    def _bucket_exists(self, bucket: str) -> bool:
        try:
            self.client.head_bucket(Bucket=bucket)
        except ClientError:
            return False
        return True

    # ----------------------------------------------------------------- objects
    def put(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> ObjectInfo:
        keys.check(bucket, key)
        extra = {
            "ContentType": content_type or guess_type(key),
            "Metadata": keys.check_metadata(metadata),
        }
        size = _size_of(body)
        with self._errors(bucket, key):
            if size is not None and size < self.transfer.multipart_threshold:
                # One request, whose reply carries the ETag: no HEAD needed.
                with open_body(body) as stream:
                    payload = body if isinstance(body, bytes) else stream  # bytes: sent as is
                    reply = self.client.put_object(Bucket=bucket, Key=key, Body=payload, **extra)
                if progress is not None:
                    progress(size)
                return ObjectInfo(
                    bucket,
                    key,
                    size,
                    reply["ETag"].strip('"'),
                    extra["ContentType"],
                    extra["Metadata"],
                    time.time(),
                )
            callback = _Counter(progress) if progress is not None else None
            if isinstance(body, Path):
                self.client.upload_file(
                    str(body), bucket, key, ExtraArgs=extra, Config=self.transfer, Callback=callback
                )
            else:
                with open_body(body) as stream:
                    self.client.upload_fileobj(
                        stream,
                        bucket,
                        key,
                        ExtraArgs=extra,
                        Config=self.transfer,
                        Callback=callback,
                    )
        return self.head(bucket, key)

    def open(self, bucket: str, key: str) -> BinaryIO:
        keys.check(bucket, key)
        with self._errors(bucket, key):
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        return io.BufferedReader(_BodyReader(body, self, bucket, key), buffer_size=1 << 20)

    def get(self, bucket: str, key: str) -> bytes:
        keys.check(bucket, key)
        with self._errors(bucket, key):
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def head(self, bucket: str, key: str) -> ObjectInfo:
        keys.check(bucket, key)
        with self._errors(bucket, key):
            reply = self.client.head_object(Bucket=bucket, Key=key)
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=reply["ContentLength"],
            etag=reply["ETag"].strip('"'),
            content_type=reply.get("ContentType") or "application/octet-stream",
            metadata=dict(reply.get("Metadata") or {}),
            last_modified=reply["LastModified"].timestamp(),
        )

    def list(
        self, bucket: str, prefix: str = "", *, token: str | None = None, limit: int = 1000
    ) -> Page:
        """One page of keys (S3 order); `content_type`/`metadata` need a head() per object."""
        keys.check_bucket(bucket)
        keys.check_prefix(prefix)
        args = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": max(1, min(limit, 1000))}
        if token:
            args["ContinuationToken"] = token
        with self._errors(bucket):
            reply = self.client.list_objects_v2(**args)
        objects = [
            ObjectInfo(
                bucket=bucket,
                key=item["Key"],
                size=item["Size"],
                etag=item["ETag"].strip('"'),
                content_type=guess_type(item["Key"]),
                last_modified=item["LastModified"].timestamp(),
            )
            for item in reply.get("Contents", [])
        ]
        more = reply.get("IsTruncated") and reply.get("NextContinuationToken")
        return Page(objects, more or None)

    def delete(self, bucket: str, key: str) -> None:
        """Delete an object; unlike raw S3, a missing object is an error (NoSuchObject)."""
        self.head(bucket, key)
        with self._errors(bucket, key):
            self.client.delete_object(Bucket=bucket, Key=key)

    def uri(self, bucket: str, key: str) -> str:
        keys.check(bucket, key)
        return f"s3://{bucket}/{key}"

    def create_bucket(self, bucket: str) -> None:
        keys.check_bucket(bucket)
        args: dict = {"Bucket": bucket}
        if self.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            with self._errors(bucket):
                self.client.create_bucket(**args)
        except StoreError as exc:
            if "BucketAlreadyOwnedByYou" not in str(exc):
                raise

    def list_buckets(self) -> list[str]:
        with self._errors("*"):
            reply = self.client.list_buckets()
        return sorted(b["Name"] for b in reply.get("Buckets", []))

    def _read_into(self, bucket: str, key: str, dst: BinaryIO, progress: Progress | None) -> None:
        """Download with ranged, parallel GETs for large objects (boto3's transfer manager)."""
        with self._errors(bucket, key):
            self.client.download_fileobj(
                bucket,
                key,
                dst,
                Config=self.transfer,
                Callback=_Counter(progress) if progress is not None else None,
            )


def _size_of(body: Body) -> int | None:
    if isinstance(body, bytes | bytearray | memoryview):
        return len(body)
    if isinstance(body, Path):
        try:
            return body.stat().st_size
        except OSError as exc:
            raise StoreError(f"cannot read {body}: {exc.strerror}") from None
    return None


class _Counter:
    """boto3 reports increments; the store's progress callbacks take running totals."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.total = 0

    def __call__(self, increment: int) -> None:
        self.total += increment
        self.progress(self.total)


class _BodyReader(io.RawIOBase):
    """A botocore StreamingBody as a raw stream, so it can sit under an io.BufferedReader."""

    def __init__(self, body, store: S3Store, bucket: str, key: str):
        self.body = body
        self.where = (store, bucket, key)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        store, bucket, key = self.where
        with store._errors(bucket, key):
            data = self.body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.body.close()
        super().close()
