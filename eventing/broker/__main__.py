"""`python -m eventing.broker --data DIR [--spec FILE] [--host H] [--port N]`: run the Broker."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from aiohttp import web

from ..process import (
    daemon_parser,
    daemon_start,
    read_address,
    stop_when_gone,
    write_json_atomic,
)
from .core import Broker, broker_dir
from .server import DEFAULT_MAX_BODY, make_app

log = logging.getLogger("knflow.broker")


def main(argv: list[str] | None = None) -> int:
    parser = daemon_parser("python -m eventing.broker", __doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--max-body", type=int, default=DEFAULT_MAX_BODY, help="largest request body in bytes"
    )
    parser.add_argument(
        "--max-in-flight", type=int, default=32, help="concurrent requests per Trigger"
    )
    args = parser.parse_args(argv)
    pipeline = daemon_start("broker", args.spec)
    if pipeline is None:
        return 2
    state = broker_dir(Path(args.data).resolve())
    state.mkdir(parents=True, exist_ok=True)
    lock = os.open(state / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        running = read_address(state / "address.json") or {}
        print(
            f"Error: a broker already runs for {args.data} (pid {running.get('pid', '?')}, "
            f"{running.get('url', 'address unknown')})",
            file=sys.stderr,
        )
        return 1
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"Error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    broker = Broker(pipeline, Path(args.data).resolve(), max_in_flight=args.max_in_flight)
    asyncio.run(_serve(broker, sock, args.max_body, state / "address.json", args.parent))
    return 0


async def _serve(
    broker: Broker, sock: socket.socket, max_body: int, address: Path, parent: int | None
) -> None:
    await broker.start()
    runner = web.AppRunner(make_app(broker, max_body), access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    host, port = sock.getsockname()[:2]
    base = f"http://{host}:{port}"
    broker.url = f"{base}/{broker.namespace}/{broker.name}"
    broker.resolver.base_url = base  # a subscriber `uri: /path` is relative to the broker
    write_json_atomic(
        address,
        {
            "url": broker.url,
            "base": base,
            "pid": os.getpid(),
            "namespace": broker.namespace,
            "broker": broker.name,
        },
    )
    log.info("broker %s/%s listening on %s", broker.namespace, broker.name, broker.url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(stop_when_gone(parent, stop)) if parent else None
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    log.info("stopping: flushing the journal")
    broker.feed.close()  # end `events tail -f` streams, or cleanup would wait for them
    await runner.cleanup()
    await broker.stop()
    if (read_address(address) or {}).get("pid") == os.getpid():
        address.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
