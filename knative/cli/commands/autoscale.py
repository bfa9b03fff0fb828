"""`knflow autoscale collect|train|show|apply`: learn concurrency targets for the split model.

collect  sweeps target x traffic x link against the live halves and writes sweep.csv + sweep.png
train    fits the sweep (exponential regression), runs Q-learning, writes policy.json + PNGs
show     prints where a policy settles for each link and traffic level
apply    one autoscaler tick by hand: observe traffic, set targets (what the ping does)
Files default to <data>/.knflow/autoscale/, where the `autoscaler` service looks for them.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

from ..common import CliError, command, data_dir, emit, group, table


def register(groups: argparse._SubParsersAction) -> None:
    verbs = group(groups, "autoscale", "Learn and apply concurrency targets for the split model")

    collect = command(
        verbs, "collect", run_collect, "Measure the live halves: target x traffic x link"
    )
    collect.add_argument(
        "--targets", default="1,2,4,8", help="concurrency targets (default 1,2,4,8)"
    )
    collect.add_argument("--traffic", default="1,2,4", help="concurrent clients (default 1,2,4)")
    collect.add_argument(
        "--link",
        action="append",
        metavar="SETTING",
        help="link preset (clear, congested) or name:bandwidth=B,latency=S,max_transfers=N; "
        "repeatable (default: clear and congested)",
    )
    collect.add_argument("--seconds", type=float, default=8.0, help="measured seconds per cell")
    collect.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per cell")
    collect.add_argument("--image-size", type=int, default=64, help="input images (default 64)")
    collect.add_argument("--services", default="resnet-a,resnet-b", help="half A,half B")
    collect.add_argument(
        "--out", type=Path, help="CSV path (default <data>/.knflow/autoscale/sweep.csv)"
    )
    collect.add_argument(
        "--start",
        action="store_true",
        help="start the two halves embedded for the sweep (when no `knflow up` is running)",
    )
    collect.add_argument("--spec", help="pipeline file for --start (default: the shipped one)")

    train = command(
        verbs, "train", run_train, "Fit the sweep and learn a policy (Q-learning)", True
    )
    train.add_argument(
        "--csv", type=Path, help="sweep CSV (default <data>/.knflow/autoscale/sweep.csv)"
    )
    train.add_argument(
        "--out", type=Path, help="policy JSON (default <data>/.knflow/autoscale/policy.json)"
    )
    train.add_argument("--episodes", type=int, default=3000)
    train.add_argument("--steps", type=int, default=30, help="steps per episode")
    train.add_argument("--alpha", type=float, default=0.2, help="learning rate")
    train.add_argument("--gamma", type=float, default=0.8, help="discount")
    train.add_argument("--epsilon-start", type=float, default=1.0)
    train.add_argument("--epsilon-end", type=float, default=0.05)
    train.add_argument("--epsilon-decay", choices=("exponential", "linear"), default="exponential")
    train.add_argument("--traffic-change", type=float, default=0.3, help="chance per step")
    train.add_argument("--slo-ms", type=float, default=1000.0, help="p95 latency objective")
    train.add_argument("--latency-weight", type=float, default=1.0, help="penalty over the SLO")
    train.add_argument("--replica-cost", type=float, default=0.2, help="req/s per replica")
    train.add_argument(
        "--switch-cost", type=float, default=0.0, help="req/s lost per target change (revision)"
    )
    train.add_argument("--seed", type=int, default=0)

    show = command(verbs, "show", run_show, "Show where a policy settles", True)
    show.add_argument("--policy", type=Path, help="policy JSON (default: the trained one)")

    apply = command(verbs, "apply", run_apply, "Apply the policy once to the live services", True)
    apply.add_argument("--policy", type=Path, help="policy JSON (default: the trained one)")
    apply.add_argument("--services", default="resnet-a,resnet-b")
    apply.add_argument("--link", help="link condition to assume (default: ask half A)")


def autoscale_dir(args: argparse.Namespace) -> Path:
    return data_dir(args) / ".knflow" / "autoscale"


def _ints(text: str, what: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise CliError(f"{what} must be comma-separated integers, not {text!r}", 2) from None
    if not values or values[0] < 1:
        raise CliError(f"{what} must be positive integers", 2)
    return values


# --- collect ---------------------------------------------------------------------------------
def run_collect(args: argparse.Namespace) -> int:
    from functions.autoscaler import ControlError, write_measurements
    from functions.autoscaler.plots import plot_measurements
    from functions.autoscaler.sweep import measure
    from functions.split.link import LinkError, parse_link

    targets = _ints(args.targets, "--targets")
    traffic = _ints(args.traffic, "--traffic")
    try:
        links = [parse_link(s) for s in (args.link or ["clear", "congested"])]
    except LinkError as exc:
        raise CliError(str(exc), 2) from None
    if args.seconds <= 0 or args.warmup < 0:
        raise CliError("--seconds must be positive and --warmup not negative", 2)
    if not 32 <= args.image_size <= 1024:
        raise CliError("--image-size must be between 32 and 1024", 2)
    services = [s.strip() for s in args.services.split(",") if s.strip()]
    if len(services) != 2:
        raise CliError("--services takes two names: half A,half B", 2)
    out = args.out or autoscale_dir(args) / "sweep.csv"
    cells = len(targets) * len(traffic) * len(links)
    live = live_split(args, services)  # fails here, before the heavy imports, when none runs
    print(
        f"Sweeping {cells} cells ({len(links)} links x {len(targets)} targets x "
        f"{len(traffic)} traffic levels, {args.warmup:g}+{args.seconds:g} s each) ...",
        flush=True,
    )
    import torch

    from functions.split import encode

    headers, body = encode(torch.rand(1, 3, args.image_size, args.image_size))
    done = [0]

    def progress(row) -> None:
        done[0] += 1
        print(
            f"[{done[0]}/{cells}] link={row.link} target={row.target} traffic={row.traffic}: "
            f"{row.throughput:.2f} req/s, p95 {row.p95_ms:.0f} ms, {row.replicas:.1f} replicas"
            + (f", {row.errors} errors" if row.errors else ""),
            flush=True,
        )

    with live as split:
        try:
            rows = measure(
                split, body, headers, targets, traffic, links, args.seconds, args.warmup, progress
            )
        except ControlError as exc:
            raise CliError(str(exc)) from None
    write_measurements(out, rows)
    png = plot_measurements(rows, out.with_suffix(".png"))
    print(f"\nMeasurements written to {out}\nPlot written to {png}")
    return 0


def live_split(args: argparse.Namespace, services: list[str]) -> contextlib.AbstractContextManager:
    """The halves of the running instance, or (--start) of one started just for this; checked
    now (so a missing instance fails fast), entered by the caller."""
    from functions.autoscaler.control import EmbeddedControl
    from functions.autoscaler.sweep import LiveSplit

    from ...instance import Instance, NotRunning

    data = data_dir(args)
    try:
        instance = Instance.load(data)
    except NotRunning as exc:
        if not args.start:
            raise CliError(f"{exc}, or pass --start") from None
        return _started(args, services)
    missing = [s for s in services if s not in instance.services]
    if missing:
        raise CliError(f"the running instance has no service {', '.join(missing)}")
    control = EmbeddedControl(instance.control_url, instance.namespace)
    return contextlib.nullcontext(LiveSplit(control, instance.services[services[0]], services))


@contextlib.contextmanager
def _started(args: argparse.Namespace, services: list[str]) -> Iterator:
    from functions.autoscaler.control import EmbeddedControl
    from functions.autoscaler.sweep import LiveSplit

    from ...embedded import Platform
    from .spec import load_or_exit

    pipeline = load_or_exit(args.spec)
    try:
        chosen = [pipeline.service(name) for name in services]
    except KeyError as exc:
        raise CliError(str(exc.args[0])) from None
    subset = dataclasses.replace(pipeline, services=chosen, triggers=[], sources=[])
    data = data_dir(args)
    print(f"Starting {', '.join(services)} (data: {data}) ...", flush=True)
    with Platform(subset, data, tick=0.5, broker=False, sources=False) as platform:
        control = EmbeddedControl(platform.control_url, pipeline.namespace)
        yield LiveSplit(control, platform.service_url(services[0]), services)


# --- train -----------------------------------------------------------------------------------
def run_train(args: argparse.Namespace) -> int:
    from functions.autoscaler import Reward, Schedule, read_measurements, train_policy
    from functions.autoscaler.plots import plot_measurements, plot_policy

    csv_path = args.csv or autoscale_dir(args) / "sweep.csv"
    out = args.out or autoscale_dir(args) / "policy.json"
    try:
        rows = read_measurements(csv_path)
        schedule = Schedule(
            episodes=args.episodes,
            steps=args.steps,
            alpha=args.alpha,
            gamma=args.gamma,
            epsilon_start=args.epsilon_start,
            epsilon_end=args.epsilon_end,
            epsilon_decay=args.epsilon_decay,
            traffic_change=args.traffic_change,
            seed=args.seed,
        )
        reward = Reward(args.slo_ms, args.latency_weight, args.replica_cost, args.switch_cost)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    quiet = bool(args.output)

    def progress(episode: int, mean: float) -> None:
        if not quiet:
            print(f"episode {episode}/{schedule.episodes}: mean reward {mean:.3f}", flush=True)

    try:
        policy, env = train_policy(rows, reward, schedule, progress)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    policy.save(out)
    fit_png = plot_measurements(rows, out.with_name(out.stem + "-fit.png"), env)
    policy_png = plot_policy(policy, out.with_suffix(".png"))
    summary = {
        "policy": str(out),
        "plots": [str(fit_png), str(policy_png)],
        "settles_on": policy.table(),
        "fits": {k: {m: v["kind"] for m, v in fits.items()} for k, fits in env.describe().items()},
    }
    if emit(summary, args.output):
        return 0
    print()
    _print_policy(policy)
    print(f"\nPolicy written to {out}\nPlots written to {fit_png}, {policy_png}")
    return 0


def _print_policy(policy) -> None:
    settled = policy.table()
    rows = [
        [link, level, settled[link][level]]
        for link in policy.links
        for level in policy.traffic_levels
    ]
    table(rows, ["link", "traffic", "target"])


def _load_policy(args: argparse.Namespace):
    from functions.autoscaler import Policy, PolicyError

    path = args.policy or autoscale_dir(args) / "policy.json"
    try:
        return Policy.load(path)
    except PolicyError as exc:
        raise CliError(f"{exc} (train one with: knflow autoscale train)") from None


def run_show(args: argparse.Namespace) -> int:
    policy = _load_policy(args)
    if not emit({"settles_on": policy.table(), "training": policy.training}, args.output):
        _print_policy(policy)
    return 0


# --- apply -----------------------------------------------------------------------------------
def run_apply(args: argparse.Namespace) -> int:
    import requests

    from functions.autoscaler import ControlError, Controller, EmbeddedControl

    from ...instance import Instance, NotRunning

    policy = _load_policy(args)
    try:
        instance = Instance.load(data_dir(args))
    except NotRunning as exc:
        raise CliError(str(exc)) from None
    services = [s.strip() for s in args.services.split(",") if s.strip()]

    def ask_a() -> str | None:
        try:
            return requests.get(instance.services[services[0]] + "/link", timeout=30).json()["name"]
        except (requests.RequestException, ValueError, KeyError):
            return None

    control = EmbeddedControl(instance.control_url, instance.namespace)
    try:
        decision = Controller(control, policy, services, link=ask_a).tick(link=args.link)
    except ControlError as exc:
        raise CliError(str(exc)) from None
    if emit(decision.as_dict(), args.output):
        return 0
    print(f"Traffic {decision.traffic:.2f} in flight, link {decision.link or 'unknown'}")
    for name, (before, after) in decision.changes.items():
        print(f"Service '{name}' target changed from {before} to {after}.")
    for name, target in decision.kept.items():
        print(f"Service '{name}' keeps target {target}.")
    if decision.traffic <= 0:
        print("No traffic: targets left alone (the halves scale to zero).")
    return 0
