"""Serving benchmark: cold start, router overhead, and autoscaling under a concurrency ramp.

Runs `knflow up` as a real subprocess with a throw-away data directory, then measures side by
side in one run:
1. cold start from zero of a no-op function (`echo`) through the router, against a bare process
   spawn importing the same modules the replica imports (the runtime app and the function);
2. router overhead: p50 latency through the service URL minus p50 straight to the replica;
3. throughput and replica count over time while concurrency steps 1 → 64 with target 10,
   plotted to bench/out/serving_scaling.png.

    .venv/bin/python bench/serving_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
COLD = 8  # services cold-started once each
CE = {
    "ce-id": "1",
    "ce-source": "/bench",
    "ce-type": "bench",
    "ce-specversion": "1.0",
    "content-type": "application/json",
}

WORK_FN = """
import time
from flask import request


class Work:
    def handle(self, event):
        return None

    def routes(self):
        return [("/work", ["GET"], self.work)]

    def work(self):
        time.sleep(float(request.args.get("ms", 50)) / 1000)
        return "ok"


def new():
    return Work()
"""


def write_spec(root: Path, window: str) -> Path:
    bundle = root / "work-bundle"
    (bundle / "code").mkdir(parents=True)
    (bundle / "code" / "benchwork.py").write_text(WORK_FN)
    (bundle / "bundle.json").write_text(json.dumps({"function": "benchwork"}))
    services = "".join(
        f"""
  - name: noop-{i}
    function: echo
    annotations: {{autoscaling.knative.dev/initial-scale: "0"}}"""
        for i in range(1, COLD + 1)
    )
    spec = root / "spec.yaml"
    spec.write_text(
        textwrap.dedent("""\
        apiVersion: knflow.dev/v1alpha1
        kind: Pipeline
        metadata: {name: bench, namespace: bench}
        buckets: []
        services:""")
        + services
        + f"""
  - name: work
    function: echo
    image: bundle://{bundle}
    annotations:
      autoscaling.knative.dev/target: "10"
      autoscaling.knative.dev/initial-scale: "0"
      autoscaling.knative.dev/window: "{window}"
"""
    )
    return spec


def start_platform(spec: Path, data: Path) -> tuple[subprocess.Popen, dict]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "knative", "up", "--spec", str(spec), "--data", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in proc.stdout:
        if "knflow is up" in line:
            break
    else:
        raise SystemExit("knflow up did not start")
    return proc, json.loads((data / ".knflow" / "instance.json").read_text())


async def cold_starts(session: aiohttp.ClientSession, inst: dict):
    """Interleaved: a cold start through the router, then the bare spawns, COLD times."""
    env = dict(os.environ, PYTHONPATH=str(REPO), KNFLOW_FUNCTION="echo")
    cold, bare, fn_only = [], [], []
    for i in range(1, COLD + 1):
        url = inst["services"][f"noop-{i}"] + "/"
        t0 = time.perf_counter()
        async with session.post(url, data=b"{}", headers=CE) as resp:
            await resp.read()
            assert resp.status == 202, resp.status
        cold.append(time.perf_counter() - t0)
        # the module gunicorn loads in a replica: the runtime app serving the function
        for code, out in (
            ("import functions.runtime.wsgi", bare),
            ("import functions.echo", fn_only),
        ):
            t0 = time.perf_counter()
            await asyncio.to_thread(
                subprocess.run, [sys.executable, "-c", code], env=env, check=True
            )
            out.append(time.perf_counter() - t0)
    return cold, bare, fn_only


async def overhead(session, inst: dict, rounds: int) -> tuple[float, float, float]:
    """p50 through the router and straight to the replica (interleaved in blocks of 50), and
    the CPU time the platform process spends per routed request."""
    import psutil

    platform = psutil.Process(inst["pid"])
    router = inst["services"]["noop-1"] + "/"
    async with session.get(f"{inst['control_url']}/knflow/v1/services/noop-1/stats") as resp:
        stats = await resp.json()
    direct = next(iter(stats["revisions"].values()))["endpoints"][0] + "/"
    samples: dict[str, list[float]] = {router: [], direct: []}
    cpu = {router: 0.0, direct: 0.0}
    for _ in range(rounds):
        for url in (router, direct):
            c0 = sum(platform.cpu_times()[:2])
            for _ in range(50):
                t0 = time.perf_counter()
                async with session.post(url, data=b"{}", headers=CE) as resp:
                    await resp.read()
                samples[url].append(time.perf_counter() - t0)
            cpu[url] += sum(platform.cpu_times()[:2]) - c0
    per_request = (cpu[router] - cpu[direct]) / (50 * rounds)
    return statistics.median(samples[router]), statistics.median(samples[direct]), per_request


async def ramp(session, inst: dict, steps: list[int], stage: float, tail: float):
    url = inst["services"]["work"] + "/work?ms=50"
    stats_url = f"{inst['control_url']}/knflow/v1/services/work/stats"
    done: list[float] = []
    timeline = []
    level = [0]
    t_start = time.perf_counter()
    stop = asyncio.Event()
    errors = [0]

    async def caller(index: int):
        while not stop.is_set():
            if index >= level[0]:
                await asyncio.sleep(0.05)
                continue
            async with session.get(url) as resp:
                await resp.read()
                if resp.status != 200:
                    errors[0] += 1
            done.append(time.perf_counter())

    async def sampler():
        last = 0
        while not stop.is_set():
            await asyncio.sleep(1.0)
            async with session.get(stats_url) as resp:
                stats = await resp.json()
            now = time.perf_counter()
            count = len(done)
            timeline.append(
                (
                    now - t_start,
                    level[0],
                    count - last,
                    stats["ready_replicas"],
                    stats["desired_replicas"],
                    sum(r["observed_panic"] for r in stats["revisions"].values()),
                )
            )
            last = count

    tasks = [asyncio.create_task(caller(i)) for i in range(max(steps))]
    sampling = asyncio.create_task(sampler())
    for c in steps:
        level[0] = c
        print(f"  concurrency {c:>2}", flush=True)
        await asyncio.sleep(stage)
    level[0] = 0
    print("  idle (scale down)", flush=True)
    await asyncio.sleep(tail)
    stop.set()
    await asyncio.gather(*tasks, sampling, return_exceptions=True)
    return timeline, errors[0]


def plot(timeline, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r[0] for r in timeline]
    fig, ax1 = plt.subplots(figsize=(9, 4.5))
    ax1.plot(t, [r[2] for r in timeline], color="tab:blue", label="throughput (req/s)")
    ax1.set_xlabel("time (s)")
    ax1.set_ylabel("requests / s", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.step(t, [r[3] for r in timeline], where="post", color="tab:red", label="ready replicas")
    ax2.step(
        t,
        [r[4] for r in timeline],
        where="post",
        color="tab:red",
        linestyle=":",
        label="desired replicas (KPA)",
    )
    ax2.step(
        t,
        [r[1] / 10 for r in timeline],
        where="post",
        color="tab:gray",
        linestyle="--",
        label="offered concurrency / target (10)",
    )
    ax2.plot(
        t,
        [r[5] / 10 for r in timeline],
        color="tab:green",
        linewidth=1,
        label="concurrency seen by the router / 10",
    )
    ax2.set_ylabel("replicas", color="tab:red")
    fig.legend(loc="upper left", bbox_to_anchor=(0.08, 0.88), fontsize="small")
    ax1.set_title("knflow KPA: 50 ms handler, concurrency 1→64, target 10")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


async def main_async(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = write_spec(root, args.window)
        proc, inst = start_platform(spec, root / "data")
        try:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                print("1. cold start from zero (no-op function)", flush=True)
                cold, full, fn_only = await cold_starts(session, inst)
                print("2. router overhead", flush=True)
                via, direct, cpu = await overhead(session, inst, args.rounds)
                print("3. concurrency ramp, target 10", flush=True)
                steps = [1, 2, 4, 8, 16, 32, 64]
                timeline, errors = await ramp(session, inst, steps, args.stage, args.tail)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
    png = OUT / "serving_scaling.png"
    plot(timeline, png)
    (OUT / "serving_scaling.json").write_text(json.dumps(timeline))
    med_cold, med_full, med_fn = (statistics.median(x) for x in (cold, full, fn_only))
    print("\nResults")
    print(f"cold start via router (median of {COLD}):   {med_cold * 1000:7.1f} ms")
    print(
        f"bare spawn importing functions.runtime.wsgi: {med_full * 1000:5.1f} ms"
        f"   ratio {med_cold / med_full:.2f}x (goal <= 1.3x)"
    )
    print(
        f"bare spawn importing functions.echo only:  {med_fn * 1000:7.1f} ms"
        f"   ratio {med_cold / med_fn:.2f}x"
    )
    print(f"request p50 via router:                    {via * 1000:7.3f} ms")
    print(f"request p50 straight to the replica:       {direct * 1000:7.3f} ms")
    print(
        f"router overhead p50:                       {(via - direct) * 1000:7.3f} ms (goal <= 1 ms)"
    )
    print(f"router CPU per request (platform process): {cpu * 1e6:7.0f} us")
    load = os.getloadavg()[0]
    print(f"load average during the run:               {load:7.1f} on {os.cpu_count()} CPUs")
    peak = max(r[3] for r in timeline)
    best = max(r[2] for r in timeline)
    print(f"ramp: peak replicas {peak}, peak throughput {best} req/s, non-200 answers {errors}")
    for c in steps:
        rows = [r for r in timeline if r[1] == c]
        if rows:
            print(
                f"  concurrency {c:>2}: {statistics.mean(r[2] for r in rows[-3:]):7.1f} req/s, "
                f"router sees {statistics.mean(r[5] for r in rows[-3:]):5.1f} in flight, "
                f"replicas at end {rows[-1][3]} (desired {rows[-1][4]})"
            )
    end = timeline[-1]
    print(f"  after {args.tail:.0f}s idle: {end[3]} ready replicas")
    print(f"plot: {png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", type=float, default=8.0, help="seconds per concurrency step")
    parser.add_argument("--tail", type=float, default=20.0, help="idle seconds at the end")
    parser.add_argument("--window", default="6s", help="autoscaling window annotation")
    parser.add_argument("--rounds", type=int, default=20, help="50-request rounds per path")
    parser.add_argument("--quick", action="store_true", help="short stages (smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.stage, args.tail, args.rounds = 3.0, 10.0, 4
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
