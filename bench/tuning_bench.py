"""Tuning benchmark on the embedded platform (real broker, tune/train replicas, export, builder,
predict):

1. wall time of the same 12-trial run (digits ResNet-18, 1 epoch on a subset) with 1, 2 and 3
   trials in parallel, each on a fresh platform (cold start included alike) → speed-up ratios;
2. time from "budget spent" (the run completes) to "endpoint answering" (V2 inference on the
   deployed best trial answers 200 with its version).

Run: .venv/bin/python bench/tuning_bench.py [--trials 12] [--limit 300] [--parallel 1 2 3]

Measured 2026-11-21 on the shared 2-core machine (load average ~4 from other work):
  1 in parallel 54.0 s, 2 → 43.9 s (1.23x), 3 → 51.9 s (1.04x: three trainers on two cores);
  budget spent → endpoint answering 25.2 s (export + local bundle + canary + promotion).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from eventing.client import find_broker  # noqa: E402
from functions.tune.client import (  # noqa: E402
    deployment_status,
    request_deployment,
    start_run,
    studies_for,
    validate,
)
from knative.embedded import Platform  # noqa: E402
from knative.spec import load_spec  # noqa: E402
from tests.tuning_support import available_spec  # noqa: E402


def request(run_id: str, trials: int, parallel: int, limit: int) -> dict:
    return {
        "id": run_id,
        "space": {
            "lr": {"type": "float", "low": 0.005, "high": 0.3, "log": True},
            "batch_size": [32, 64],
        },
        "budget": {"max_trials": trials, "parallel_trials": parallel, "trial_timeout": 600},
        "fixed": {"epochs": 1, "limit": limit},
        "sampler": "random",  # the same configurations at every parallelism
        "pruner": "none",
        "seed": 11,
    }


def wait(predicate, timeout: float, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"gave up after {timeout:.0f}s")


def one_run(root: Path, parallel: int, args, deploy: bool) -> dict:
    data = root / f"p{parallel}"
    data.mkdir()
    spec = available_spec(root / f"knflow-p{parallel}.yaml", builder={"smoke_min_accuracy": 0.3})
    platform = Platform(load_spec(str(spec)), data, tick=0.5).start()
    try:
        broker = find_broker(data)
        studies = studies_for(data)
        run_id = f"bench-p{parallel}"
        started = time.monotonic()
        start_run(broker, validate(request(run_id, args.trials, parallel, args.limit)))

        def done():
            try:
                run = studies.get(run_id)
            except LookupError:
                return None
            return run if run.status != "running" else None

        run = wait(done, 1800)
        spent = time.monotonic()
        result = {
            "parallel": parallel,
            "wall": spent - started,
            "best": run.view()["best"]["value"],
        }
        print(
            f"  {parallel} in parallel: {result['wall']:.1f}s for {args.trials} trials "
            f"(best val_accuracy {result['best']:.3f})",
            flush=True,
        )
        if deploy:
            request_deployment(broker, run)
            predict = platform.service_url("predict")
            state = wait(
                lambda: (
                    (d := deployment_status(run, predict))
                    and d["status"] in ("ready", "failed")
                    and d
                ),
                900,
            )
            if state["status"] != "ready":
                raise RuntimeError(f"deployment failed: {state.get('reason')}")
            body = {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, 1, 28, 28],
                        "datatype": "FP32",
                        "data": [0.0] * 784,
                    }
                ]
            }
            wait(lambda: requests.post(state["url"], json=body, timeout=30).status_code == 200, 120)
            result["deploy"] = time.monotonic() - spent
            print(
                f"  budget spent → endpoint answering: {result['deploy']:.1f}s ({state['url']})",
                flush=True,
            )
        return result
    finally:
        platform.stop(drain=5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--limit", type=int, default=300, help="training images per trial")
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    print(
        f"Tuning benchmark: {args.trials} trials, 1 epoch on {args.limit} digits each", flush=True
    )
    with tempfile.TemporaryDirectory(prefix="knflow-tuning-bench-") as tmp:
        results = [
            one_run(Path(tmp), p, args, deploy=p == max(args.parallel)) for p in args.parallel
        ]
    base = next((r["wall"] for r in results if r["parallel"] == 1), results[0]["wall"])
    print("\nparallel   wall (s)   speed-up vs 1")
    for r in results:
        print(f"{r['parallel']:>8}   {r['wall']:>8.1f}   {base / r['wall']:>12.2f}x")
    deployed = [r for r in results if "deploy" in r]
    if deployed:
        print(f"\nbudget spent → endpoint answering: {deployed[0]['deploy']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
