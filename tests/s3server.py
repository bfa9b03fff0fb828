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

import pytest

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


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server for the whole session, with this process's AWS_* env pointing at it."""
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        with moto_server() as url:
            yield url
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
