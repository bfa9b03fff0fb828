"""`python -m eventing.sources --data DIR --spec FILE --broker URL`: run every source of a spec."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

from ..process import daemon_parser, daemon_start, stop_when_gone
from .runner import Sources


def main(argv: list[str] | None = None) -> int:
    parser = daemon_parser("python -m eventing.sources", __doc__)
    parser.add_argument("--broker", required=True, help="broker ingress URL")
    parser.add_argument("--host", default="127.0.0.1", help="webhook receiver address")
    parser.add_argument("--port", type=int, default=0, help="webhook receiver port (0: free)")
    parser.add_argument("--no-watch", action="store_true", help="do not scan bucket folders")
    args = parser.parse_args(argv)
    pipeline = daemon_start("sources", args.spec)
    if pipeline is None:
        return 2
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"Error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        sources = Sources(
            pipeline, Path(args.data).resolve(), args.broker, watch_folders=not args.no_watch
        )
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await sources.start(sock)
        for name, url in sources.urls.items():
            print(f"Source '{name}' receives MinIO notifications at {url}", flush=True)
        watcher = asyncio.create_task(stop_when_gone(args.parent, stop)) if args.parent else None
        await stop.wait()
        if watcher is not None:
            watcher.cancel()
        await sources.stop()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
