"""Finding and talking to a running broker from another process (the CLI, scripts).

The broker of an instance is found through `<data>/.knflow/instance.json` ("broker_url",
written by `knflow up`), else the broker's own `<data>/.knflow/broker/address.json`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from .http import STRUCTURED

__all__ = ["BrokerClient", "NoBroker", "find_broker"]


class NoBroker(RuntimeError):
    """No running broker for this instance; the message says how to start one."""


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def find_broker(data_dir: Path) -> BrokerClient:
    """The broker of the instance in `data_dir` (not yet checked to be alive)."""
    data_dir = Path(data_dir)
    url = _read(data_dir / ".knflow" / "instance.json").get("broker_url")
    if not url:
        url = _read(data_dir / ".knflow" / "broker" / "address.json").get("url")
    if not url:
        raise NoBroker(
            f"no broker is running for {data_dir} (start one with `knflow up`, "
            f"or `python -m eventing.broker --data {data_dir}`)"
        )
    return BrokerClient(url)


class BrokerClient:
    """The ingress URL plus the broker's read API at `<base>/.knflow/...`."""

    def __init__(self, url: str, timeout: float = 10):
        self.url = url
        parts = urlsplit(url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout

    def _unreachable(self, exc: Exception) -> NoBroker:
        return NoBroker(
            f"the broker at {self.base} is not answering ({type(exc).__name__}); "
            "is `knflow up` still running?"
        )

    def get(self, path: str, **params: Any) -> Any:
        try:
            resp = requests.get(self.base + path, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise self._unreachable(exc) from None
        if resp.status_code == 404:
            raise LookupError(resp.json().get("error", resp.text.strip()))
        resp.raise_for_status()
        return resp.json()

    def send(self, doc: dict[str, Any]) -> requests.Response:
        """POST one structured event to the ingress; the response tells what happened."""
        try:
            return requests.post(
                self.url,
                data=json.dumps(doc).encode(),
                headers={"content-type": STRUCTURED},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise self._unreachable(exc) from None

    def follow(self, **params: Any) -> Iterator[dict[str, Any]]:
        """The broker's event feed as server-sent events, until the connection ends."""
        try:
            resp = requests.get(
                self.base + "/.knflow/events",
                params={**params, "follow": "1"},
                stream=True,
                timeout=(self.timeout, None),
            )
        except requests.RequestException as exc:
            raise self._unreachable(exc) from None
        with resp:
            try:
                for line in resp.iter_lines(decode_unicode=True):
                    if line and line.startswith("data: "):
                        yield json.loads(line[6:])
            except requests.RequestException:
                return  # the broker went away mid-stream
