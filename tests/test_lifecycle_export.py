"""Export: TorchScript and ONNX laid out as a Triton repository, each checked against eager."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lifecycle_helpers import exported, write_repo

from eventing import types
from eventing.events import new_event
from functions import BadInput, FunctionConfig
from functions.export import ExportMismatch, compare, torchscript_bytes
from functions.predict import load_model, open_backend
from functions.train import build_model, checkpoint_bytes, make_recipe, sample_input
from storage import open_store


def test_repository_layout_is_tritons():
    files = exported(trained=False)
    assert set(files) == {
        "digits/config.pbtxt",
        "digits/1/model.pt",
        "digits/1/model.onnx",
        "digits/1/model.json",
    }
    config = files["digits/config.pbtxt"].decode()
    assert 'platform: "onnxruntime_onnx"' in config and "dims: [ 1, 28, 28 ]" in config
    assert "max_batch_size: 256" in config


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_models_compute_what_eager_computes_at_any_batch(fmt):
    torch.manual_seed(0)
    eager = build_model().eval()  # exported() builds the same untrained model with seed 0
    files = exported(trained=False)
    backend = open_backend(fmt, files[f"digits/1/model.{'onnx' if fmt == 'onnx' else 'pt'}"])
    for batch in (1, 17):
        x = sample_input(batch, seed=batch + 10)
        with torch.inference_mode():
            expected = eager(x).numpy()
        assert np.abs(backend.infer(x.numpy()) - expected).max() < 1e-3


def test_a_wrong_export_fails_the_check():
    torch.manual_seed(0)
    a = build_model().eval()
    torch.manual_seed(1)
    b = build_model().eval()
    with pytest.raises(ExportMismatch, match="differs from the eager model"):
        compare(a, "torchscript", torchscript_bytes(b, sample_input(2)), [sample_input(3)], 1e-3)


def test_both_runtimes_load_the_repository(tmp_path):
    root = write_repo(tmp_path, exported(trained=False))
    x = sample_input(4).numpy()
    onnx, script = load_model(root, "digits", "onnx"), load_model(root, "digits", "torchscript")
    assert onnx.backend.format == "onnx" and script.backend.format == "torchscript"
    assert np.array_equal(onnx.predict(x)["label"], script.predict(x)["label"])
    assert onnx.metadata()["inputs"][0]["shape"] == [-1, 1, 28, 28]


@pytest.fixture
def export_fn(data_dir):
    from functions.export import new

    fn = new()
    fn.start(
        FunctionConfig(
            function="export",
            config={"formats": ["torchscript"]},
            store_url=f"file://{data_dir}",
            data_dir=data_dir,
        )
    )
    return fn


def trained_event(key: str, **extra):
    return new_event(
        types.MODEL_TRAINED,
        "/test",
        {"name": "digits", "version": 3, "bucket": "artifacts", "key": key, **extra},
    )


def test_export_function_publishes_the_repository(export_fn, data_dir):
    store = open_store(f"file://{data_dir}")
    store.create_bucket("artifacts")
    torch.manual_seed(0)
    store.put(
        "artifacts",
        "models/digits/3/model.safetensors",
        checkpoint_bytes(build_model().eval(), make_recipe()),
    )
    reply = export_fn.handle(trained_event("models/digits/3/model.safetensors"))
    assert reply.get_type() == types.MODEL_EXPORTED
    data = reply.get_data()
    assert data["formats"] == ["torchscript"] and data["max_abs_diff"]["torchscript"] < 1e-3
    keys = {i.key for i in store.iter_objects("artifacts", "repository/")}
    assert (
        keys
        == {
            "repository/digits/config.pbtxt",
            "repository/digits/3/model.pt",
            "repository/digits/3/model.json",
        }
        == set(data["files"])
    )


@pytest.mark.parametrize(
    "body, message",
    [(None, "not found"), (b"\x80\x04\x95pickle", "safetensors"), (b"", "safetensors")],
)
def test_export_function_refuses_missing_or_unsafe_checkpoints(export_fn, data_dir, body, message):
    store = open_store(f"file://{data_dir}")
    store.create_bucket("artifacts")
    if body is not None:
        store.put("artifacts", "models/digits/3/model.safetensors", body)
    with pytest.raises(BadInput, match=message):
        export_fn.handle(trained_event("models/digits/3/model.safetensors"))
    with pytest.raises(BadInput, match="needs name"):
        export_fn.handle(new_event(types.MODEL_TRAINED, "/test", {"name": "digits"}))
