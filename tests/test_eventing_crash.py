"""Nothing lost: `kill -9` the broker process while events are in flight, then restart it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from conftest import knflow_env
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
                    if n == 1:
                        continue
                    # Sent again after the subscriber had acknowledged it: allowed only for an
                    # ack the broker could not yet have made durable when it was killed.
                    receipts = [r for r in sub.of(event_id) if r.path == path]
                    acks = [r.answered for r in receipts if r.answered]
                    if acks and any(r.at > min(acks) for r in receipts):
                        assert min(acks) > killed_at - 1.0, (event_id, path)
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


def test_a_trigger_added_later_does_not_get_old_events_after_a_restart(tmp_path: Path):
    with Subscriber() as sub:
        data = tmp_path / "data"
        one = write_spec(tmp_path / "one.yaml", [trigger("a", sub.url + "a")])
        broker = launch(data, one)
        send(broker.url, "old")
        wait_for(lambda: sub.ids("/a") == ["old"], what="delivery to a")
        broker.stop()
        two = write_spec(
            tmp_path / "two.yaml", [trigger("a", sub.url + "a"), trigger("b", sub.url + "b")]
        )
        broker = launch(data, two)
        try:
            send(broker.url, "new")
            wait_for(lambda: "new" in sub.ids("/b"), what="the new event at b")
            time.sleep(0.3)
            assert sub.ids("/b") == ["new"]  # "old" arrived before b existed
            assert sub.ids("/a").count("old") == 1  # and a had acknowledged it
        finally:
            broker.stop()


def test_a_broker_does_not_outlive_its_launcher(tmp_path: Path):
    """`knflow up` killed with -9: its broker stops by itself and frees the data directory."""
    spec = write_spec(tmp_path / "spec.yaml", [trigger("t", "http://127.0.0.1:9/")])
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from eventing.broker import launch\n"
            "h = launch(sys.argv[1], sys.argv[2])\n"
            "print(h.pid, flush=True)\n"
            "time.sleep(600)\n",
            str(tmp_path / "data"),
            str(spec),
        ],
        env=knflow_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    broker_pid = int(launcher.stdout.readline())
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait()

    def gone() -> bool:
        try:
            os.kill(broker_pid, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{broker_pid}/stat").read_text().split(")")[1].split()[0] == "Z"

    wait_for(gone, timeout=15, what="the orphaned broker to stop")
    again = launch(tmp_path / "data", spec)  # the data directory is free again
    try:
        assert again.pid != broker_pid
    finally:
        again.stop()
