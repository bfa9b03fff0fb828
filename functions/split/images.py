"""Turning a request body into a batch for half A: image files or a tensor."""

from __future__ import annotations

import io
from collections.abc import Mapping

import torch

from . import tensor_codec

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class ImageError(ValueError):
    """The body is neither a readable image nor a usable tensor."""


def batch_from_body(headers: Mapping[str, str], body: bytes, size: int) -> torch.Tensor:
    """A normalised float batch (N, 3, H, W).

    A tensor body (see `tensor_codec`) is taken as is when it is float (already normalised) or
    as pixels when it is uint8; anything else is decoded as an image file (JPEG, PNG, …) and
    resized to `size` by `size`.
    """
    if not body:
        raise ImageError("empty body: send an image file or a tensor")
    if tensor_codec.is_tensor(headers):
        return from_tensor(tensor_codec.decode(headers, body))
    return from_image_bytes(body, size)


def from_tensor(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3 or x.shape[0] == 0 or min(x.shape[2:]) < 32:
        raise ImageError(
            "an input tensor must be (N, 3, H, W) or (3, H, W) with H, W >= 32, "
            f"got {list(x.shape)}"
        )
    if x.dtype == torch.uint8:
        return normalise(x.float() / 255.0)
    if not x.is_floating_point():
        raise ImageError(f"an input tensor must be float (normalised) or uint8, not {x.dtype}")
    return x.float()


def from_image_bytes(body: bytes, size: int) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(body)) as img:
            img = img.convert("RGB")
            scale = size / min(img.size)
            resized = img.resize(
                (max(size, round(img.width * scale)), max(size, round(img.height * scale))),
                Image.Resampling.BILINEAR,
            )
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"not a readable image: {exc}") from None
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    cropped = resized.crop((left, top, left + size, top + size))
    pixels = torch.frombuffer(bytearray(cropped.tobytes()), dtype=torch.uint8)
    x = pixels.view(size, size, 3).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    return normalise(x)


def normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - MEAN) / STD
