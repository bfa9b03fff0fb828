"""`knflow ui`: serve the web page against the running instance (`knflow up` also serves it)."""

from __future__ import annotations

import argparse
import signal
import threading

from ...instance import Instance, NotRunning
from ..common import CliError, command, data_dir


def register(groups: argparse._SubParsersAction) -> None:
    ui = command(
        groups, "ui", run, "Serve the web page (tuning, pipeline) for the running instance"
    )
    ui.add_argument(
        "--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080, 0: any)"
    )


def run(args: argparse.Namespace) -> int:
    from ...ui.server import UIServer

    data = data_dir(args)
    try:
        instance = Instance.load(data)
    except NotRunning as exc:
        raise CliError(str(exc)) from None
    try:
        server = UIServer(instance, data, args.port).start()
    except OSError as exc:
        raise CliError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
    print(f"Web page: {server.url}  (Ctrl-C to stop)", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0
