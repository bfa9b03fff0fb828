"""`knflow upload|ls|get|rm`: move files in and out of the instance's object store.

The store is `--store URL`, else $KNFLOW_STORE, else the running instance's store (from
`<data>/.knflow/instance.json`), else the local store in the data directory itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from storage import ENV_STORE, ObjectInfo, ObjectStore, StoreError, open_store, parse_uri
from storage.files import copy_stream
from storage.keys import check

from ..common import CliError, command, data_dir, emit, table

PROGRESS_MIN = 8 << 20  # transfers at least this large get a progress bar


def register(groups: argparse._SubParsersAction) -> None:
    up = command(groups, "upload", guarded(run_upload), "Upload a file to the object store")
    up.add_argument("file", metavar="FILE", help="the file to upload")
    up.add_argument("--bucket", default="uploads", help="target bucket (default: uploads)")
    up.add_argument("--key", help="object key (default: the file's name)")
    up.add_argument("--content-type", help="content type (default: guessed from the key)")
    up.add_argument(
        "--create-bucket", action="store_true", help="create the bucket if it does not exist"
    )
    ls = command(
        groups, "ls", guarded(run_ls), "List buckets, or the objects in a bucket", output=True
    )
    ls.add_argument("target", nargs="?", metavar="BUCKET[/PREFIX]", help="what to list")
    get = command(groups, "get", guarded(run_get), "Download an object")
    get.add_argument("target", metavar="BUCKET/KEY", help="the object (or s3://bucket/key)")
    get.add_argument(
        "-o", "--output", metavar="FILE", help="where to write it ('-' for stdout; default: ./KEY)"
    )
    rm = command(groups, "rm", guarded(run_rm), "Delete an object")
    rm.add_argument("target", metavar="BUCKET/KEY", help="the object (or s3://bucket/key)")
    for parser in (up, ls, get, rm):
        parser.add_argument(
            "--store",
            metavar="URL",
            help=f"object store URL: file:///dir or s3://?endpoint=… (env {ENV_STORE})",
        )


def guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Store errors become one-line CLI errors (exit 1)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except StoreError as exc:
            raise CliError(str(exc)) from None

    return run


def store_for(args: argparse.Namespace) -> ObjectStore:
    """--store, $KNFLOW_STORE, the running instance's store, or the data directory itself."""
    url = args.store or os.environ.get(ENV_STORE)
    data = data_dir(args)
    if not url:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            url = json.loads((data / ".knflow" / "instance.json").read_text()).get("store_url")
    return open_store(url or f"file://{data}")


def split_target(target: str, need_key: bool) -> tuple[str, str]:
    """`bucket/key`, `bucket/prefix`, `bucket` or `s3://bucket/key` → (bucket, key-or-prefix)."""
    if target.startswith(("s3://", "file://")):
        return parse_uri(target)
    bucket, _, key = target.partition("/")
    if need_key and not key:
        raise CliError(f"'{target}' names no object: expected BUCKET/KEY")
    return bucket, key


@contextlib.contextmanager
def progress_bar(size: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A tqdm bar on stderr for large transfers; yields the store's progress callback."""
    if size < PROGRESS_MIN:
        yield None
        return
    from tqdm import tqdm

    with tqdm(
        total=size, desc=label, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr
    ) as bar:
        yield lambda done: bar.update(done - bar.n)


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def age(timestamp: float) -> str:
    """kn's AGE column: the largest whole unit."""
    seconds = max(0, int(time.time() - timestamp))
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds // span}{unit}"
    return f"{seconds}s"


def as_dict(store: ObjectStore, info: ObjectInfo) -> dict:
    return {
        "bucket": info.bucket,
        "key": info.key,
        "size": info.size,
        "etag": info.etag,
        "contentType": info.content_type,
        "lastModified": datetime.fromtimestamp(info.last_modified, UTC).isoformat(),
        "uri": store.uri(info.bucket, info.key),
    }


def run_upload(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if path.is_dir():
        raise CliError(f"cannot upload {path}: it is a directory")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    key = args.key or path.name
    check(args.bucket, key)  # refuse a bad name before any byte moves
    store = store_for(args)
    if args.create_bucket:
        store.create_bucket(args.bucket)
    elif args.bucket not in store.list_buckets():
        raise CliError(
            f"bucket '{args.bucket}' does not exist (run `knflow up`, or add --create-bucket)"
        )
    with progress_bar(size, f"upload {path.name}") as progress:
        info = store.put(args.bucket, key, path, content_type=args.content_type, progress=progress)
    print(
        f"Object '{key}' uploaded to bucket '{args.bucket}' "
        f"({human(info.size)}, etag {info.etag}): {store.uri(args.bucket, key)}"
    )
    return 0


def run_ls(args: argparse.Namespace) -> int:
    store = store_for(args)
    if not args.target:
        buckets = store.list_buckets()
        if not emit([{"name": b} for b in buckets], args.output):
            if buckets:
                table([[b] for b in buckets], ["name"])
            else:
                print("No buckets found.")
        return 0
    bucket, prefix = split_target(args.target, need_key=False)
    objects = list(store.iter_objects(bucket, prefix))
    if not emit([as_dict(store, o) for o in objects], args.output):
        if objects:
            rows = [[o.key, human(o.size), o.content_type, age(o.last_modified)] for o in objects]
            table(rows, ["key", "size", "type", "age"])
        else:
            where = f"bucket '{bucket}'" + (f" under '{prefix}'" if prefix else "")
            print(f"No objects found in {where}.")
    return 0


def run_get(args: argparse.Namespace) -> int:
    bucket, key = split_target(args.target, need_key=True)
    store = store_for(args)
    if args.output == "-":
        with store.open(bucket, key) as src:
            copy_stream(src, sys.stdout.buffer)
        sys.stdout.flush()
        return 0
    out = Path(args.output) if args.output else Path(key.rpartition("/")[2])
    if out.is_dir():
        out = out / key.rpartition("/")[2]
    if not out.parent.is_dir():
        raise CliError(f"cannot write {out}: folder {out.parent} does not exist")
    info = store.head(bucket, key)
    with progress_bar(info.size, f"get {key.rpartition('/')[2]}") as progress:
        info = store.download(bucket, key, out, progress=progress)
    print(f"Object '{key}' downloaded from bucket '{bucket}' to {out} ({human(info.size)}).")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    bucket, key = split_target(args.target, need_key=True)
    store_for(args).delete(bucket, key)
    print(f"Object '{key}' deleted from bucket '{bucket}'.")
    return 0
