"""Split-model benchmark: the cost of splitting, and learned targets against static ones.

Starts the two ResNet-50 halves on the embedded platform (real routers, replicas, KPA) with a
throw-away data directory, then measures side by side in one run:

1. latency at batch 1: image -> A -> (link) -> B -> top-5 through the runtime, against the
   unsplit model in this process (same weights, same torch threads), requests interleaved;
2. a sweep (target x traffic x link), the fitted environment and a Q-learned policy (as
   `knflow autoscale collect` and `train` do), then one traffic schedule -- low, high, high with
   the link congested, low -- run three ways: Knative's default target (100), the best static
   target from the sweep, and the learned policy applied by the autoscaler controller every few
   seconds. Reported: throughput, p95 latency, replica-seconds and the policy's reward.

    .venv/bin/python bench/split_bench.py [--quick] [--sweep CSV]

Figures print at the end; CSV and plots go to bench/out/.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from functions.autoscaler import (  # noqa: E402
    Controller,
    EmbeddedControl,
    Reward,
    Schedule,
    best_static,
    read_measurements,
    train_policy,
    write_measurements,
)
from functions.autoscaler.plots import plot_measurements, plot_policy  # noqa: E402
from functions.autoscaler.sweep import LiveSplit, measure  # noqa: E402
from functions.split import encode, untrained_resnet50  # noqa: E402
from functions.split.link import PRESETS, LinkSettings  # noqa: E402
from knative.embedded import Platform  # noqa: E402
from knative.spec import parse_spec  # noqa: E402

OUT = REPO / "bench" / "out"
DEFAULT_TARGET = 100
CONGESTED = LinkSettings("congested", bandwidth=20e6, latency=0.03, max_transfers=1)
LINKS = [PRESETS["clear"], CONGESTED]


def spec(max_scale: int) -> str:
    half = """\
      - name: resnet-{x}
        function: split
        config: {{half: {x}, variant: balanced, image_size: 64, threads: 1{extra}}}
        annotations:
          autoscaling.knative.dev/target: "100"
          autoscaling.knative.dev/min-scale: "0"
          autoscaling.knative.dev/max-scale: "{max_scale}"
          autoscaling.knative.dev/window: "10s"
    """
    return (
        textwrap.dedent("""\
        apiVersion: knflow.dev/v1alpha1
        kind: Pipeline
        metadata: {name: bench, namespace: bench}
        services:
        """)
        + textwrap.indent(textwrap.dedent(half).format(x="b", extra="", max_scale=max_scale), "  ")
        + textwrap.indent(
            textwrap.dedent(half).format(x="a", extra=", next: resnet-b", max_scale=max_scale),
            "  ",
        )
    )


# --- 1. latency of the split against the unsplit model --------------------------------------
def latency_ratio(a_url: str, size: int, rounds: int) -> dict[str, float]:
    torch.set_num_threads(1)
    model = untrained_resnet50()
    x = torch.rand(1, 3, size, size)
    headers, body = encode(x)
    session = requests.Session()

    def split_once() -> float:
        t0 = time.perf_counter()
        reply = session.post(a_url + "/predict", data=body, headers=headers, timeout=300)
        reply.raise_for_status()
        return time.perf_counter() - t0

    def local_once() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            model(x)
        return time.perf_counter() - t0

    for _ in range(3):  # warm: B and A replicas up, allocator and caches warm
        split_once(), local_once()
    split_t, local_t = [], []
    for _ in range(rounds):
        split_t.append(split_once())
        local_t.append(local_once())
    # each split request is paired with the unsplit run right after it, so both see the same
    # machine load; the median of the pair ratios is robust to load changing during the run
    return {
        "split_ms": statistics.median(split_t) * 1000,
        "unsplit_ms": statistics.median(local_t) * 1000,
        "ratio": statistics.median(s / u for s, u in zip(split_t, local_t, strict=True)),
    }


# --- 2. the schedule, three ways -----------------------------------------------------------
@dataclass
class Phase:
    traffic: int
    link: LinkSettings
    seconds: float


@dataclass
class RunResult:
    name: str
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    replica_seconds: float = 0.0
    reward: float = 0.0
    targets: list[int] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    @property
    def p95(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def run_schedule(
    live: LiveSplit,
    name: str,
    phases: list[Phase],
    body: bytes,
    headers: dict[str, str],
    reward: Reward,
    static: int | None = None,
    controller: Controller | None = None,
    tick: float = 3.0,
    warmup: float = 8.0,
) -> RunResult:
    result = RunResult(name)
    first = phases[0]
    live.set_link(first.link)
    if controller is not None:  # the policy starts where it would settle for the first phase
        static = controller.policy.decide(first.link.name, first.traffic, DEFAULT_TARGET)
    live.set_target(static if static is not None else DEFAULT_TARGET)
    # unmeasured warm-up, the same for every strategy: replicas of the new revisions up
    live.load(body, headers, first.traffic, warmup)
    stop = threading.Event()

    def autoscale() -> None:
        while not stop.wait(tick):
            try:
                decision = controller.tick()  # type: ignore[union-attr]
                result.targets.extend(after for _, after in decision.changes.values())
            except Exception as exc:  # one failed tick must not end the run
                print(f"  tick failed: {exc}", flush=True)

    ticker = threading.Thread(target=autoscale, daemon=True) if controller else None
    if ticker:
        ticker.start()
    try:
        for phase in phases:
            live.set_link(phase.link)
            load = live.load(body, headers, phase.traffic, phase.seconds)
            result.requests += load.requests
            result.seconds += load.duration_s
            result.latencies += load.latencies_ms
            result.replica_seconds += load.replica_seconds
            result.reward += reward(load.throughput, load.percentile(95), load.replicas) / len(
                phases
            )
            print(
                f"  {name:>12}: traffic {phase.traffic} link {phase.link.name:9} "
                f"{load.throughput:6.2f} req/s  p95 {load.percentile(95):6.0f} ms  "
                f"{load.replicas:4.1f} replicas",
                flush=True,
            )
    finally:
        stop.set()
        if ticker:
            ticker.join()
    return result


def _latency_line(size: int, lat: dict[str, float]) -> str:
    return (
        f"batch-1 latency at {size}px: split A->B {lat['split_ms']:.1f} ms, "
        f"unsplit {lat['unsplit_ms']:.1f} ms, ratio {lat['ratio']:.3f}x (goal <= 1.25x)"
    )


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the platform on kill too
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases and sweep")
    parser.add_argument("--sweep", type=Path, help="reuse a sweep CSV instead of measuring")
    parser.add_argument("--latency-size", type=int, default=112, help="image size for part 1")
    parser.add_argument("--latency-only", action="store_true", help="part 1 only")
    args = parser.parse_args()
    phase_s, cell_s = (12.0, 3.0) if args.quick else (20.0, 5.0)
    low, high = 1, 4
    targets = [1, 2, 4, DEFAULT_TARGET]
    reward = Reward(slo_ms=2000.0, latency_weight=1.0, replica_cost=0.25, switch_cost=3.0)
    OUT.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="knflow-split-bench-") as tmp:
        pipeline = parse_spec(spec(max_scale=high), "split-bench.yaml")
        print("Starting resnet-a and resnet-b (embedded, scale from zero) ...", flush=True)
        with Platform(pipeline, Path(tmp), tick=0.5, broker=False, sources=False) as platform:
            control = EmbeddedControl(platform.control_url, "bench")
            a_url = platform.service_url("resnet-a")
            live = LiveSplit(control, a_url, ["resnet-a", "resnet-b"])

            print(f"\n[1] batch-1 latency at {args.latency_size}x{args.latency_size} ...")
            lat = latency_ratio(a_url, args.latency_size, 12 if args.quick else 25)
            if args.latency_only:
                print(_latency_line(args.latency_size, lat))
                return 0

            headers, body = encode(torch.rand(1, 3, 64, 64))
            if args.sweep:
                rows = read_measurements(args.sweep)
            else:
                print("\n[2] sweep: target x traffic x link ...", flush=True)
                rows = measure(
                    live,
                    body,
                    headers,
                    targets,
                    [low, high],
                    LINKS,
                    cell_s,
                    1.0,
                    progress=lambda r: print(
                        f"  target {r.target:>3} link {r.link:9} traffic {r.traffic}: "
                        f"{r.throughput:6.2f} req/s  p95 {r.p95_ms:6.0f} ms  "
                        f"{r.replicas:4.1f} replicas",
                        flush=True,
                    ),
                )
            write_measurements(OUT / "split_sweep.csv", rows)
            policy, env = train_policy(rows, reward, Schedule(episodes=3000, seed=0))
            policy.save(OUT / "split_policy.json")
            plot_measurements(rows, OUT / "split_sweep.png", env)
            plot_policy(policy, OUT / "split_policy.png")

            phases = [
                Phase(low, PRESETS["clear"], phase_s),
                Phase(high, PRESETS["clear"], phase_s),
                Phase(high, CONGESTED, phase_s),
                Phase(low, PRESETS["clear"], phase_s),
            ]
            static = best_static(env, reward, [(p.link.name, p.traffic) for p in phases])
            print(f"\n[3] schedule (best static target from the sweep: {static}) ...", flush=True)
            controller = Controller(
                control,
                policy,
                ["resnet-a", "resnet-b"],
                samples=3,
                link=lambda: live.link().name,
            )
            runs = [
                run_schedule(
                    live,
                    f"default {DEFAULT_TARGET}",
                    phases,
                    body,
                    headers,
                    reward,
                    static=DEFAULT_TARGET,
                ),
                run_schedule(
                    live, f"static {static}", phases, body, headers, reward, static=static
                ),
                run_schedule(live, "policy", phases, body, headers, reward, controller=controller),
            ]

    print("\n=== split ResNet-50 benchmark ===")
    print(_latency_line(args.latency_size, lat))
    print(f"policy settles on: {policy.table()}")
    print(f"\n{'strategy':<12} {'req/s':>8} {'p95 ms':>8} {'replica-s':>10} {'reward':>8}")
    for r in runs:
        print(
            f"{r.name:<12} {r.throughput:8.2f} {r.p95:8.0f} {r.replica_seconds:10.1f} "
            f"{r.reward:8.3f}"
        )
    default, best, learned = runs
    print(
        f"\npolicy vs best static: reward {learned.reward / best.reward:.3f}x, "
        f"throughput {learned.throughput / best.throughput:.3f}x, "
        f"replica-seconds {learned.replica_seconds / best.replica_seconds:.3f}x "
        f"(goal: within 5 %)"
    )
    print(
        f"policy vs default {DEFAULT_TARGET}: reward {learned.reward / default.reward:.3f}x, "
        f"throughput {learned.throughput / default.throughput:.3f}x, "
        f"p95 {learned.p95 / default.p95:.3f}x (goal: better)"
    )
    print(f"targets the policy set: {learned.targets}")
    print(f"outputs in {OUT}/ (split_sweep.csv/.png, split_policy.json/.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
