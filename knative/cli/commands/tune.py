"""`knflow tune start|status|best|list|deploy`: hyperparameter tuning runs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from ...instance import Instance, NotRunning
from ..common import CliError, command, data_dir, emit, group, table

# functions.tune (Optuna, SQLAlchemy) is imported by the handlers only: every `knflow` command
# loads this module to register its verbs, and should not pay for that import.


def register(groups: argparse._SubParsersAction) -> None:
    verbs = group(groups, "tune", "Hyperparameter tuning runs (Optuna studies driven by events)")
    start = command(verbs, "start", run_start, "Start a tuning run from a spec file", output=True)
    start.add_argument("spec", nargs="?", help="YAML/JSON tuning spec (space, objective, budget)")
    start.add_argument(
        "--request", help='plain request, e.g. "lr from 1e-4 to 1e-1, batch size 32 or 64"'
    )
    start.add_argument("--id", help="run id (default: generated)")
    status = command(verbs, "status", run_status, "Show a run's progress and trials", output=True)
    status.add_argument("id", help="tuning run id")
    best = command(verbs, "best", run_best, "Show a run's best trials (top 10)", output=True)
    best.add_argument("id", help="tuning run id")
    best.add_argument("--top", type=int, default=10, help="how many (default 10)")
    command(verbs, "list", run_list, "List tuning runs", output=True)
    deploy = command(
        verbs, "deploy", run_deploy, "Deploy the best (or a chosen) trial", output=True
    )
    deploy.add_argument("id", help="tuning run id")
    deploy.add_argument("--trial", type=int, help="trial number (default: the best)")
    deploy.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="wait up to SECONDS for the endpoint to serve it",
    )


def _spec(args: argparse.Namespace) -> dict:
    raw: dict = {}
    if args.spec:
        path = Path(args.spec).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror}", 2) from None
        if not text.strip():
            raise CliError(f"{path} is empty: write a search space, objective and budget", 2)
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CliError(f"{path} is not valid YAML/JSON: {exc}", 2) from None
        if not isinstance(raw, dict):
            raise CliError(f"{path} must hold a mapping (space, objective, budget, …)", 2)
    elif not args.request:
        raise CliError("give a SPEC file or --request 'lr from 1e-4 to 1e-1, …'", 2)
    if args.request:
        raw["request"] = args.request
    if args.id:
        raw["id"] = args.id
    return raw


def run_start(args: argparse.Namespace) -> int:
    from eventing.client import NoBroker, find_broker
    from functions.tune import SpaceError
    from functions.tune.client import start_run, validate
    from functions.tune.emit import SinkError

    raw = _spec(args)
    try:
        request = validate(raw)  # before looking for the broker: bad input is exit 2 either way
        start_run(find_broker(data_dir(args)), request)
    except SpaceError as exc:
        raise CliError(f"invalid tuning request: {exc}", 2) from None
    except (NoBroker, SinkError) as exc:
        raise CliError(str(exc)) from None
    if not emit(request.to_dict(), args.output):
        b = request.budget
        print(
            f"Tuning run '{request.id}' started: {b.max_trials} trials, {b.parallel_trials} at a "
            f"time, {request.objective.direction} {request.objective.name} "
            f"({request.sampler} sampler, {request.pruner} pruner)."
        )
        for p in request.params:
            print(f"  {p.describe()}")
        print(f"\nFollow it with: knflow tune status {request.id}")
    return 0


def _run(args: argparse.Namespace):
    from functions.tune import UnknownRun
    from functions.tune.client import studies_for

    try:
        return studies_for(data_dir(args)).get(args.id)
    except UnknownRun as exc:
        raise CliError(str(exc)) from None


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _params(params: dict) -> str:
    return " ".join(f"{k}={_fmt(v) if isinstance(v, float) else v}" for k, v in params.items())


def run_status(args: argparse.Namespace) -> int:
    view = _run(args).view()
    if emit(view, args.output):
        return 0
    c, obj = view["counts"], view["objective"]
    print(
        f"Tuning run '{view['id']}': {view['status']}"
        + (f" ({view['reason']})" if view["reason"] else "")
    )
    print(
        f"Objective: {obj['direction']} {obj['name']}   Trials: {c['complete']} complete, "
        f"{c['pruned']} pruned, {c['failed']} failed, {c['running']} running "
        f"of {view['budget']['max_trials']} ({view['budget']['parallel_trials']} at a time)"
    )
    if view["best"]:
        print(f"Best: trial {view['best']['number']} {obj['name']}={_fmt(view['best']['value'])}")
    if view["deployment"]:
        d = view["deployment"]
        print(
            f"Deployment: trial {d['trial']} {d['status']}"
            + (f" at {d['url']}" if d.get("url") else "")
        )
    print()
    rows = [
        (
            t["number"],
            t["state"].upper(),
            _fmt(t["value"]),
            _params(t["params"]),
            _fmt(t["duration"]),
        )
        for t in view["trials"]
    ]
    table(rows, ["trial", "state", obj["name"], "params", "seconds"])
    return 0


def run_best(args: argparse.Namespace) -> int:
    run = _run(args)
    top = run.top(max(1, args.top))
    if emit(top, args.output):
        return 0
    if not top:
        print(f"No trial of '{run.id}' has completed yet.")
        return 0
    name = run.request.objective.name
    rows = [(i + 1, t["number"], _fmt(t["value"]), _params(t["params"])) for i, t in enumerate(top)]
    table(rows, ["rank", "trial", name, "params"])
    return 0


def run_list(args: argparse.Namespace) -> int:
    from functions.tune.client import studies_for

    views = [r.view() for r in studies_for(data_dir(args)).runs()]
    summary = [{k: v[k] for k in ("id", "status", "counts", "best")} for v in views]
    if emit(summary, args.output):
        return 0
    if not views:
        print("No tuning runs found.")
        return 0
    rows = [
        (
            v["id"],
            v["status"],
            v["counts"]["complete"],
            v["counts"]["running"],
            _fmt(v["best"]["value"]) if v["best"] else "-",
        )
        for v in views
    ]
    table(rows, ["id", "status", "complete", "running", "best"])
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    from eventing.client import NoBroker, find_broker
    from functions.tune.client import deployment_status, request_deployment
    from functions.tune.deploy import NotDeployable
    from functions.tune.emit import SinkError

    run = _run(args)
    try:
        instance = Instance.load(data_dir(args))
        deployment = request_deployment(find_broker(data_dir(args)), run, args.trial)
    except (NotRunning, NoBroker, SinkError) as exc:
        raise CliError(str(exc)) from None
    except NotDeployable as exc:
        raise CliError(str(exc), 2) from None
    from storage import open_store

    predict, store = instance.services.get("predict", ""), open_store(instance.store_url)
    deadline = time.monotonic() + args.wait
    while deployment.get("status") not in ("ready", "failed") and time.monotonic() < deadline:
        time.sleep(1)
        deployment = deployment_status(run, predict, store) or deployment
    if emit(deployment, args.output):
        return 0
    print(
        f"Deploying trial {deployment['trial']} ({deployment['model']} v{deployment['version']})."
    )
    if deployment.get("status") == "ready":
        print(f"The model you asked for is served at {deployment['url']}")
        return 0
    if deployment.get("status") == "failed":
        raise CliError(
            f"the rollout failed: {deployment.get('reason') or 'see knflow revision list'}"
        )
    if args.wait:
        model = f"{deployment['model']} v{deployment['version']}"
        raise CliError(f"the endpoint did not serve {model} within {args.wait:g}s")
    print(f"Check with: knflow tune status {run.id}")
    return 0
