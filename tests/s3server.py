"""A real S3-protocol server on loopback for tests and benchmarks: moto's server mode.

It runs in its own process (so its CPU never competes with the client under test for a GIL)
on a port the kernel picks; the child prints the port once it is listening.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "knflow-test-access",
    "AWS_SECRET_ACCESS_KEY": "knflow-test-secret",
    "AWS_REGION": "us-east-1",
}

_CHILD = """
import sys, threading
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer("127.0.0.1", 0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the parent closes our stdin (or dies)
server.stop()
"""


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start moto in a child process; yields its endpoint URL; stops it on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **CREDENTIALS},
    )
    try:
        port = proc.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError("moto server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
