"""Half A and half B as real replicas (gunicorn + the shared runtime) talking over loopback."""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import torch
from PIL import Image
from split_support import replica

from eventing.http import event_from_http, to_http
from functions.split import encode, split, untrained_resnet50
from functions.split.images import from_image_bytes
from functions.split.model import UNTRAINED, top_k

pytestmark = pytest.mark.slow
SIZE = 64
CONFIG = {"variant": "balanced", "image_size": SIZE, "threads": 1}


@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    """B on its own port; A finds it through the instance file, as under `knflow up`."""
    data = tmp_path_factory.mktemp("split-data")
    with replica("split", {**CONFIG, "half": "b"}, data, "resnet-b") as b_url:
        (data / ".knflow").mkdir(exist_ok=True)
        (data / ".knflow" / "instance.json").write_text(
            json.dumps({"services": {"resnet-b": b_url}})
        )
        a_config = {**CONFIG, "half": "a", "next": "resnet-b"}
        with replica("split", a_config, data, "resnet-a") as a_url:
            yield a_url, b_url


def _png(seed: int = 0) -> bytes:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (80, 96, 3), generator=g, dtype=torch.uint8).numpy()
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _unsplit(batch: torch.Tensor):
    torch.set_num_threads(1)
    with torch.inference_mode():
        return top_k(untrained_resnet50()(batch))


def test_image_through_a_and_b_equals_the_unsplit_model(halves):
    a_url, _ = halves
    image = _png()
    reply = requests.post(a_url + "/predict", data=image, headers={"content-type": "image/png"})
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["untrained"] is True and answer["weights"] == UNTRAINED
    assert answer["predictions"] == _unsplit(from_image_bytes(image, SIZE))
    assert set(answer["timing_ms"]) == {"a", "b", "hop", "total"}


def test_tensor_body_batches(halves):
    a_url, _ = halves
    batch = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    headers, body = encode(batch)
    answer = requests.post(a_url + "/predict", data=body, headers=headers).json()
    assert answer["predictions"] == _unsplit(batch)


def test_b_alone_finishes_an_activation(halves):
    _, b_url = halves
    x = torch.randn(1, 3, SIZE, SIZE)
    a, _ = split(untrained_resnet50(), "balanced")
    with torch.inference_mode():
        headers, body = encode(a(x))
    assert requests.post(b_url + "/forward", data=body, headers=headers).json()[
        "predictions"
    ] == _unsplit(x)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda h, b: (h, b[: len(b) // 2]), "truncated"),
        (lambda h, b: (h, b[:-1] + bytes([b[-1] ^ 1])), "corrupt"),
        (lambda h, b: ({**h, "X-Tensor-Dtype": "float64"}, b), "truncated"),
        (lambda h, b: ({**h, "X-Tensor-Dtype": "nope"}, b), "unsupported dtype"),
        (lambda h, b: ({"Content-Type": "application/octet-stream"}, b), "missing X-Tensor-Dtype"),
    ],
)
def test_b_refuses_broken_tensor_bodies_with_400(halves, tamper, reason):
    _, b_url = halves
    headers, body = tamper(*encode(torch.randn(1, 512, 2, 2)))
    reply = requests.post(b_url + "/forward", data=body, headers=headers)
    assert reply.status_code == 400
    assert reason in reply.json()["error"]


def test_b_refuses_an_activation_from_another_variant(halves):
    _, b_url = halves
    headers, body = encode(torch.randn(1, 256, 4, 4))  # what a-light's A would send
    reply = requests.post(b_url + "/forward", data=body, headers=headers)
    assert reply.status_code == 400 and "expects a float (N, 512, H, W)" in reply.json()["error"]


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({"content-type": "image/jpeg"}, b"not an image", "not a readable image"),
        ({}, b"", "empty body"),
        (*encode(torch.zeros(1, 1, 64, 64)), "(N, 3, H, W)"),
        (*encode(torch.zeros(1, 3, 64, 64, dtype=torch.int64)), "float (normalised) or uint8"),
    ],
)
def test_a_refuses_unreadable_input_with_400(halves, headers, body, reason):
    a_url, _ = halves
    reply = requests.post(a_url + "/predict", data=body, headers=headers)
    assert reply.status_code == 400 and reason in reply.json()["error"]


def test_a_answers_cloudevents_with_an_inference_event(halves):
    from eventing import new_event

    a_url, _ = halves
    event = new_event(
        "dev.knflow.image.submitted",
        "/test",
        _png(1),
        subject="cat.png",
        datacontenttype="image/png",
    )
    headers, body = to_http(event)
    reply = requests.post(a_url + "/", data=body, headers=headers)
    assert reply.status_code == 200, reply.text
    out = event_from_http(reply.headers, reply.content)
    assert out.get_type() == "dev.knflow.inference.completed" and out.get_subject() == "cat.png"
    assert len(out.get_data()["predictions"][0]) == 5

    bad = new_event("dev.knflow.image.submitted", "/t", b"garbage", datacontenttype="image/png")
    reply = requests.post(a_url + "/", data=to_http(bad)[1], headers=to_http(bad)[0])
    assert reply.status_code == 422 and "not a readable image" in reply.text


def test_link_is_settable_at_run_time_and_slows_the_hop(halves):
    a_url, _ = halves
    body = encode(torch.randn(1, 3, SIZE, SIZE))
    try:
        assert requests.get(a_url + "/link").json()["name"] == "clear"
        fast = requests.post(a_url + "/predict", data=body[1], headers=body[0]).json()

        slow = {"name": "slow", "latency": 0.25, "max_transfers": 1}
        put = requests.put(a_url + "/link", json=slow)
        assert put.status_code == 200 and put.json()["max_transfers"] == 1

        def call(_):
            return requests.post(a_url + "/predict", data=body[1], headers=body[0]).json()

        began = time.monotonic()
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(call, range(3)))
        elapsed = time.monotonic() - began

        def on_link(answer):  # the hop to B less B's own compute: time spent on the link
            return answer["timing_ms"]["hop"] - answer["timing_ms"]["b"]

        assert all(on_link(a) >= 250 for a in answers) and on_link(fast) < 250
        assert elapsed >= 3 * 0.25  # one transfer at a time: the latencies add up
        assert requests.get(a_url + "/link").json()["transfers"] >= 4
    finally:
        requests.put(a_url + "/link", json={"preset": "clear"})


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"bandwidth": -1}, "positive"),
        ({"max_transfers": 0}, "max_transfers"),
        ({"speed": 3}, "unknown link field"),
        ({"preset": "dial-up"}, "unknown link preset"),
    ],
)
def test_bad_link_settings_are_refused_and_change_nothing(halves, doc, reason):
    a_url, _ = halves
    before = requests.get(a_url + "/link").json()
    reply = requests.put(a_url + "/link", json=doc)
    assert reply.status_code == 400 and reason in reply.json()["error"]
    assert requests.get(a_url + "/link").json()["name"] == before["name"]
