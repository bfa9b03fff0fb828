"""Nothing lost: `kill -9` the broker process while events are in flight, then restart it."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from eventing_support import Reply, Subscriber, send, trigger, wait_for, write_spec

from eventing.broker import launch


def send_many(
    url: str, ids: list[str], accepted: list[str], threads: int = 8
) -> list[threading.Thread]:
    """POST `ids` from several threads; ids answered 202 land in `accepted`."""
    queue = list(reversed(ids))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                event_id = queue.pop()
            try:
                if send(url, event_id).status_code == 202:
                    with lock:
                        accepted.append(event_id)
            except requests.RequestException:
                pass  # the broker died under us: this one was never acknowledged to us

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    return workers


@pytest.mark.slow
def test_kill_9_in_flight_then_restart_delivers_every_accepted_event(tmp_path: Path):
    with Subscriber(lambda req, n: Reply(202, delay=0.02)) as sub:
        spec = write_spec(
            tmp_path / "spec.yaml",
            [trigger("a", sub.url + "a"), trigger("b", sub.url + "b")],
            {"retry": 5, "backoffDelay": "PT0.05S"},
        )
        data = tmp_path / "data"
        broker = launch(data, spec)

        # Phase 1: delivered and acknowledged well before the crash.
        first: list[str] = []
        for w in send_many(broker.url, [f"p1-{i}" for i in range(40)], first):
            w.join()
        assert len(first) == 40
        for path in ("/a", "/b"):
            wait_for(lambda p=path: set(first) <= set(sub.ids(p)), what=f"phase 1 at {path}")
        time.sleep(0.5)

        # Phase 2: kill -9 while events are being accepted and delivered.
        second: list[str] = []
        workers = send_many(broker.url, [f"p2-{i}" for i in range(300)], second)
        wait_for(lambda: len([i for i in sub.ids() if i.startswith("p2-")]) >= 30, what="traffic")
        broker.kill()
        killed_at = time.monotonic()
        for w in workers:
            w.join()
        assert 0 < len(second) < 300, "the crash should interrupt the senders"

        restarted = launch(data, spec)
        try:
            accepted = first + second
            for path in ("/a", "/b"):
                wait_for(
                    lambda p=path: set(accepted) <= set(sub.ids(p)),
                    timeout=30,
                    what=f"every accepted event at {path} after the restart",
                )
            time.sleep(0.5)
            sent = {f"p1-{i}" for i in range(40)} | {f"p2-{i}" for i in range(300)}
            for path in ("/a", "/b"):
                counts = Counter(sub.ids(path))
                assert set(counts) <= sent  # nothing invented
                # acknowledged long before the crash: never sent again
                assert all(counts[i] == 1 for i in first), path
                for event_id, n in counts.items():
                    if n > 1:  # a re-delivery (same id) only of what was not yet durable acked
                        acked = [r.answered for r in sub.of(event_id) if r.path == path]
                        assert min(acked) > killed_at - 1.0, (event_id, path)
            # once nothing is pending, a graceful restart re-sends nothing at all
            wait_for(
                lambda: (
                    requests.get(f"{restarted.base_url}/.knflow/broker").json()["status"]["knflow"][
                        "pending"
                    ]
                    == 0
                ),
                what="no pending deliveries",
            )
            before = len(sub.received)
            restarted.stop()
            restarted = launch(data, spec)
            time.sleep(1.0)
            assert len(sub.received) == before, [
                (r.id, r.path, r.headers.get("ce-knativearrivaltime"))
                for r in sub.received[before:]
            ]
            counts = requests.get(f"{restarted.base_url}/.knflow/broker").json()["status"]["knflow"]
            assert counts["recovered"] == 0 and counts["pending"] == 0
        finally:
            restarted.stop()


@pytest.mark.slow
def test_unacknowledged_events_survive_a_crash_while_the_subscriber_is_down(tmp_path: Path):
    """Accepted while nobody can take them, broker killed, subscriber back: all delivered."""
    spec = write_spec(
        tmp_path / "spec.yaml",
        [{"name": "svc", "subscriber": {"ref": {"name": "later"}}}],
        {"retry": 100, "backoffDelay": "PT0.05S", "backoffPolicy": "linear"},
        services=[{"name": "later", "function": "deadletter"}],
    )
    data = tmp_path / "data"
    broker = launch(data, spec)
    for i in range(20):
        assert send(broker.url, f"e{i}").status_code == 202
    broker.kill()
    with Subscriber() as sub:
        (data / ".knflow/broker/subscribers.json").write_text(f'{{"later": "{sub.url}"}}')
        restarted = launch(data, spec)
        try:
            wait_for(lambda: len(set(sub.ids())) == 20, what="all 20 after the restart")
            recovered = requests.get(f"{restarted.base_url}/.knflow/broker").json()
            assert recovered["status"]["knflow"]["recovered"] == 20
        finally:
            restarted.stop()
