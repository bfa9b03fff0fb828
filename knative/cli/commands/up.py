"""`knflow up`: run the whole pipeline on this machine in the foreground."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from ...instance import Instance, NotRunning
from ..common import CliError, command, data_dir, table
from .spec import load_or_exit


def register(groups: argparse._SubParsersAction) -> None:
    up = command(groups, "up", run, "Run broker, store, sources and services in the foreground")
    up.add_argument("--spec", help="pipeline file (default: the shipped knflow.yaml)")
    up.add_argument(
        "--tick", type=float, default=1.0, metavar="SECONDS", help="autoscaler period (default 1)"
    )
    up.add_argument(
        "--ui-port", type=int, default=8080, metavar="PORT", help="web page port (-1: no page)"
    )


def run(args: argparse.Namespace) -> int:
    from ...embedded import Platform  # aiohttp & co. only for this command
    from ...serving import ServingError

    pipeline = load_or_exit(args.spec)
    data = data_dir(args)
    try:
        other = Instance.load(data)
    except NotRunning:
        other = None
    if other is not None:
        raise CliError(f"a knflow instance (pid {other.pid}) is already running for {data}")
    if args.tick <= 0:
        raise CliError("--tick must be greater than 0", 2)
    data.mkdir(parents=True, exist_ok=True)
    _log_to(data / ".knflow" / "knflow.log")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    print(
        f"Starting pipeline '{pipeline.name}' in namespace '{pipeline.namespace}' "
        f"(data: {data}) ...",
        flush=True,
    )
    platform = Platform(pipeline, data, tick=args.tick)
    try:
        platform.start()
    except ServingError as exc:
        raise CliError(str(exc)) from None
    except RuntimeError as exc:  # a broker or sources process that did not come up
        raise CliError(f"could not start: {exc}") from None
    _print_urls(platform)
    page = _start_page(data, args.ui_port)
    print("\nknflow is up. Press Ctrl-C to stop.", flush=True)
    while not stop.wait(0.5):
        pass
    if page is not None:
        page.stop()
    print("\nStopping: draining in-flight requests ...", flush=True)
    platform.stop()
    print("Stopped.", flush=True)
    return 0


def _print_urls(platform) -> None:
    serving = platform.serving
    rows = []
    for name, svc in serving.services.items():
        rows.append([name, svc.url, svc.state.latest.name])
    print()
    table(rows, ["service", "url", "latest"])
    print()
    if platform.broker_url:
        print(f"Broker '{platform.pipeline.broker.name}' is ready at URL:\n{platform.broker_url}")
    else:
        print("Broker: not available (the eventing part is missing)")
    for name, url in platform.source_urls.items():
        print(f"Source '{name}': {url}")
    print(f"Object store: {platform.store_url}")
    print(f"Control API: {platform.control_url}", flush=True)


def _start_page(data, port: int):
    """The web page (knative.ui) next to the instance; a busy port is a warning, not a failure."""
    if port < 0:
        return None
    from ...ui.server import UIServer

    try:
        page = UIServer(Instance.load(data), data, port).start()
    except (OSError, NotRunning) as exc:
        print(f"Web page: not started ({exc})", flush=True)
        return None
    print(f"Web page: {page.url}", flush=True)
    return page


def _log_to(path) -> None:
    """Details go to <data>/.knflow/knflow.log; warnings also to the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    file_handler = logging.FileHandler(path)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root.addHandler(file_handler)
    root.addHandler(console)
