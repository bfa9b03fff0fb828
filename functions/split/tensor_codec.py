"""Tensors as HTTP bodies: raw little-endian bytes, dtype and shape in headers.

The A→B hop carries megabytes of activations; JSON lists would multiply that several times and
cost more CPU than the half itself. The body is the tensor's memory, the headers say how to read
it, and a CRC-32 catches corruption. Anything that does not add up raises `TensorCodecError`,
which the services answer with HTTP 400 and the reason.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping

import numpy as np
import torch

CONTENT_TYPE = "application/x-knflow-tensor"
DTYPE_HEADER = "X-Tensor-Dtype"
SHAPE_HEADER = "X-Tensor-Shape"
CRC_HEADER = "X-Tensor-Crc32"
MAX_DIMS = 8
MAX_BYTES = 512 * 1024 * 1024

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_NAMES = {v: k for k, v in DTYPES.items()}


class TensorCodecError(ValueError):
    """The body is not a tensor these headers describe; the message says what is wrong."""


def encode(tensor: torch.Tensor) -> tuple[dict[str, str], bytes]:
    """Headers and body for `tensor` (any device or layout; sent as contiguous CPU memory)."""
    if tensor.dtype not in _NAMES:
        raise TensorCodecError(f"dtype {tensor.dtype} cannot be sent (supported: {_supported()})")
    array = tensor.detach().cpu().contiguous().numpy()
    if array.dtype.byteorder == ">":
        array = array.byteswap().view(array.dtype.newbyteorder("<"))
    body = array.tobytes()
    headers = {
        "Content-Type": CONTENT_TYPE,
        DTYPE_HEADER: _NAMES[tensor.dtype],
        SHAPE_HEADER: ",".join(str(d) for d in tensor.shape),
        CRC_HEADER: str(zlib.crc32(body)),
    }
    return headers, body


def is_tensor(headers: Mapping[str, str]) -> bool:
    """Whether a request claims to carry a tensor (by content type or the dtype header)."""
    lower = {k.lower(): v for k, v in headers.items()}
    content_type = lower.get("content-type", "").split(";")[0].strip().lower()
    return content_type == CONTENT_TYPE or DTYPE_HEADER.lower() in lower


def decode(headers: Mapping[str, str], body: bytes) -> torch.Tensor:
    """The tensor in `body`; TensorCodecError when headers and body do not agree."""
    lower = {k.lower(): v for k, v in headers.items()}
    name = lower.get(DTYPE_HEADER.lower())
    if not name:
        raise TensorCodecError(f"missing {DTYPE_HEADER} header (one of {_supported()})")
    dtype = DTYPES.get(name.strip().lower())
    if dtype is None:
        raise TensorCodecError(f"unsupported dtype {name!r} (supported: {_supported()})")
    shape = parse_shape(lower.get(SHAPE_HEADER.lower()))
    itemsize = torch.empty((), dtype=dtype).element_size()
    expected = math.prod(shape) * itemsize
    if expected > MAX_BYTES:
        raise TensorCodecError(f"shape {shape} is {expected} bytes, over the {MAX_BYTES} limit")
    if len(body) != expected:
        what = "truncated" if len(body) < expected else "too long"
        raise TensorCodecError(
            f"body is {what}: {len(body)} bytes, but {name} {list(shape)} needs {expected}"
        )
    crc = lower.get(CRC_HEADER.lower())
    if crc is not None:
        try:
            wanted = int(crc)
        except ValueError:
            raise TensorCodecError(f"{CRC_HEADER} {crc!r} is not an integer") from None
        if zlib.crc32(body) != wanted:
            raise TensorCodecError(f"body is corrupt: CRC-32 {zlib.crc32(body)} != {wanted}")
    np_dtype = np.dtype(torch.empty((), dtype=dtype).numpy().dtype).newbyteorder("<")
    array = np.frombuffer(body, dtype=np_dtype).astype(np_dtype.newbyteorder("="), copy=True)
    return torch.from_numpy(array).reshape(shape)


def parse_shape(text: str | None) -> tuple[int, ...]:
    if text is None:
        raise TensorCodecError(f"missing {SHAPE_HEADER} header (e.g. '1,512,28,28')")
    text = text.strip()
    if text == "":
        return ()
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise TensorCodecError(f"{SHAPE_HEADER} {text!r} is not comma-separated integers") from None
    if len(shape) > MAX_DIMS or any(d < 0 for d in shape):
        raise TensorCodecError(
            f"{SHAPE_HEADER} {text!r} must have at most {MAX_DIMS} non-negative dimensions"
        )
    return shape


def _supported() -> str:
    return ", ".join(DTYPES)
