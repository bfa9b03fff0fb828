"""Open Inference Protocol (V2) tensors: JSON request/response bodies ↔ numpy arrays.

Kept free of Flask and of any model so the client (`knflow infer`), the function and the
benchmarks share one codec.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
_NAMES = {np.dtype(v): k for k, v in DATATYPES.items()}


class ProtocolError(ValueError):
    """A request that does not follow the V2 protocol; the message is sent back as {"error"}."""


def decode_tensor(spec: Any) -> tuple[str, np.ndarray]:
    """One request input {name, shape, datatype, data} → (name, array of that shape)."""
    if not isinstance(spec, dict):
        raise ProtocolError("each input must be an object with name, shape, datatype, data")
    missing = [k for k in ("name", "shape", "datatype", "data") if k not in spec]
    if missing:
        raise ProtocolError(f"input is missing {', '.join(missing)}")
    name, shape, datatype = spec["name"], spec["shape"], spec["datatype"]
    if datatype not in DATATYPES:
        raise ProtocolError(f"input {name!r}: unsupported datatype {datatype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError(f"input {name!r}: shape must be a list of non-negative integers")
    try:
        flat = np.asarray(spec["data"], dtype=DATATYPES[datatype]).reshape(-1)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"input {name!r}: data is not {datatype}: {exc}") from None
    if flat.size != math.prod(shape):
        raise ProtocolError(
            f"input {name!r}: shape {shape} needs {math.prod(shape)} values, data has {flat.size}"
        )
    return name, flat.reshape(shape)


def encode_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    array = np.asarray(array)
    datatype = _NAMES.get(array.dtype)
    if datatype is None:
        array, datatype = array.astype(np.float32), "FP32"
    return {
        "name": name,
        "shape": list(array.shape),
        "datatype": datatype,
        "data": array.reshape(-1).tolist(),
    }


def parse_request(body: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """An infer request body → ({input name: array}, {id, requested outputs, parameters})."""
    if not isinstance(body, dict):
        raise ProtocolError("the request body must be a JSON object with 'inputs'")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    arrays = dict(decode_tensor(spec) for spec in inputs)
    outputs = body.get("outputs")
    wanted = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and "name" in o for o in outputs
        ):
            raise ProtocolError("'outputs' must be a list of {name}")
        wanted = [o["name"] for o in outputs]
    return arrays, {"id": body.get("id"), "outputs": wanted, "parameters": body.get("parameters")}


def request_body(array: np.ndarray, name: str = "input", id: str | None = None) -> dict:
    """A V2 infer request carrying one tensor (for clients and smoke tests)."""
    body: dict[str, Any] = {"inputs": [encode_tensor(name, array)]}
    if id is not None:
        body["id"] = id
    return body


def output_array(response: dict, name: str) -> np.ndarray:
    """A named output of an infer response, as an array (ProtocolError when absent)."""
    for out in response.get("outputs") or []:
        if out.get("name") == name:
            return decode_tensor(out)[1]
    raise ProtocolError(f"response has no output {name!r}")


def image_to_array(raw: bytes, size: tuple[int, int] = (28, 28)) -> np.ndarray:
    """An image file → float32 (1, 1, H, W) in [0, 1], bright digit on dark like MNIST.

    Photos of ink on paper are inverted (a light background means dark ink)."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except UnidentifiedImageError:
        raise ProtocolError("not a readable image (expected PNG, JPEG, BMP, …)") from None
    except OSError as exc:
        raise ProtocolError(f"not a readable image: {exc}") from None
    gray = image.convert("L").resize(size[::-1], Image.Resampling.BILINEAR)
    array = np.asarray(gray, dtype=np.float32) / 255.0
    if array.mean() > 0.5:
        array = 1.0 - array
    return array.reshape(1, 1, *size)


def load_input_file(path: str, raw: bytes) -> dict[str, Any]:
    """A client input file (image, .npy, or .json tensor/request) → a V2 request body."""
    lower = path.lower()
    if lower.endswith(".npy"):
        try:
            array = np.load(io.BytesIO(raw), allow_pickle=False)
        except ValueError as exc:
            raise ProtocolError(f"{path}: not a numeric .npy array: {exc}") from None
        return request_body(_batched(array.astype(np.float32)))
    if lower.endswith(".json"):
        import json

        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise ProtocolError(f"{path}: not valid JSON: {exc}") from None
        if isinstance(doc, dict) and "inputs" in doc:
            return doc
        try:
            array = np.asarray(doc, dtype=np.float32)
        except (TypeError, ValueError):
            raise ProtocolError(
                f"{path}: expected a V2 request or a nested list of numbers"
            ) from None
        return request_body(_batched(array))
    return request_body(image_to_array(raw))


def _batched(array: np.ndarray) -> np.ndarray:
    """Add the batch dimension to a single 28x28 / 1x28x28 / 784 input."""
    if array.ndim in (1, 2) or (array.ndim == 3 and array.shape[0] == 1):
        return array.reshape(1, *array.shape)
    return array
