"""What the router observes per revision: time-weighted concurrency and completed requests.

This is the queue-proxy's stat reporting: the autoscaler reads one averaged sample per tick.
Requests waiting for a replica count as concurrency too (as the activator reports them), which is
what makes a revision at zero scale up.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Meter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.in_flight = 0
        self.last_active = clock()
        self._area = 0.0
        self._since = self._changed = clock()
        self._completed = 0
        self.rps = 0.0

    def begin(self) -> None:
        self._advance()
        self.in_flight += 1
        self.last_active = self._changed

    def end(self) -> None:
        self._advance()
        self.in_flight -= 1
        self._completed += 1
        self.last_active = self._changed

    def idle_for(self) -> float:
        return 0.0 if self.in_flight else self.clock() - self.last_active

    def sample(self) -> float:
        """Average concurrency since the previous sample (and refresh `rps`)."""
        self._advance()
        elapsed = self._changed - self._since
        average = self._area / elapsed if elapsed > 0 else float(self.in_flight)
        self.rps = self._completed / elapsed if elapsed > 0 else 0.0
        self._area, self._completed, self._since = 0.0, 0, self._changed
        return average

    def _advance(self) -> None:
        now = self.clock()
        self._area += self.in_flight * (now - self._changed)
        self._changed = now
