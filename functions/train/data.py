"""Training data: MNIST idx files from the store when the user provides them, otherwise
scikit-learn's bundled digits (real handwritten digits, 8x8) resized to 28x28. No downloads.

The held-out split is fixed (independent of the training seed) so accuracies are comparable
across runs, trials and revisions.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

HELD_OUT_SEED = 20240521
HELD_OUT_FRACTION = 0.2


@dataclass
class Dataset:
    """Float images in [0, 1] shaped (N, 1, 28, 28) and int64 labels."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def describe(self) -> str:
        return f"{self.name}: {len(self.train_y)} train / {len(self.test_y)} held-out images"


def digits_dataset(size: int = 28) -> Dataset:
    """scikit-learn's 1,797 digits, bilinearly resized to sizexsize, fixed stratified split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    train_idx, test_idx = _split(digits.target)
    return Dataset(
        "digits", images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]
    )


def _split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        index, test_size=HELD_OUT_FRACTION, random_state=HELD_OUT_SEED, stratify=labels
    )
    return np.sort(train_idx), np.sort(test_idx)


def parse_idx(raw: bytes) -> np.ndarray:
    """Decode an MNIST idx file (gzip-compressed or raw); ValueError says what is wrong."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"corrupt gzip: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("not an idx file of unsigned bytes (magic 0x0000 08xx expected)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError("idx header truncated")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(shape))
    if len(raw) - header != count:
        raise ValueError(f"idx body has {len(raw) - header} bytes, shape {shape} needs {count}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def mnist_dataset(
    train_images: bytes,
    train_labels: bytes,
    test_images: bytes,
    test_labels: bytes,
    limit: int | None = None,
) -> Dataset:
    """MNIST from its four idx files; `limit` keeps the first N training images (fast runs)."""

    def images(raw: bytes, what: str) -> torch.Tensor:
        array = _checked(raw, what, 3)
        if array.shape[1:] != (28, 28):
            raise ValueError(f"{what}: images must be 28x28, got {array.shape[1:]}")
        return torch.from_numpy(array.astype(np.float32) / 255.0).unsqueeze(1)

    def labels(raw: bytes, what: str, n: int) -> torch.Tensor:
        array = _checked(raw, what, 1)
        if len(array) != n or array.max(initial=0) > 9:
            raise ValueError(f"{what}: expected {n} labels in 0..9, got {len(array)}")
        return torch.from_numpy(array.astype(np.int64))

    train_x, test_x = images(train_images, "train_images"), images(test_images, "test_images")
    train_y = labels(train_labels, "train_labels", len(train_x))
    test_y = labels(test_labels, "test_labels", len(test_x))
    if limit:
        train_x, train_y = train_x[:limit], train_y[:limit]
    return Dataset("mnist", train_x, train_y, test_x, test_y)


def _checked(raw: bytes, what: str, ndim: int) -> np.ndarray:
    try:
        array = parse_idx(raw)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if array.ndim != ndim:
        raise ValueError(f"{what}: expected {ndim} dimensions, got {array.ndim}")
    return array


def write_idx(array: np.ndarray, compress: bool = True) -> bytes:
    """Encode unsigned bytes as an idx file (the inverse of `parse_idx`; used by tests/tools)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.tobytes()
    return gzip.compress(raw) if compress else raw
