"""Eventing benchmark: durable broker throughput and the latency it adds, with 1/10/100 Triggers.

Side by side in one run, each against the same no-op subscriber process:
- direct:  POST the event straight to the subscriber (the baseline);
- broker:  POST it to the broker ingress (journal fsync before the 202, durability on) and let
  the broker deliver it.
Latency is the time from the start of the POST to the subscriber receiving the event (both
read CLOCK_MONOTONIC, which is system-wide on Linux), sent one at a time; "added" is broker
minus direct. Throughput is events/s from the first POST to the subscriber holding them all,
with `CONCURRENCY` senders; the broker's own CPU time per event is printed too, as it does not
depend on what else loads the machine. With N Triggers, one matches the event and N-1 filter
other types (exact/prefix/suffix/any), so the figure shows what filtering costs per event.

    .venv/bin/python bench/eventing_bench.py [--events 3000] [--latency 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eventing.broker import launch  # noqa: E402
from eventing.httpclient import HTTPClient  # noqa: E402

CONCURRENCY = 32

SUBSCRIBER = textwrap.dedent(
    """
    import sys, time
    from aiohttp import web
    seen = {}
    async def receive(request):
        seen[request.headers.get("ce-id")] = time.monotonic_ns()
        await request.read()
        return web.Response(status=202)
    async def times(request):
        return web.json_response(seen)
    async def reset(request):
        seen.clear()
        return web.Response()
    async def count(request):
        return web.json_response(len(seen))
    app = web.Application()
    app.router.add_post("/", receive)
    app.router.add_get("/times", times)
    app.router.add_get("/count", count)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
    """
)


def spec_text(triggers: int, subscriber: str) -> str:
    """One Trigger for `bench.ping`, the others for types no bench event has."""
    others = [
        {"exact": {"type": "bench.other.{i}"}},
        {"prefix": {"type": "bench.other.{i}."}},
        {"suffix": {"subject": ".other{i}"}},
        {"any": [{"exact": {"type": "x.{i}"}}, {"exact": {"source": "/other/{i}"}}]},
    ]
    items = [
        {
            "name": "match",
            "filter": {"attributes": {"type": "bench.ping"}},
            "subscriber": {"uri": subscriber},
        }
    ]
    for i in range(1, triggers):
        flt = json.loads(json.dumps(others[i % len(others)]).replace("{i}", str(i)))
        items.append({"name": f"other-{i}", "filters": [flt], "subscriber": {"uri": subscriber}})
    return json.dumps(
        {
            "apiVersion": "knflow.dev/v1alpha1",
            "kind": "Pipeline",
            "metadata": {"name": "bench", "namespace": "bench"},
            "broker": {"name": "default"},
            "triggers": items,
        }
    )


def headers_for(event_id: str) -> dict[str, str]:
    return {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "/bench",
        "ce-type": "bench.ping",
        "ce-subject": "ping.json",
        "content-type": "application/json",
    }


BODY = json.dumps(
    {"bucket": "uploads", "key": "ping.json", "uri": "s3://uploads/ping.json"}
).encode()


SENDER = HTTPClient()  # the same lean client the broker delivers with, for both paths


async def post(session: aiohttp.ClientSession, url: str, event_id: str) -> int:
    resp = await SENDER.post(url, headers_for(event_id), BODY, 30)
    return resp.status


async def wait_received(session: aiohttp.ClientSession, sub: str, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with session.get(sub + "count") as resp:
            if await resp.json() >= n:
                return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"subscriber did not get {n} events in {timeout}s")


async def latencies(session: aiohttp.ClientSession, url: str, sub: str, n: int) -> list[float]:
    """Milliseconds from POST start to subscriber receipt, one event at a time."""
    await session.post(sub + "reset")
    sent = {}
    for i in range(n):
        event_id = f"lat-{i}-{uuid.uuid4().hex[:8]}"
        sent[event_id] = time.monotonic_ns()
        status = await post(session, url, event_id)
        assert status // 100 == 2, status
        await wait_received(session, sub, i + 1, 10)
    async with session.get(sub + "times") as resp:
        got = await resp.json()
    return [(got[k] - t0) / 1e6 for k, t0 in sent.items()]


def cpu_seconds(pid: int) -> float:
    """User+system CPU a process has used (load on the machine does not inflate it)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def throughput(session: aiohttp.ClientSession, url: str, sub: str, n: int) -> float:
    await session.post(sub + "reset")
    ids = iter(f"tp-{i}" for i in range(n))

    async def sender() -> None:
        for event_id in ids:
            status = await post(session, url, event_id)
            assert status // 100 == 2, status

    started = time.monotonic()
    await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
    await wait_received(session, sub, n, 120)
    return n / (time.monotonic() - started)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def run(args: argparse.Namespace) -> None:
    port = 18000 + uuid.uuid4().int % 2000
    sub_proc = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(port)])
    sub = f"http://127.0.0.1:{port}/"
    rows = []
    try:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY * 2)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(100):
                try:
                    await session.post(sub + "reset")
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            # Baseline, measured between the broker runs as well, so drift shows.
            await latencies(session, sub, sub, 50)  # warm-up
            direct_lat = await latencies(session, sub, sub, args.latency)
            direct_tp = await throughput(session, sub, sub, args.events)
            print(
                f"direct to subscriber: p50 {pct(direct_lat, 0.5):.2f} ms, "
                f"p99 {pct(direct_lat, 0.99):.2f} ms, {direct_tp:,.0f} events/s",
                flush=True,
            )
            for triggers in (1, 10, 100):
                with tempfile.TemporaryDirectory() as tmp:
                    spec = Path(tmp) / "spec.yaml"
                    spec.write_text(spec_text(triggers, sub))
                    broker = launch(Path(tmp) / "data", spec)
                    try:
                        await latencies(session, broker.url, sub, 50)  # warm-up
                        lat = await latencies(session, broker.url, sub, args.latency)
                        cpu0 = cpu_seconds(broker.pid)
                        tp = await throughput(session, broker.url, sub, args.events)
                        cpu_us = (cpu_seconds(broker.pid) - cpu0) / args.events * 1e6
                        journal = json.loads(
                            await (await session.get(broker.base_url + "/.knflow/broker")).text()
                        )["status"]["knflow"]["journal"]
                    finally:
                        broker.stop()
                rows.append((triggers, lat, tp, journal, cpu_us))
                print(
                    f"broker, {triggers:>3} trigger(s): p50 {pct(lat, 0.5):.2f} ms, "
                    f"p99 {pct(lat, 0.99):.2f} ms, {tp:,.0f} events/s, "
                    f"broker CPU {cpu_us:.0f} us/event "
                    f"({journal['records']} journal records in {journal['commits']} fsyncs)",
                    flush=True,
                )
    finally:
        sub_proc.terminate()
        sub_proc.wait()

    print()
    print(
        f"{'triggers':>8}  {'events/s':>9}  {'vs direct':>9}  {'p50 added':>10}  {'p99 added':>10}"
    )
    base50, base99 = pct(direct_lat, 0.5), pct(direct_lat, 0.99)
    for triggers, lat, tp, _, cpu_us in rows:
        print(
            f"{triggers:>8}  {tp:>9,.0f}  {tp / direct_tp:>8.2f}x  "
            f"{pct(lat, 0.5) - base50:>7.2f} ms  {pct(lat, 0.99) - base99:>7.2f} ms  "
            f"{cpu_us:>13.0f} us"
        )
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "eventing.csv", "w") as f:
        f.write("path,triggers,events_per_s,p50_ms,p99_ms,broker_cpu_us_per_event\n")
        f.write(f"direct,0,{direct_tp:.0f},{base50:.3f},{base99:.3f},\n")
        for triggers, lat, tp, _, cpu_us in rows:
            p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
            f.write(f"broker,{triggers},{tp:.0f},{p50:.3f},{p99:.3f},{cpu_us:.0f}\n")
    flat = rows[-1][2] / rows[0][2]
    print(f"\nthroughput with 100 triggers / with 1 trigger: {flat:.2f}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    rate_ok = min(r[2] for r in rows) >= 1000
    added_ok = max(pct(r[1], 0.5) - base50 for r in rows) <= 2
    print(
        f"goals: >= 1,000 events/s durable -> {'met' if rate_ok else 'NOT met'}; "
        f"p50 added <= 2 ms -> {'met' if added_ok else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="events per throughput run")
    parser.add_argument("--latency", type=int, default=300, help="events per latency run")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
