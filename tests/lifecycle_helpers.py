"""Shared pieces of the lifecycle tests: one trained model per test session (training is the
slow part), exported once, and a real function runtime process on a free loopback port."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
import torch
from conftest import knflow_env

from eventing import types
from eventing.events import new_event

# Keep CPU use low: the machine is shared.
torch.set_num_threads(1)

FAST = {"epochs": 2, "batch_size": 32, "lr": 0.05, "seed": 0, "threads": 1}


@functools.cache
def trained_digits():
    """ResNet-18 trained on the digits' training split (≥ 0.95 held-out): (model, metrics)."""
    from functions.train import TrainParams, train_model

    return train_model(TrainParams(name="digits", **FAST))


@functools.cache
def exported(name: str = "digits", trained: bool = True):
    """Repository files {relative path: bytes} for the trained (or an untrained) model."""
    from functions.export import export_model
    from functions.train import build_model, make_recipe

    if trained:
        model, metrics = trained_digits()
        recipe = metrics["recipe"]
    else:
        torch.manual_seed(0)
        recipe = make_recipe()
        model = build_model(recipe).eval()
    return export_model(model, recipe, name, 1).files


def write_repo(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def object_event(store, bucket: str, key: str, id: str | None = None):
    """The `dev.knflow.object.created` event the store source emits for (bucket, key)."""
    info = store.head(bucket, key)
    data = {
        "bucket": bucket,
        "key": key,
        "size": info.size,
        "etag": info.etag,
        "uri": store.uri(bucket, key),
    }
    return new_event(
        types.OBJECT_CREATED,
        f"/knflow/storage/{bucket}",
        data,
        subject=key,
        id=id or f"{bucket}/{key}/{info.etag}",
        bucket=bucket,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def runtime(
    function: str,
    data_dir: Path,
    env: dict[str, str] | None = None,
    config: str = "{}",
    timeout: float = 90,
):
    """`python -m functions.runtime` for `function` (gunicorn, a real process) → its URL."""
    port = free_port()
    extra = {
        "KNFLOW_FUNCTION": function,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "KNFLOW_CONFIG": config,
        "KNFLOW_DATA": str(data_dir),
        "KNFLOW_STORE": f"file://{data_dir}",
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    log = open(data_dir / f"{function}-{port}.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "functions.runtime"],
        env=knflow_env(**extra),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"runtime exited: {(data_dir / log.name).read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/health/readiness", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"runtime not ready: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


def torch_save_bytes_for_upload() -> bytes:
    """What `torch.save(state_dict, "model.pt")` writes: a zip of pickles."""
    import io

    buffer = io.BytesIO()
    torch.save({"fc.weight": torch.ones(10, 512)}, buffer)
    return buffer.getvalue()
