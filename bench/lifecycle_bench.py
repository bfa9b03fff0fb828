"""Lifecycle benchmark: V2 inference through the serving runtime against the same exported model
called in-process (overhead ratio), and TorchScript against ONNX Runtime, at batch 1 and 32.

    .venv/bin/python bench/lifecycle_bench.py [--repeat N]

Weights are untrained (ResNet-18 for 1x28x28 digits, exported as in production): the figures
are timings only. Every runtime gets one thread, measured side by side in this one run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import requests  # noqa: E402
import torch  # noqa: E402

from functions.export import export_model  # noqa: E402
from functions.predict import load_model, request_body  # noqa: E402
from functions.train import build_model, make_recipe  # noqa: E402

BATCHES = (1, 32)


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@contextlib.contextmanager
def serving_runtime(repo: Path, runtime: str):
    """The predict function under the shared runtime (gunicorn), as every replica runs it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "KNFLOW_FUNCTION": "predict",
        "KNFLOW_MODEL_DIR": str(repo),
        "KNFLOW_CONFIG": f'{{"runtime": "{runtime}"}}',
        "KNFLOW_DATA": str(repo.parent),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "KNFLOW_CONTAINER_CONCURRENCY": "4",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "functions.runtime"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/health/readiness", timeout=2).ok:
                    break
            if proc.poll() is not None:
                raise SystemExit("the predict runtime exited during start")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per figure (30)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    recipe = make_recipe()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        print("exporting ResNet-18 (untrained weights) to TorchScript and ONNX …", flush=True)
        for rel, data in export_model(
            build_model(recipe).eval(), recipe, "digits", 1
        ).files.items():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_bytes(data)
        models = {fmt: load_model(repo, "digits", fmt) for fmt in ("onnx", "torchscript")}
        inputs = {
            b: np.random.default_rng(b).random((b, 1, 28, 28), dtype=np.float32) for b in BATCHES
        }
        local = {
            (fmt, b): median_ms(lambda m=m, b=b: m.predict(inputs[b]), args.repeat)
            for fmt, m in models.items()
            for b in BATCHES
        }
        remote = {}
        for fmt in models:
            with serving_runtime(repo, fmt) as url, requests.Session() as http:
                for b in BATCHES:
                    body = request_body(inputs[b])

                    def call(http=http, url=url, body=body):
                        resp = http.post(f"{url}/v2/models/digits/infer", json=body, timeout=60)
                        resp.raise_for_status()

                    remote[(fmt, b)] = median_ms(call, args.repeat)
    print(
        f"\nload average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
        f"median of {args.repeat} calls; one thread per runtime\n"
    )
    print(
        f"{'runtime':12} {'batch':>5} {'in-process ms':>14} {'V2 HTTP ms':>11} {'overhead x':>11}"
    )
    for fmt in models:
        for b in BATCHES:
            lo, re = local[(fmt, b)], remote[(fmt, b)]
            print(f"{fmt:12} {b:>5} {lo:>14.2f} {re:>11.2f} {re / lo:>11.2f}")
    print()
    for b in BATCHES:
        ratio = local[("torchscript", b)] / local[("onnx", b)]
        print(
            f"batch {b:>2}: TorchScript / ONNX Runtime (in-process) = {ratio:.2f}x; "
            f"per image ONNX {local[('onnx', b)] / b:.2f} ms, "
            f"TorchScript {local[('torchscript', b)] / b:.2f} ms"
        )


if __name__ == "__main__":
    main()
