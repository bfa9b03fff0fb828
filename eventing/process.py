"""Start a knflow daemon (broker, sources) as its own OS process and wait until it listens.

A daemon announces itself by atomically writing an address file that names its pid; the parent
waits for that file (with *its* child's pid, so a stale file from a killed run never counts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class DaemonError(RuntimeError):
    """The daemon did not come up; the message carries the end of its log."""


class ProcessHandle:
    """A running daemon: `.pid`, `.address` (its address file), `.stop()`, `.kill()`."""

    def __init__(self, proc: subprocess.Popen, address: dict[str, Any], log_path: Path):
        self.proc, self.address, self.log_path = proc, address, log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (the daemon flushes and exits), SIGKILL if it takes longer than `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """`kill -9`: no chance to flush anything (crash tests)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def spawn(
    module: str,
    args: list[str],
    address_file: Path,
    log_path: Path,
    *,
    timeout: float = 30,
    env: dict[str, str] | None = None,
) -> ProcessHandle:
    """Run `python -m module args…`, output appended to `log_path`; wait for its address."""
    child_env = dict(os.environ if env is None else env)
    path = [str(REPO), child_env.get("PYTHONPATH")]
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, path))
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            start_new_session=True,  # a Ctrl-C in the parent's terminal is the parent's to handle
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        address = read_address(address_file)
        if address and address.get("pid") == proc.pid:
            return ProcessHandle(proc, address, log_path)
        if proc.poll() is not None:
            raise DaemonError(f"{module} exited with status {proc.returncode}: {_tail(log_path)}")
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    raise DaemonError(f"{module} did not start within {timeout:g}s: {_tail(log_path)}")


def daemon_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """The arguments every knflow daemon takes: its instance, its spec, and its launcher."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--data", required=True, help="instance directory")
    parser.add_argument("--spec", help="pipeline spec (default: the shipped knflow.yaml)")
    parser.add_argument(
        "--parent", type=int, metavar="PID", help="stop when this process (the launcher) is gone"
    )
    return parser


def daemon_start(name: str, spec: str | None):  # -> knative.spec.Pipeline | None
    """Configure logging and load the spec; None (after saying why on stderr) when it is invalid.

    Daemons are runtime entry points, so they may read the spec from `knative`; the import stays
    here, out of the eventing library proper.
    """
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    from knative.spec import SpecError, load_spec

    try:
        return load_spec(spec)
    except SpecError as exc:
        print(f"Error: invalid spec\n{exc}", file=sys.stderr)
        return None


async def stop_when_gone(pid: int, stop: asyncio.Event, every: float = 1.0) -> None:
    """Set `stop` once process `pid` (whoever launched this daemon) no longer exists.

    A daemon started by `knflow up` or a test must not outlive it: an orphaned broker would
    hold the data directory's lock and refuse the next `knflow up`.
    """
    while not stop.is_set():
        await asyncio.sleep(every)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            logging.getLogger("knflow").warning("launcher (pid %d) is gone: stopping", pid)
            stop.set()
        except PermissionError:
            pass


def read_address(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Readers see the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(no output)"
