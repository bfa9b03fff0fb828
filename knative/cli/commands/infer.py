"""`knflow infer MODEL --input FILE [--url URL]`: one Open Inference Protocol (V2) request."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import requests

from ..common import CliError, command, data_dir, emit, table


def register(groups: argparse._SubParsersAction) -> None:
    parser = command(
        groups,
        "infer",
        run,
        "Send an image or tensor to a model's V2 endpoint and print the prediction",
        output=True,
    )
    parser.add_argument("model", help="model name (e.g. digits)")
    parser.add_argument(
        "--input",
        "-i",
        required=True,
        metavar="FILE",
        help="an image (PNG/JPEG…), a .npy array, or a .json tensor or V2 request",
    )
    parser.add_argument("--url", help="the server's base URL (default: the running instance's)")
    parser.add_argument(
        "--service", default="predict", help="service to ask when --url is not given (predict)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (60)")


def run(args: argparse.Namespace) -> int:
    from functions.predict.v2 import ProtocolError, load_input_file, output_array

    path = Path(args.input)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    try:
        body = load_input_file(path.name, raw)
    except ProtocolError as exc:
        raise CliError(str(exc)) from None
    url = (args.url or _service_url(args)).rstrip("/")
    endpoint = f"{url}/v2/models/{args.model}/infer"
    started = time.perf_counter()
    try:
        resp = requests.post(endpoint, json=body, timeout=args.timeout)
    except requests.RequestException as exc:
        raise CliError(f"cannot reach {endpoint}: {exc}") from None
    latency_ms = (time.perf_counter() - started) * 1000
    try:
        doc = resp.json()
    except ValueError:
        doc = {"error": resp.text.strip()[:300]}
    if resp.status_code != 200:
        raise CliError(f"{endpoint} answered {resp.status_code}: {doc.get('error', doc)}")
    if emit({"latency_ms": round(latency_ms, 2), "response": doc}, args.output):
        return 0
    print(
        f"Model '{doc.get('model_name')}' version {doc.get('model_version')} answered "
        f"in {latency_ms:.1f} ms"
    )
    try:
        labels = output_array(doc, "label").reshape(-1)
    except ProtocolError:
        print("(no 'label' output; use -o json to see the raw response)")
        return 0
    try:
        probs = output_array(doc, "probabilities")
        confidence = probs.max(axis=1)
    except ProtocolError:
        confidence = np.full(len(labels), np.nan)
    rows = [
        [i, int(label), f"{p:.3f}"]
        for i, (label, p) in enumerate(zip(labels, confidence, strict=True))
    ]
    table(rows, ["input", "label", "probability"])
    return 0


def _service_url(args: argparse.Namespace) -> str:
    from knative.instance import Instance, NotRunning

    try:
        instance = Instance.load(data_dir(args))
    except NotRunning as exc:
        raise CliError(f"{exc}; or pass --url") from None
    if args.service not in instance.services:
        raise CliError(
            f"service {args.service!r} is not running (have: "
            f"{', '.join(sorted(instance.services))})"
        )
    return instance.services[args.service]
