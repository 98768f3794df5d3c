"""Crash a server under load: `rezeption serve` as a child process on one port of 127.0.0.1, killed
with SIGKILL at random moments while `ops.loadtest` calls run against it, and started again on the
same port each time (`bench/crash.py` and its short test).

Nothing is shut down cleanly: a request in flight at a kill gets a dropped connection (its caller
hears an error, and the load generator marks a write unanswered: it may or may not have happened),
a saga between its steps stops where it is, a transaction open at the kill is rolled back by the
database. What must hold afterwards is checked by `ops.loadcheck`, after the reconciler has run.

Bounded: a given number of kills, each start waits at most `ready_timeout`, the load rounds are
counted, and traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from rezeption.ops.loadtest import CallResult, LoadResult, LoadTest

__all__ = ["CrashRun", "ServerProcess", "kill_during_load"]


class ServerProcess:
    """`rezeption serve --port PORT` (or another rezeption command) as a child process with `env`."""

    def __init__(
        self,
        port: int,
        env: Mapping[str, str],
        *,
        command: tuple[str, ...] = ("serve",),
        ready_timeout: float = 60.0,
        log_path: str | None = None,
    ) -> None:
        self.port = port
        self.env = dict(env)
        self.command = command
        self.ready_timeout = ready_timeout
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "rezeption.cli", *self.command]
        if self.command[:1] == ("serve",):
            args += ["--port", str(self.port)]
        if self.log_path is None:
            return subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    async def start(self) -> None:
        """Start the process; for `serve`, wait until `/ready` answers 200 (else RuntimeError)."""
        self.proc = self._spawn()
        self.starts += 1
        if self.command[:1] != ("serve",):
            return
        deadline = time.monotonic() + self.ready_timeout
        async with httpx.AsyncClient(timeout=1.0) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode} while starting")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server not ready within {self.ready_timeout} s")

    def kill(self) -> None:
        """SIGKILL, and wait for the process to be gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (a graceful end), SIGKILL after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class CrashRun:
    """The load rounds a crash run made and the kills it dealt."""

    rounds: list[tuple[LoadTest, LoadResult]] = field(default_factory=list)
    kills: int = 0
    kill_after_seconds: list[float] = field(default_factory=list)  # each kill's moment after ready
    restart_seconds: list[float] = field(default_factory=list)

    def expected_active(self) -> dict[str, int | None]:
        """What every call of every round heard (see `LoadResult.expected_active`)."""
        expected: dict[str, int | None] = {}
        for _, result in self.rounds:
            expected.update(result.expected_active())
        return expected

    def expected_starts(self) -> dict[str, str]:
        """When every call of every round expected to hold one starts (`LoadResult.expected_starts`)."""
        starts: dict[str, str] = {}
        for _, result in self.rounds:
            starts.update(result.expected_starts())
        return starts

    @property
    def all_calls(self) -> list[CallResult]:
        """Every call of every round, the earlier calls included (a kill lands in either)."""
        return [call for _, result in self.rounds for call in result.all_calls]

    @property
    def calls(self) -> int:
        return len(self.all_calls)


async def kill_during_load(
    server: ServerProcess,
    make_load: Callable[[int], LoadTest],
    *,
    kills: int,
    uptime: tuple[float, float],
    seed: int,
    max_rounds: int = 10,
) -> CrashRun:
    """Run load rounds (`make_load(round)`, one after the other) against the started `server`, and
    SIGKILL it `kills` times, each after a random `uptime` (seconds, uniform) since it was ready,
    restarting it at once on the same port. A round that ends before the kills are dealt is followed
    by the next, at most `max_rounds`; the last round runs to its end after the last kill."""
    rng = random.Random(seed)
    run = CrashRun()
    load: asyncio.Task[LoadResult] | None = None
    test: LoadTest | None = None
    try:
        while True:
            if load is None or load.done():
                if load is not None and test is not None:
                    run.rounds.append((test, load.result()))
                if run.kills >= kills or len(run.rounds) >= max_rounds:
                    break
                test = make_load(len(run.rounds))
                load = asyncio.create_task(test.run())
            if run.kills >= kills:
                await asyncio.wait({load})
                continue
            wait = rng.uniform(*uptime)
            await asyncio.wait({load}, timeout=wait)
            if load.done():
                continue
            server.kill()
            run.kills += 1
            run.kill_after_seconds.append(round(wait, 3))
            began = time.monotonic()
            await server.start()
            run.restart_seconds.append(round(time.monotonic() - began, 3))
    finally:
        if load is not None and not load.done():
            load.cancel()
            await asyncio.gather(load, return_exceptions=True)
    return run


def child_env(**variables: str) -> dict[str, str]:
    """This process's environment plus `variables` (REZEPTION_* settings for a child)."""
    return {**os.environ, **variables}
