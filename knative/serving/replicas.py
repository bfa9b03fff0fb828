"""A revision's replicas: each one its own OS process (gunicorn + the function runtime).

The set grows and shrinks to `desired`. A replica gets traffic only while its readiness probe
passes. A replica that dies unexpectedly is replaced; its callers see the connection drop and the
router retries them elsewhere or answers 502. One that exits (or reports `start failed`) before
ever becoming ready marks the revision failed, with the exit code and the last log lines, and is
retried with exponential back-off. Scale-down drains: a replica leaving the set receives no new
requests and is stopped only once its in-flight requests are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from functions.runtime.server import gunicorn_command

log = logging.getLogger("knflow.serving")

STARTING, READY, UNREADY, DRAINING, STOPPED = "starting", "ready", "unready", "draining", "stopped"
STARTUP_POLL = 0.005  # readiness polling while a replica boots (cold start is on the clock)
PROBE_PERIOD = 0.5  # readiness polling once it is up
LIVENESS_FAILURES = 3  # consecutive failed liveness probes before a restart
PROGRESS_DEADLINE = 120.0  # a replica not ready by then fails the revision
STOP_GRACE = 10.0  # SIGTERM → SIGKILL


class RevisionFailed(Exception):
    """No replica can serve this revision; the message is the reason (exit code, log lines)."""


@dataclass(eq=False)
class Replica:
    id: int
    port: int
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    state: str = STARTING
    in_flight: int = 0
    started: float = field(default_factory=time.monotonic)
    ready_at: float | None = None
    exit_code: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


class ReplicaSet:
    """Replicas of one revision; `acquire`/`release` hand them out within containerConcurrency."""

    def __init__(
        self,
        revision: str,
        env: dict[str, str],
        concurrency: int,
        log_dir: Path,
        http: aiohttp.ClientSession,
        on_change: Callable[[ReplicaSet], None] = lambda _rs: None,
        timeout: float = 300.0,
    ) -> None:
        self.revision = revision
        self.env = env
        self.concurrency = concurrency
        self.log_dir = Path(log_dir)
        self.http = http
        self.on_change = on_change
        self.timeout = timeout
        self.replicas: list[Replica] = []
        self.desired = 0
        self.failure: str | None = None
        self.ever_ready = False
        self.restarts = 0
        self._ids = 0
        self._failures = 0
        self._retry_at = 0.0
        self._waiters: deque[asyncio.Future] = deque()
        self._tasks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._closed = False
        self._loop_task = asyncio.get_running_loop().create_task(self._reconcile_loop())

    # ---- what the router and the autoscaler use -------------------------------------------
    @property
    def active(self) -> list[Replica]:
        return [r for r in self.replicas if r.state in (STARTING, READY, UNREADY)]

    @property
    def waiting(self) -> int:
        """Requests held because no replica has room (the activator's buffer)."""
        return len(self._waiters)

    @property
    def ready(self) -> list[Replica]:
        return [r for r in self.replicas if r.state == READY]

    def scale(self, desired: int) -> None:
        if desired != self.desired:
            log.info("%s: scale %d -> %d", self.revision, self.desired, desired)
        self.desired = desired
        self._wake.set()

    async def acquire(self, timeout: float, avoid: Replica | None = None) -> Replica:
        """A ready replica with room for one more request; waits (buffers) while there is none.
        `avoid` (one that just failed this request) is taken only when no other has room."""
        deadline = time.monotonic() + timeout
        while True:
            if self._closed:
                raise RevisionFailed("the platform is shutting down")
            replica = self._pick(avoid)
            if replica is not None:
                replica.in_flight += 1
                return replica
            if self.failure and not any(r.state == STARTING for r in self.replicas):
                raise RevisionFailed(self.failure)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def release(self, replica: Replica) -> None:
        replica.in_flight -= 1
        self._notify()

    def forget(self, replica: Replica) -> None:
        """The router saw this replica's connection fail: stop routing to it until probed again."""
        if replica.state == READY and (replica.proc is None or replica.proc.returncode is not None):
            replica.state = UNREADY

    async def close(self, drain: float | None = None) -> None:
        """Drain (up to `drain` s, default timeoutSeconds) and stop every replica."""
        self._closed = True
        self.desired = 0
        self._loop_task.cancel()
        self._notify()  # held requests get a clear 503 instead of waiting for a replica
        await asyncio.gather(
            *(self._drain(r, drain) for r in list(self.replicas)), return_exceptions=True
        )
        for task in list(self._tasks):
            task.cancel()
        self._notify()

    # ---- internals ------------------------------------------------------------------------
    def _pick(self, avoid: Replica | None = None) -> Replica | None:
        best = fallback = None
        for r in self.replicas:
            if r.state != READY or (self.concurrency and r.in_flight >= self.concurrency):
                continue
            if r is avoid:
                fallback = r
            elif best is None or r.in_flight < best.in_flight:
                best = r
        return best or fallback

    def _notify(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reconcile_loop(self) -> None:
        while not self._closed:
            self._wake.clear()
            delay = self._reconcile()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _reconcile(self) -> float:
        active = self.active
        if len(active) < self.desired:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                return wait
            for _ in range(self.desired - len(active)):
                self._spawn(self._run(self._new_replica()))
        elif len(active) > self.desired:
            # drop the ones doing least: not ready first, then the least busy
            order = {STARTING: 0, UNREADY: 0, READY: 1}
            victims = sorted(active, key=lambda r: (order[r.state], r.in_flight))
            for r in victims[: len(active) - self.desired]:
                self._spawn(self._drain(r))
        return 1.0

    def _new_replica(self) -> Replica:
        self._ids += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        replica = Replica(
            self._ids, _free_port(), self.log_dir / f"{self.revision}-{self._ids}.log"
        )
        self.replicas.append(replica)
        return replica

    async def _run(self, replica: Replica) -> None:
        """Start one replica, wait for readiness, probe it, and handle its exit."""
        env = dict(self.env, PORT=str(replica.port), HOST="127.0.0.1")
        try:
            with open(replica.log_path, "ab") as out:
                replica.proc = await asyncio.create_subprocess_exec(
                    *gunicorn_command(env),
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches the platform, which drains first
                )
        except OSError as exc:
            replica.state = STOPPED
            self.replicas.remove(replica)
            self._fail(replica, f"could not start a replica: {exc}")
            self._notify()
            self.on_change(self)
            return
        log.info(
            "%s: replica %d started (pid %d, port %d)",
            self.revision,
            replica.id,
            replica.pid,
            replica.port,
        )
        prober = asyncio.get_running_loop().create_task(self._probe(replica))
        code = await replica.proc.wait()
        prober.cancel()
        _kill_group(replica.proc.pid)  # a worker left behind by a master that died
        replica.exit_code = code
        unexpected = replica.state not in (DRAINING, STOPPED)
        was_ready = replica.ready_at is not None
        replica.state = STOPPED
        self.replicas.remove(replica)
        if unexpected and not self._closed:
            if was_ready:
                self.restarts += 1
                log.warning(
                    "%s: replica %d crashed (exit code %s); restarting",
                    self.revision,
                    replica.id,
                    code,
                )
            else:
                self._fail(replica, f"replica exited with code {code} before becoming ready")
        self._notify()
        self._wake.set()
        self.on_change(self)

    def _fail(self, replica: Replica, why: str) -> None:
        tail = _tail(replica.log_path)
        self.failure = f"{why}" + (f"; last log lines: {tail}" if tail else "")
        self._failures += 1
        self._retry_at = time.monotonic() + min(30.0, 0.5 * 2 ** (self._failures - 1))
        log.error("%s: %s", self.revision, self.failure)

    async def _probe(self, replica: Replica) -> None:
        url = replica.url + "/health/readiness"
        timeout = aiohttp.ClientTimeout(total=5)
        while replica.state == STARTING:
            if time.monotonic() - replica.started > PROGRESS_DEADLINE:
                self._fail(replica, f"replica not ready within {PROGRESS_DEADLINE:.0f}s")
                replica.state = DRAINING
                await self._terminate(replica)
                return
            status, body = await _get(self.http, url, timeout)
            if status == 200:
                replica.state, replica.ready_at = READY, time.monotonic()
                self.failure, self._failures, self.ever_ready = None, 0, True
                log.info(
                    "%s: replica %d ready after %.2fs",
                    self.revision,
                    replica.id,
                    replica.ready_at - replica.started,
                )
                self._notify()
                self.on_change(self)
            elif status == 503 and body.startswith("start failed"):
                self._fail(replica, body.strip())
                replica.state = DRAINING
                await self._terminate(replica)
                return
            else:
                await asyncio.sleep(STARTUP_POLL)
        dead = 0
        while replica.state in (READY, UNREADY):
            await asyncio.sleep(PROBE_PERIOD)
            status, _ = await _get(self.http, url, timeout)
            if replica.state not in (READY, UNREADY) or status is None:
                continue  # draining, or the process is going away (its exit is handled above)
            new = READY if status == 200 else UNREADY
            if new != replica.state:
                log.info("%s: replica %d is now %s", self.revision, replica.id, new)
                replica.state = new
                self._notify()
                self.on_change(self)
            live, why = await _get(self.http, replica.url + "/health/liveness", timeout)
            dead = dead + 1 if live == 503 else 0
            if dead >= LIVENESS_FAILURES:  # as the kubelet does: restart a replica that is stuck
                log.warning(
                    "%s: replica %d failed liveness (%s); restarting",
                    self.revision,
                    replica.id,
                    why.strip(),
                )
                self.restarts += 1
                replica.state = DRAINING
                self._notify()
                self._wake.set()  # a replacement starts while this one is stopped
                await self._terminate(replica, grace=1.0)
                return

    async def _drain(self, replica: Replica, limit: float | None = None) -> None:
        if replica.state in (DRAINING, STOPPED):
            return
        replica.state = DRAINING
        deadline = time.monotonic() + (self.timeout if limit is None else limit)
        while replica.in_flight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        grace = STOP_GRACE if limit is None else max(1.0, min(STOP_GRACE, limit))
        await self._terminate(replica, grace)

    async def _terminate(self, replica: Replica, grace: float = STOP_GRACE) -> None:
        """SIGTERM to gunicorn (graceful), then SIGKILL to the replica's whole process group:
        a worker busy with a long request must not outlive its master."""
        proc = replica.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
        _kill_group(proc.pid)
        await proc.wait()


def _kill_group(pgid: int) -> None:
    """The replica runs in its own session (start_new_session), so its pid is its group id."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def _get(http: aiohttp.ClientSession, url: str, timeout) -> tuple[int | None, str]:
    try:
        async with http.get(url, timeout=timeout) as resp:
            return resp.status, await resp.text()
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None, ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    noise = ("[INFO]", "Booting worker", "Starting gunicorn", "Listening at", "Using worker")
    useful = [line for line in text if not any(n in line for n in noise)]
    return " | ".join((useful or text)[-lines:])
