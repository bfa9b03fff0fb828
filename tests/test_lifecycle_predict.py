"""The predict service: Open Inference Protocol (V2) over real HTTP from the function runtime
(gunicorn, its own process), the CloudEvent path, and the `knflow infer` client."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
from conftest import run_cli
from lifecycle_helpers import exported, runtime, write_repo

from eventing import types
from eventing.events import new_event
from eventing.http import to_http
from functions import FunctionConfig
from functions.predict import ModelError, load_model, request_body
from functions.predict.v2 import output_array
from functions.train import digits_dataset


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The trained digits model exported and served by a real runtime process."""
    root = tmp_path_factory.mktemp("predict")
    repo = write_repo(root / "repo", exported(trained=True))
    with runtime(
        "predict",
        root,
        {"KNFLOW_MODEL_DIR": str(repo)},
        config=json.dumps({"model_name": "digits"}),
    ) as url:
        yield url, repo


def infer(url: str, body, **kw) -> requests.Response:
    return requests.post(f"{url}/v2/models/digits/infer", json=body, timeout=60, **kw)


def test_health_and_model_metadata(server):
    url, _ = server
    assert requests.get(f"{url}/v2/health/live").json() == {"live": True}
    assert requests.get(f"{url}/v2/health/ready").json() == {"ready": True}
    meta = requests.get(f"{url}/v2/models/digits").json()
    assert meta["name"] == "digits" and meta["versions"] == ["1"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert requests.get(f"{url}/v2/models/digits/ready").json() == {"name": "digits", "ready": True}
    missing = requests.get(f"{url}/v2/models/cats")
    assert missing.status_code == 404 and "not served here" in missing.json()["error"]


def test_held_out_digits_are_classified_over_http(server):
    url, _ = server
    data = digits_dataset()
    x, y = data.test_x.numpy(), data.test_y.numpy()
    labels = []
    for i in range(0, len(y), 200):
        resp = infer(url, request_body(x[i : i + 200], id=f"batch-{i}"))
        assert resp.status_code == 200, resp.text
        doc = resp.json()
        assert doc["id"] == f"batch-{i}" and doc["model_name"] == "digits"
        logits = output_array(doc, "logits")
        assert logits.shape == (len(x[i : i + 200]), 10)
        labels.append(output_array(doc, "label"))
    accuracy = float((np.concatenate(labels) == y).mean())
    assert accuracy >= 0.95


def test_inputs_may_be_uint8_pixels_and_flat(server):
    url, _ = server
    x = digits_dataset().test_x[:4].numpy()
    as_float = output_array(infer(url, request_body(x)).json(), "label")
    pixels = (x * 255).round().astype(np.uint8).reshape(4, 784)
    as_pixels = output_array(infer(url, request_body(pixels)).json(), "label")
    assert np.array_equal(as_float, as_pixels)
    only = infer(url, {**request_body(x), "outputs": [{"name": "label"}]}).json()
    assert [o["name"] for o in only["outputs"]] == ["label"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({}, "'inputs' must be a non-empty list"),
        ({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32"}]}, "missing data"),
        (
            {
                "inputs": [
                    {"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [0.5] * 10}
                ]
            },
            "needs 784 values",
        ),
        (
            {"inputs": [{"name": "input", "shape": [1, 5], "datatype": "FP32", "data": [0] * 5}]},
            "does not fit",
        ),
        (
            {"inputs": [{"name": "input", "shape": [1, 784], "datatype": "COMPLEX", "data": [0]}]},
            "unsupported datatype",
        ),
        (
            {
                "inputs": [
                    {"name": "input", "shape": [1, 784], "datatype": "FP32", "data": ["x"] * 784}
                ]
            },
            "not FP32",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, 784],
                        "datatype": "FP32",
                        "data": [float("nan")] * 784,
                    }
                ]
            },
            "NaN",
        ),
        (
            {**request_body(np.zeros((1, 784), np.float32)), "outputs": [{"name": "x"}]},
            "unknown output",
        ),
    ],
)
def test_bad_requests_get_400_with_the_reason(server, body, message):
    url, _ = server
    resp = requests.post(
        f"{url}/v2/models/digits/infer",
        data=json.dumps(body, allow_nan=True),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert resp.status_code == 400 and message in resp.json()["error"], resp.text


def test_non_json_body_is_400(server):
    url, _ = server
    resp = requests.post(f"{url}/v2/models/digits/infer", data=b"\x00\x01", timeout=30)
    assert resp.status_code == 400 and "JSON" in resp.json()["error"]


def test_cloudevent_path_replies_inference_completed(server):
    url, _ = server
    x = digits_dataset().test_x[:2].numpy()
    event = new_event(types.INFERENCE_REQUESTED, "/test", {"model": "digits", **request_body(x)})
    headers, body = to_http(event)
    resp = requests.post(url, data=body, headers=headers, timeout=60)
    assert resp.status_code == 200 and resp.headers["ce-type"] == types.INFERENCE_COMPLETED
    assert output_array(resp.json(), "label").shape == (2,)
    bad = new_event(types.INFERENCE_REQUESTED, "/test", {"model": "digits", "inputs": []})
    headers, body = to_http(bad)
    refused = requests.post(url, data=body, headers=headers, timeout=60)
    assert refused.status_code == 422 and "inputs" in refused.text


def test_torchscript_and_onnx_runtimes_agree(server):
    _, repo = server
    x = digits_dataset().test_x[:32].numpy()
    onnx, script = load_model(repo, "digits", "onnx"), load_model(repo, "digits", "torchscript")
    assert np.array_equal(onnx.predict(x)["label"], script.predict(x)["label"])
    assert np.abs(onnx.predict(x)["logits"] - script.predict(x)["logits"]).max() < 1e-3


def test_a_refused_or_broken_model_fails_start(tmp_path, monkeypatch):
    from functions.predict import new

    cfg = FunctionConfig(function="predict", data_dir=tmp_path)
    monkeypatch.setenv("KNFLOW_MODEL_ERROR", "digits.pt is a Python pickle: refused")
    with pytest.raises(ModelError, match="pickle"):
        new().start(cfg)
    monkeypatch.delenv("KNFLOW_MODEL_ERROR")
    broken = write_repo(
        tmp_path / "repo",
        {**exported(trained=False), "digits/1/model.onnx": b"\x08\x07garbage" * 4},
    )
    monkeypatch.setenv("KNFLOW_MODEL_DIR", str(broken))
    with pytest.raises(ModelError, match="does not load"):
        new().start(cfg)


# ---- the client ----------------------------------------------------------------------------------
def test_knflow_infer_prints_latency_and_labels(server, tmp_path):
    from PIL import Image

    url, _ = server
    data = digits_dataset()
    digit = data.test_x[0, 0].numpy()
    # a photo-like PNG: dark ink on white paper, larger than 28x28
    Image.fromarray(((1 - digit) * 255).astype(np.uint8)).resize((112, 112)).save(
        tmp_path / "digit.png"
    )
    np.save(tmp_path / "batch.npy", data.test_x[:3].numpy())
    (tmp_path / "one.json").write_text(json.dumps(data.test_x[1, 0].tolist()))
    out = run_cli("infer", "digits", "--input", str(tmp_path / "digit.png"), "--url", url)
    assert out.returncode == 0, out.stderr
    assert "answered in" in out.stdout and " ms" in out.stdout
    assert out.stdout.splitlines()[2].split()[1] == str(int(data.test_y[0]))
    npy = run_cli("infer", "digits", "-i", str(tmp_path / "batch.npy"), "--url", url)
    assert [line.split()[1] for line in npy.stdout.splitlines()[2:]] == [
        str(int(v)) for v in data.test_y[:3]
    ]
    js = run_cli("infer", "digits", "-i", str(tmp_path / "one.json"), "--url", url, "-o", "json")
    doc = json.loads(js.stdout)
    assert doc["latency_ms"] > 0 and doc["response"]["model_name"] == "digits"


def test_knflow_infer_reports_bad_input_in_one_line(server, tmp_path):
    url, _ = server
    (tmp_path / "junk.png").write_bytes(b"not an image")
    (tmp_path / "bad.npy").write_bytes(b"nope")
    (tmp_path / "one.json").write_text(json.dumps([[0.0] * 28] * 28))
    cases = [
        (["-i", str(tmp_path / "missing.png"), "--url", url], "cannot read"),
        (["-i", str(tmp_path / "junk.png"), "--url", url], "not a readable image"),
        (["-i", str(tmp_path / "bad.npy"), "--url", url], ".npy"),
        (["-i", str(tmp_path / "one.json"), "--url", "http://127.0.0.1:9"], "cannot reach"),
    ]
    for args, message in cases:
        out = run_cli("infer", "digits", *args)
        assert out.returncode == 1 and message in out.stderr, out.stderr
        assert out.stderr.startswith("Error: ") and "Traceback" not in out.stderr
    wrong = run_cli("infer", "cats", "-i", str(tmp_path / "missing.png"), "--url", url)
    assert wrong.returncode == 1
