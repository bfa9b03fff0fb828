"""The smoke test a candidate revision must pass: V2 inferences on labelled held-out digits."""

from __future__ import annotations

import numpy as np
import requests

from .rollout import SmokeTest


def v2_smoke(
    model: str,
    inputs: np.ndarray,
    labels: np.ndarray,
    min_accuracy: float = 0.9,
    timeout: float = 30.0,
) -> SmokeTest:
    """A smoke test posting `inputs` to `/v2/models/<model>/infer`; passes when the response is
    well-formed V2 and at least `min_accuracy` of the labels come back right."""
    from functions.predict.v2 import ProtocolError, output_array, request_body

    body = request_body(inputs.astype(np.float32), id="knflow-smoke")

    def check(url: str, headers: dict[str, str]) -> tuple[bool, str]:
        resp = requests.post(
            f"{url}/v2/models/{model}/infer", json=body, headers=headers, timeout=timeout
        )
        if resp.status_code != 200:
            return False, f"HTTP {resp.status_code}: {resp.text.strip()[:200]}"
        try:
            got = output_array(resp.json(), "label").reshape(-1)
        except (ValueError, ProtocolError) as exc:
            return False, f"malformed V2 response: {exc}"
        if got.shape != labels.shape:
            return False, f"expected {labels.shape[0]} labels, got {got.shape[0]}"
        accuracy = float((got == labels).mean())
        detail = f"{accuracy:.3f} accuracy on {len(labels)} held-out digits"
        return accuracy >= min_accuracy, detail + (
            "" if accuracy >= min_accuracy else f" (needs {min_accuracy})"
        )

    return check


def digits_sample(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` held-out digits (never trained on) and their labels."""
    from functions.train.data import digits_dataset

    data = digits_dataset()
    return data.test_x[:n].numpy(), data.test_y[:n].numpy()
