"""Posting events to the broker from a source, with retries: a source only moves on (advances
its offset, answers MinIO 2xx) after the broker said the events are durable."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

from ..http import BATCH

log = logging.getLogger("knflow.sources")


class BrokerUnavailable(RuntimeError):
    """The broker did not accept the events (down, or answered non-2xx)."""


class BrokerRejected(BrokerUnavailable):
    """The broker refused the events as invalid (4xx): retrying would not help."""


class BrokerSink:
    """Batch-mode POSTs to the broker ingress over one keep-alive session."""

    def __init__(self, url: str, timeout: float = 30):
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, docs: list[dict[str, Any]]) -> None:
        """One attempt; raises BrokerUnavailable with the reason."""
        if not docs:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        body = json.dumps(docs).encode()
        try:
            async with self._session.post(
                self.url, data=body, headers={"content-type": BATCH}
            ) as resp:
                text = await resp.text()
                if resp.status // 100 != 2:
                    error = BrokerUnavailable
                    if 400 <= resp.status < 500 and resp.status not in (404, 408, 409, 429):
                        error = BrokerRejected
                    raise error(f"broker answered {resp.status}: {text.strip()[:300]}")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise BrokerUnavailable(f"broker unreachable at {self.url}: {reason}") from None

    async def send_until_accepted(
        self, docs: list[dict[str, Any]], what: str, max_delay: float = 5.0
    ) -> None:
        """Retry with backoff until the broker accepts (a source must never skip events).

        Only a BrokerRejected (the events themselves are refused) ends it without success.
        """
        delay = 0.1
        while True:
            try:
                await self.send(docs)
                return
            except BrokerRejected:
                raise
            except BrokerUnavailable as exc:
                log.warning("%s: %s; retrying in %.1fs", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
