"""A test-only function with switchable behaviour, shipped to replicas in a revision bundle.

Plain HTTP routes make load easy to generate:
  GET /work?sleep=S          sleeps S seconds, answers {"pid", "revision", "bytes" (of body)}
  GET /crash?once=PATH       the process dies (exit 9) mid-request; with `once`, only if PATH
                             does not exist yet (it is created first), so a retry succeeds
  GET /unready               this replica's readiness probe fails from now on
  GET /wedge                 this replica's liveness probe fails from now on
Events: `handle` raises BadInput for type `bad`, RuntimeError for type `boom`, echoes otherwise.
Config: {"start_sleep": S} delays start(); {"start_error": "why"} makes start() raise;
env PROBE_EXIT_AT_IMPORT=N exits with code N while loading (a revision that never becomes ready).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from flask import request

from eventing.http import with_attributes
from functions import BadInput

if os.environ.get("PROBE_EXIT_AT_IMPORT"):
    print("probe_fn: exiting at import as asked", flush=True)
    os._exit(int(os.environ["PROBE_EXIT_AT_IMPORT"]))


class Probe:
    def __init__(self) -> None:
        self.is_ready = True
        self.is_alive = True
        self.revision = ""

    def start(self, cfg) -> None:
        self.revision = cfg.revision
        time.sleep(float(cfg.config.get("start_sleep", 0)))
        if cfg.config.get("start_error"):
            raise RuntimeError(cfg.config["start_error"])

    def ready(self) -> bool:
        return self.is_ready

    def alive(self) -> bool:
        return self.is_alive

    def handle(self, event):
        if event.get_type() == "bad":
            raise BadInput("this input can never work")
        if event.get_type() == "boom":
            raise RuntimeError("exploded\nwith two lines")
        if event.get_type() == "quiet":
            return None
        return with_attributes(event, type="reply", source="/probe")

    def routes(self):
        return [
            ("/work", ["GET", "POST"], self.work),
            ("/crash", ["GET"], self.crash),
            ("/unready", ["GET"], self.unready),
            ("/wedge", ["GET"], self.wedge),
        ]

    def work(self):
        time.sleep(float(request.args.get("sleep", 0)))
        size = len(request.get_data())
        return json.dumps({"pid": os.getpid(), "revision": self.revision, "bytes": size})

    def crash(self):
        once = request.args.get("once")
        if once:
            marker = Path(once)
            if marker.exists():
                return json.dumps({"pid": os.getpid(), "crashed": False})
            marker.touch()
        time.sleep(0.05)
        os._exit(9)

    def unready(self):
        self.is_ready = False
        return json.dumps({"pid": os.getpid()})

    def wedge(self):
        self.is_alive = False
        return json.dumps({"pid": os.getpid()})


def new() -> Probe:
    return Probe()
