"""Training: the pure API (metrics, per-epoch callback, pruning), data (digits, MNIST idx),
checkpoints (safetensors + recipe) and the `train` function on a real local store."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from lifecycle_helpers import FAST, object_event, trained_digits

from eventing import types
from eventing.events import new_event
from functions import BadInput, FunctionConfig
from functions.train import (
    TrainParams,
    build_model,
    checkpoint_bytes,
    digits_dataset,
    evaluate,
    load_checkpoint,
    mnist_dataset,
    parse_idx,
    train_model,
)
from functions.train.data import write_idx
from storage import open_store

TINY = {"epochs": 1, "batch_size": 32, "limit": 96, "threads": 1}


def test_resnet18_is_adapted_to_one_channel_digits():
    model = build_model().eval()
    assert model.conv1.in_channels == 1 and model.fc.out_features == 10
    assert sum(p.numel() for p in model.parameters()) > 11_000_000  # the real ResNet-18
    with torch.inference_mode():
        assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_digits_are_real_resized_and_split_the_same_way_every_time():
    a, b = digits_dataset(), digits_dataset()
    assert a.train_x.shape[1:] == (1, 28, 28) and len(a.train_y) + len(a.test_y) == 1797
    assert torch.equal(a.test_y, b.test_y) and torch.equal(a.test_x, b.test_x)
    assert float(a.train_x.min()) >= 0.0 and float(a.train_x.max()) <= 1.0
    assert set(a.test_y.tolist()) == set(range(10))  # stratified: every class held out


def test_trained_model_reaches_095_on_held_out_digits():
    model, metrics = trained_digits()
    data = digits_dataset()
    assert metrics["accuracy"] >= 0.95, metrics["history"]
    assert evaluate(model, data.test_x, data.test_y)["accuracy"] == pytest.approx(
        metrics["accuracy"]
    )
    assert [h["epoch"] for h in metrics["history"]] == list(range(1, FAST["epochs"] + 1))
    assert metrics["held_out_size"] == 360 and metrics["recipe"]["arch"] == "resnet18"


def test_callback_sees_every_epoch_and_can_stop_or_prune():
    seen = []
    _, metrics = train_model(
        TrainParams(**{**TINY, "epochs": 3}), progress=lambda m: seen.append(m) or len(seen) == 2
    )
    assert [m["epoch"] for m in seen] == [1, 2] and metrics["epochs"] == 2
    assert {"train_loss", "val_accuracy", "val_loss"} <= set(seen[0])

    class Pruned(Exception):
        pass

    def prune(_metrics):
        raise Pruned

    with pytest.raises(Pruned):
        train_model(TrainParams(**TINY), progress=prune)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"epochs": 0}, "epochs"),
        ({"lr": -1}, "lr"),
        ({"batch_size": "many"}, "batch_size"),
        ({"name": "../etc"}, "name"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"recipe": {"arch": "vgg"}}, "arch"),
    ],
)
def test_bad_hyperparameters_are_named(raw, message):
    with pytest.raises(ValueError, match=message):
        TrainParams.from_mapping(raw)


def test_event_values_override_service_config():
    params = TrainParams.from_mapping({"epochs": 4, "model": "mnist"}, {"epochs": 2, "lr": 0.1})
    assert (params.epochs, params.lr, params.name) == (4, 0.1, "mnist")


def test_idx_files_round_trip_and_corrupt_ones_are_refused():
    images = (np.random.default_rng(0).random((5, 28, 28)) * 255).astype(np.uint8)
    for compress in (True, False):
        assert np.array_equal(parse_idx(write_idx(images, compress)), images)
    with pytest.raises(ValueError, match="idx"):
        parse_idx(b"\x00\x00\x0d\x03" + b"\x00" * 20)
    with pytest.raises(ValueError, match="bytes"):
        parse_idx(write_idx(images, False)[:-7])
    with pytest.raises(ValueError, match="labels"):
        mnist_dataset(
            write_idx(images),
            write_idx(np.arange(4, dtype=np.uint8)),
            write_idx(images),
            write_idx(np.arange(5, dtype=np.uint8)),
        )


def test_checkpoint_is_safetensors_with_its_recipe():
    model = build_model({"stem_stride": 1, "maxpool": False}).eval()
    raw = checkpoint_bytes(model, {**build_recipe(), "stem_stride": 1, "maxpool": False})
    assert raw[8:9] == b"{"  # safetensors header, no pickle anywhere
    loaded, recipe = load_checkpoint(raw)
    assert recipe["stem_stride"] == 1
    x = torch.rand(2, 1, 28, 28)
    with torch.inference_mode():
        assert torch.allclose(loaded(x), model(x))
    with pytest.raises(ValueError, match="do not fit"):
        load_checkpoint(raw, {"arch": "resnet34"})
    with pytest.raises(ValueError, match="safetensors"):
        load_checkpoint(b"\x80\x04garbage")


def build_recipe():
    from functions.train import make_recipe

    return make_recipe()


# ---- the function, on a real local store ---------------------------------------------------------
@pytest.fixture
def train(data_dir):
    from functions.train import new

    fn = new()
    fn.start(
        FunctionConfig(
            function="train",
            config={"lr": 0.05, "threads": 1},
            store_url=f"file://{data_dir}",
            data_dir=data_dir,
        )
    )
    return fn


def test_training_spec_upload_trains_and_stores_a_versioned_checkpoint(train, data_dir):
    store = open_store(f"file://{data_dir}")
    store.create_bucket("training")
    spec = {"name": "digits", **TINY}
    store.put("training", "runs/quick.yaml", yaml.safe_dump(spec).encode())
    event = object_event(store, "training", "runs/quick.yaml")
    reply = train.handle(event)
    assert reply.get_type() == types.MODEL_TRAINED
    data = reply.get_data()
    assert data["key"] == "models/digits/1/model.safetensors" and data["version"] == 1
    metrics = json.loads(store.get("artifacts", "models/digits/1/metrics.json"))
    assert metrics["train_size"] == 96 and 0 <= metrics["accuracy"] <= 1
    assert metrics["recipe"]["in_channels"] == 1
    load_checkpoint(store.get("artifacts", data["key"]))
    # a re-delivery overwrites the same version; a new request gets the next one
    assert train.handle(event).get_data()["version"] == 1
    again = new_event(types.TRAINING_REQUESTED, "/test", {**TINY, "epochs": 1})
    assert train.handle(again).get_data()["version"] == 2


def test_mnist_idx_files_in_the_store_are_used(train, data_dir):
    store = open_store(f"file://{data_dir}")
    store.create_bucket("training")
    digits = digits_dataset()
    pixels = (digits.train_x[:64, 0].numpy() * 255).astype(np.uint8)
    labels = digits.train_y[:64].numpy().astype(np.uint8)
    for key, array in {
        "mnist/train-images-idx3-ubyte.gz": pixels,
        "mnist/train-labels-idx1-ubyte.gz": labels,
        "mnist/t10k-images-idx3-ubyte.gz": pixels[:16],
        "mnist/t10k-labels-idx1-ubyte.gz": labels[:16],
    }.items():
        store.put("training", key, write_idx(array))
    request = {
        "name": "mnist",
        "epochs": 1,
        "batch_size": 32,
        "data": {
            "train_images": "mnist/train-images-idx3-ubyte.gz",
            "train_labels": "mnist/train-labels-idx1-ubyte.gz",
            "test_images": "s3://training/mnist/t10k-images-idx3-ubyte.gz",
            "test_labels": "mnist/t10k-labels-idx1-ubyte.gz",
        },
    }
    reply = train.handle(new_event(types.TRAINING_REQUESTED, "/test", request))
    data = reply.get_data()
    assert data["dataset"] == "mnist" and data["name"] == "mnist"
    assert json.loads(store.get("artifacts", data["metrics_key"]))["held_out_size"] == 16


@pytest.mark.parametrize(
    "body, message",
    [
        ("epochs: [1, 2", "not valid JSON/YAML"),
        ("- just\n- a list\n", "mapping"),
        ("epochs: 0\n", "epochs"),
        ("data: {train_images: a}\n", "MNIST idx keys"),
        ("data: {train_images: a, train_labels: b, test_images: c, test_labels: d}\n", "not found"),
    ],
)
def test_bad_training_specs_are_refused_with_the_reason(train, data_dir, body, message):
    store = open_store(f"file://{data_dir}")
    store.create_bucket("training")
    store.put("training", "bad.yaml", body.encode())
    with pytest.raises(BadInput, match=message):
        train.handle(object_event(store, "training", "bad.yaml"))
    assert (
        not list(store.iter_objects("artifacts")) if "artifacts" in store.list_buckets() else True
    )
