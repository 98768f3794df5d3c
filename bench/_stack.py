"""The processes a load or crash benchmark runs against, on 127.0.0.1: `rezeption serve` on a
throwaway PostgreSQL database with one salon loaded, and for a salon on Cal.com also the Cal.com
emulator (`rezeption calcom-emulator --salon`, real clock, Cal.com's real 120 requests a minute),
the outbox worker (`rezeption worker`) and Redis (a database index of its own, emptied before and
after) shared by them, as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

from rezeption.bootstrap import Services, build
from rezeption.ops.crashload import ServerProcess, child_env
from rezeption.settings import Settings
from rezeption.store.db import Database
from rezeption.store.salon_file import read_salon
from rezeption.store.salon_import import import_salon

ROOT = Path(__file__).resolve().parents[1]
LOCAL_SALON = ROOT / "salons" / "friseur1.yaml"
CALCOM_SALON = ROOT / "salons" / "friseur1-calcom.yaml"
DEMO_EMULATOR = "http://127.0.0.1:8765"
KEY = "bench_key_0123456789abcdef"
REDIS = "redis://127.0.0.1:6379"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    """What runs: the server (restartable), and on Cal.com the emulator and the worker."""

    calendar: str
    database_url: str
    env: dict[str, str]
    server: ServerProcess
    salon_file: Path
    emulator: str | None = None
    worker: ServerProcess | None = None
    others: list[ServerProcess] = field(default_factory=list)

    @property
    def salon(self) -> Any:
        return read_salon(self.salon_file)

    def settings(self) -> Settings:
        """This stack's settings, for the checker's own services (reconciler, database)."""
        return Settings(
            database_url=self.database_url,
            redis_url=self.env.get("REZEPTION_REDIS_URL"),
            retell_api_key=KEY,
            admin_secret="bench_admin_secret_0123456789abcdef",
            environment="test",
        )

    @contextlib.asynccontextmanager
    async def services(self) -> AsyncIterator[Services]:
        services = build(self.settings())
        try:
            yield services
        finally:
            await services.close()

    async def put_faults(self, rules: list[dict[str, Any]]) -> None:
        assert self.emulator is not None
        async with httpx.AsyncClient(base_url=self.emulator, timeout=10) as http:
            response = await http.post("/_emulator/faults", json={"rules": rules, "replace": True})
            response.raise_for_status()

    async def clear_faults(self) -> None:
        assert self.emulator is not None
        async with httpx.AsyncClient(base_url=self.emulator, timeout=10) as http:
            (await http.delete("/_emulator/faults")).raise_for_status()


async def _wait_for(url: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=1.0) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


async def _load_salon(database_url: str, path: Path) -> None:
    database = Database.from_url(database_url)
    try:
        await import_salon(database, read_salon(path), now=datetime.now(UTC))
    finally:
        await database.dispose()


@contextlib.asynccontextmanager
async def stack(
    database_url: str, calendar: str, *, redis_db: int = 12, log_dir: Path | None = None
) -> AsyncIterator[Stack]:
    """Start the stack for `calendar` ("local" or "calcom") on a migrated, empty database; the
    server is started and ready; everything stops at the end."""
    tmp = Path(tempfile.mkdtemp(prefix=f"rezeption-{calendar}-"))
    logs = log_dir or tmp
    env = child_env(
        REZEPTION_DATABASE_URL=database_url,
        REZEPTION_RETELL_API_KEY=KEY,
        REZEPTION_ADMIN_SECRET="bench_admin_secret_0123456789abcdef",
        REZEPTION_LOG_LEVEL="warning",
        REZEPTION_DB_POOL_SIZE="20",
        REZEPTION_DEV_SECRETS_FILE=str(tmp / "dev-secrets.json"),
    )
    processes: list[ServerProcess] = []
    redis_url: str | None = None
    emulator: str | None = None
    worker: ServerProcess | None = None
    try:
        if calendar == "calcom":
            redis_url = f"{REDIS}/{redis_db}"
            redis.Redis.from_url(redis_url).flushdb()
            env["REZEPTION_REDIS_URL"] = redis_url
            port = free_port()
            emulator = f"http://127.0.0.1:{port}"
            salon_file = tmp / "salon.yaml"
            salon_file.write_text(
                CALCOM_SALON.read_text(encoding="utf-8").replace(DEMO_EMULATOR, emulator), encoding="utf-8"
            )
            emulation = ServerProcess(
                port, env, command=("calcom-emulator", "--port", str(port), "--salon", str(salon_file)),
                log_path=str(logs / "emulator.log"),
            )  # fmt: skip
            await emulation.start()
            processes.append(emulation)
            await _wait_for(f"{emulator}/_emulator/faults")
        else:
            salon_file = LOCAL_SALON
        await _load_salon(database_url, salon_file)
        if calendar == "calcom":
            worker = ServerProcess(0, env, command=("worker",), log_path=str(logs / "worker.log"))
            await worker.start()
            processes.append(worker)
        server = ServerProcess(free_port(), env, log_path=str(logs / "server.log"))
        await server.start()
        processes.append(server)
        yield Stack(calendar, database_url, env, server, salon_file, emulator, worker, processes)
    finally:
        for process in reversed(processes):
            process.stop()
        if redis_url is not None:
            redis.Redis.from_url(redis_url).flushdb()
