"""The A→B tensor body: exact round trips, and every broken body refused with its reason."""

from __future__ import annotations

import zlib

import pytest
import torch

from functions.split import tensor_codec
from functions.split.tensor_codec import TensorCodecError, decode, encode


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int64, torch.uint8])
@pytest.mark.parametrize("shape", [(), (0,), (7,), (2, 3), (1, 512, 8, 8), (2, 1, 3, 1, 2)])
def test_round_trip_is_exact(dtype, shape):
    g = torch.Generator().manual_seed(0)
    if dtype.is_floating_point:
        x = torch.randn(shape, generator=g).to(dtype)
    else:
        x = torch.randint(0, 200, shape, generator=g, dtype=dtype)
    headers, body = encode(x)
    assert headers["X-Tensor-Shape"] == ",".join(map(str, shape))
    assert len(body) == x.numel() * x.element_size()  # raw bytes: no JSON, no padding
    y = decode(headers, body)
    assert y.dtype == dtype and y.shape == x.shape and torch.equal(x, y)


def test_non_contiguous_tensors_travel_as_their_values():
    x = torch.arange(24, dtype=torch.float32).view(4, 6).t()
    assert torch.equal(decode(*encode(x)), x)


def test_body_is_little_endian():
    _, body = encode(torch.tensor([1], dtype=torch.int64))
    assert body == (1).to_bytes(8, "little")


def _good():
    return encode(torch.ones(1, 4, 2, 2))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h, b: ({**h, "X-Tensor-Dtype": "complex64"}, b), "unsupported dtype"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-Tensor-Dtype"}, b), "missing"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-Tensor-Shape"}, b), "missing"),
        (lambda h, b: ({**h, "X-Tensor-Shape": "1,x,2"}, b), "not comma-separated integers"),
        (lambda h, b: ({**h, "X-Tensor-Shape": "1,-4,2,2"}, b), "non-negative"),
        (lambda h, b: (h, b[:-3]), "truncated"),
        (lambda h, b: (h, b + b"\0\0\0\0"), "too long"),
        (lambda h, b: ({**h, "X-Tensor-Shape": "1,4,2,3"}, b), "truncated"),
        (lambda h, b: (h, b[:5] + bytes([b[5] ^ 0xFF]) + b[6:]), "corrupt"),
        (lambda h, b: ({**h, "X-Tensor-Crc32": "abc"}, b), "not an integer"),
        (lambda h, b: ({**h, "X-Tensor-Shape": "100000,100000,100"}, b), "over the"),
    ],
)
def test_broken_bodies_say_what_is_wrong(change, reason):
    headers, body = change(*_good())
    with pytest.raises(TensorCodecError, match=reason):
        decode(headers, body)


def test_crc_is_optional_for_other_senders():
    headers, body = _good()
    del headers["X-Tensor-Crc32"]
    assert torch.equal(decode(headers, body), torch.ones(1, 4, 2, 2))
    assert zlib.crc32(body) == int(_good()[0]["X-Tensor-Crc32"])


def test_is_tensor_recognises_the_content_type():
    assert tensor_codec.is_tensor({"content-type": tensor_codec.CONTENT_TYPE + "; v=1"})
    assert not tensor_codec.is_tensor({"content-type": "image/png"})
