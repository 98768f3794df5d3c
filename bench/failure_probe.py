"""Benchmark: how a checkout of rezeption answers failure cases, measured from outside over HTTP.

Each checkout is started as the real server (`python -m rezeption.cli serve` on 127.0.0.1, the
venv of this repository, PYTHONPATH=<checkout>/src so that checkout's code is imported), migrated
with its own `db upgrade` and loaded with its own `salons/friseur1.yaml`. Every Retell request is
signed as Retell signs it. The cases (SQLite unless they say PostgreSQL):

  1 pg_refused                 PostgreSQL refuses after start-up (TCP proxy): a function, call_inbound,
                               a call_ended webhook, /ready -- status and latency
  2 pg_hanging                 PostgreSQL accepts and never answers, server started fresh: seconds
                               until /health answers, then a function and /ready
  3 nested_json                5000-deep nested JSON on the three Retell routes
  4 nul_on_pg                  a NUL in the call id, the booking name, a transcript (PostgreSQL)
  5 webhook_timestamp          call_ended with start_timestamp 10**18
  6 date_9999                  "31.12.9999" in check_availability and find_appointments, twice each
  7 misrouted_body             a webhook body and bare `{}` posted to cancel_appointment: does the
                               booking survive?
  8 replay                     an exact replay of a booking and of a read
  9 changeme_dev               development without secrets: is a request signed with "changeme" accepted?
 10 weak_secrets_production    `db current` in production with weak or equal secrets: exit code
 11 production_docs            /docs, /openapi.json, /redoc and /ready's schema revision in production
 12 sqlite_locked              another process holds SQLite's write lock during a booking
 13 same_booking_other_words   "12:00" then "12 Uhr" in the same call
 14 calcom_webhook_big_body    a 200 MiB chunked body to the Cal.com webhook: status, peak RSS
 15 slow_headers               100 connections sending one header byte every 2 s: still open after 30 s?
 16 log_scan                   the caller's number and name in the servers' stderr

Each case has a hard time limit; a case that cannot be measured records an error string. All
traffic goes to 127.0.0.1; every server started is killed at the end.

Run: .venv/bin/python bench/failure_probe.py                 both: before (commit 12d9df8, a git
                                                              worktree at /tmp/rezeption-before) and after
     .venv/bin/python bench/failure_probe.py --checkout PATH --label before|after
Prints a table and writes bench/results/failure_probe.json (a single-checkout run replaces only
its own label in that file).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import select
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.proxy import TcpProxy  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "failure_probe.json"
PYTHON = (
    str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
)
BEFORE_COMMIT = "12d9df8"
BEFORE_PATH = Path("/tmp/rezeption-before")
PG_HOST, PG_PORT = "127.0.0.1", 5432
CALLER = "+4915112345678"
CALLER_DIGITS = "15112345678"
NAME = "Peter Schuster"
CASE_TIMEOUT = 70.0  # seconds, per case (pg_hanging gets its start-up wait on top)
REQUEST_TIMEOUT = 30.0  # seconds, per request
STARTUP_TIMEOUT = 70.0
TOTAL_BUDGET = 600.0  # seconds for the whole run; later cases are skipped beyond it
MIB = 1024 * 1024


# --- signing, requests ---------------------------------------------------------------------------


def sign(body: bytes, api_key: str, timestamp_ms: int) -> str:
    """Retell's signature header (the formula of rezeption.retell.signature.sign)."""
    digest = hmac.new(api_key.encode(), body + str(timestamp_ms).encode(), hashlib.sha256).hexdigest()
    return f"v={timestamp_ms},d={digest}"


_stamp_lock = threading.Lock()
_last_stamp = 0


def fresh_stamp() -> int:
    """Now in ms, and always later than the last one handed out (no two requests look like a replay)."""
    global _last_stamp
    with _stamp_lock:
        _last_stamp = max(int(time.time() * 1000), _last_stamp + 1)
        return _last_stamp


@dataclass
class Reply:
    """What one HTTP request got back."""

    status: int | None
    latency_s: float
    body: Any = None
    error: str | None = None

    @property
    def reason(self) -> str | None:
        if isinstance(self.body, dict):
            reason = self.body.get("reason")
            if reason is None and isinstance(self.body.get("detail"), str):
                return f"detail: {self.body['detail'][:100]}"
            return None if reason is None else str(reason)
        return None

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "latency_s": round(self.latency_s, 3)}
        if self.reason is not None:
            out["reason"] = self.reason
        if isinstance(self.body, dict) and "ok" in self.body:
            out["ok"] = self.body["ok"]
        if self.error:
            out["error"] = self.error
        return out

    def short(self) -> str:
        if self.status is None:
            return f"ERR({self.error}) {self.latency_s:.1f}s"
        if self.reason and not self.reason.startswith("detail"):
            reason = f" {self.reason}"
        elif isinstance(self.body, dict) and self.body.get("ok") is True:
            reason = " ok"
        else:
            reason = ""
        return f"{self.status}{reason} {self.latency_s:.2f}s"


@dataclass
class Salon:
    slug: str
    agent: str
    number: str


class Client:
    """Talks to one server as Retell (signed) and as an operator (unsigned GETs)."""

    def __init__(self, base_url: str, api_key: str, salon: Salon) -> None:
        # a fresh connection per request: a connection the server dropped after one answer must not
        # turn the next request into a connection error
        self.http = httpx.Client(
            base_url=base_url, timeout=REQUEST_TIMEOUT, limits=httpx.Limits(max_keepalive_connections=0)
        )
        self.key = api_key
        self.salon = salon

    def close(self) -> None:
        self.http.close()

    def call(self, call_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "call_id": call_id,
            "agent_id": self.salon.agent,
            "from_number": CALLER,
            "to_number": self.salon.number,
            **extra,
        }

    def request(
        self,
        method: str,
        path: str,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> Reply:
        start = time.monotonic()
        try:
            response = self.http.request(method, path, content=content, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            return Reply(None, time.monotonic() - start, error=f"no answer within {timeout:.0f} s")
        except httpx.HTTPError as exc:
            return Reply(None, time.monotonic() - start, error=f"{type(exc).__name__}: {exc}"[:160])
        latency = time.monotonic() - start
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:200]
        return Reply(response.status_code, latency, body)

    def get(self, path: str, timeout: float = REQUEST_TIMEOUT) -> Reply:
        return self.request("GET", path, timeout=timeout)

    def post(
        self,
        path: str,
        body: Any,
        headers: dict[str, str] | None = None,
        signature: str | None = None,
        key: str | None = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> Reply:
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        signed = {
            "Content-Type": "application/json",
            "X-Retell-Signature": signature or sign(raw, key or self.key, fresh_stamp()),
            **(headers or {}),
        }
        return self.request("POST", path, content=raw, headers=signed, timeout=timeout)

    def function(
        self, name: str, args: dict[str, Any], call_id: str, timeout: float = REQUEST_TIMEOUT
    ) -> Reply:
        body = {"name": name, "call": self.call(call_id), "args": args}
        return self.post(f"/retell/functions/{name}", body, timeout=timeout)

    def inbound_body(self, call_id: str) -> dict[str, Any]:
        return {
            "event": "call_inbound",
            "call_inbound": {
                "call_id": call_id,
                "agent_id": self.salon.agent,
                "from_number": CALLER,
                "to_number": self.salon.number,
            },
        }

    def inbound(self, call_id: str, timeout: float = REQUEST_TIMEOUT) -> Reply:
        return self.post("/retell/inbound", self.inbound_body(call_id), timeout=timeout)

    def webhook(self, event: str, call_id: str, timeout: float = REQUEST_TIMEOUT, **call: Any) -> Reply:
        return self.post(
            "/retell/webhook", {"event": event, "call": self.call(call_id, **call)}, timeout=timeout
        )


def new_call(tag: str) -> str:
    return f"call_probe_{tag}_{uuid.uuid4().hex[:8]}"


def book_args(uhrzeit: str, datum: str = "Donnerstag", name: str = NAME) -> dict[str, str]:
    return {"name": name, "dienstleistung": "Bartpflege", "datum": datum, "uhrzeit": uhrzeit}


AVAILABILITY = {"dienstleistung": "Bartpflege", "datum": "Donnerstag", "uhrzeit": "12:00"}


# --- a checkout, its databases and its servers ---------------------------------------------------


def strong_secret() -> str:
    return secrets.token_hex(24)  # 48 hex characters: long, varied, no placeholder word


@dataclass
class Checkout:
    """One source tree to measure, run with this repository's venv and its own src on PYTHONPATH."""

    path: Path
    label: str
    workdir: Path
    retell_key: str = field(default_factory=strong_secret)
    admin_secret: str = field(default_factory=strong_secret)
    logs: list[Path] = field(default_factory=list)

    def env(self, database_url: str, **overrides: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REZEPTION_")}
        env.update(
            PYTHONPATH=str(self.path / "src"),
            PYTHONUNBUFFERED="1",
            REZEPTION_DATABASE_URL=database_url,
            REZEPTION_RETELL_API_KEY=self.retell_key,
            REZEPTION_ADMIN_SECRET=self.admin_secret,
            REZEPTION_ENVIRONMENT="development",
            REZEPTION_DEV_SECRETS_FILE=str(self.workdir / "dev.json"),
            REZEPTION_LOG_LEVEL="info",
        )
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def cli(
        self, args: list[str], env: dict[str, str], timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "rezeption.cli", *args],
            env=env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def prepare(self, database_url: str) -> None:
        """Migrate with this checkout's own migrations and load the demo salon."""
        env = self.env(database_url)
        for args in (["db", "upgrade"], ["tenants", "load", str(self.path / "salons" / "friseur1.yaml")]):
            done = self.cli(args, env)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-300:]}")

    def imported_from(self) -> str:
        done = subprocess.run(
            [PYTHON, "-c", "import rezeption; print(rezeption.__file__)"],
            env=self.env("sqlite+aiosqlite:///:memory:"),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.stdout.strip() or done.stderr.strip()[-200:]

    def salon(self) -> Salon:
        data = yaml.safe_load((self.path / "salons" / "friseur1.yaml").read_text(encoding="utf-8"))
        return Salon(str(data["slug"]), str(data["retell_agent_ids"][0]), str(data["phone_numbers"][0]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`rezeption serve` of a checkout on a free port of 127.0.0.1, stderr to a log file; killed on exit."""

    def __init__(self, checkout: Checkout, name: str, env: dict[str, str]) -> None:
        self.checkout = checkout
        self.name = name
        self.env = env
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = checkout.workdir / f"server-{name}.stderr.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None
        self.startup_error: str | None = None

    def __enter__(self) -> Server:
        self.checkout.logs.append(self.log)
        with (
            self.log.open("ab") as err,
            (self.checkout.workdir / f"server-{self.name}.stdout.log").open("ab") as out,
        ):
            self.process = subprocess.Popen(
                [PYTHON, "-m", "rezeption.cli", "serve", "--port", str(self.port)],
                env=self.env,
                cwd=self.checkout.workdir,
                stdout=out,
                stderr=err,
            )
        return self

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> bool:
        """Poll /health until 200 (sets startup_s) or the process dies or `timeout` passes."""
        assert self.process is not None
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
                self.startup_error = f"server exited {self.process.returncode}: {' | '.join(tail)[-300:]}"
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    self.startup_s = time.monotonic() - start
                    return True
            time.sleep(0.1)
        self.startup_error = f"/health did not answer within {timeout:.0f} s"
        return False

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def psql(sql: str, database: str = "postgres") -> str:
    done = subprocess.run(
        ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", "postgres", "-d", database, "-tAX", "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"psql: {done.stderr.strip()[-200:]}")
    return done.stdout.strip()


@contextlib.contextmanager
def pg_database(label: str) -> Iterator[str]:
    """A fresh PostgreSQL database (its name), dropped afterwards."""
    name = f"failure_probe_{label}_{uuid.uuid4().hex[:8]}"
    psql(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_url(port: int, database: str) -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database}"


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def sqlite_rows(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
        return list(db.execute(sql, params).fetchall())


def peak_rss_mb(pid: int) -> dict[str, float]:
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmHWM", "VmRSS"}:
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return fields


# --- the cases -----------------------------------------------------------------------------------


@dataclass
class Context:
    """What a case may use: the checkout, its salon, clients of its running servers, its databases."""

    checkout: Checkout
    salon: Salon
    sqlite: Client | None = None
    sqlite_server: Server | None = None
    sqlite_path: Path | None = None
    template_db: Path | None = None
    pg: Client | None = None
    pg_name: str | None = None
    proxy: TcpProxy | None = None


def need(value: Any, what: str) -> Any:
    if value is None:
        raise RuntimeError(f"{what} not available")
    return value


def max_latency(*replies: Reply) -> float:
    return round(max(r.latency_s for r in replies), 3)


def case_pg_refused(ctx: Context) -> dict[str, Any]:
    client: Client = need(ctx.pg, "the PostgreSQL server")
    proxy: TcpProxy = need(ctx.proxy, "the PostgreSQL proxy")
    call_id = new_call("refused")
    warm = client.inbound(call_id)
    proxy.refuse()
    try:
        function = client.function("check_availability", AVAILABILITY, call_id)
        inbound = client.inbound(new_call("refused_inbound"))
        webhook = client.webhook("call_ended", call_id, transcript="User: tschüss")
        ready = client.get("/ready")
    finally:
        proxy.heal()
    out = {
        "warm_inbound": warm.record(),
        "check_availability": function.record(),
        "call_inbound": inbound.record(),
        "call_ended": webhook.record(),
        "ready": ready.record(),
        "max_latency_s": max_latency(function, inbound, webhook, ready),
    }
    out["summary"] = (
        f"fn {function.short()}; inbound {inbound.short()}; webhook {webhook.short()}; ready {ready.short()}"
    )
    return out


def case_pg_hanging(ctx: Context) -> dict[str, Any]:
    name: str = need(ctx.pg_name, "the PostgreSQL database")
    with TcpProxy(PG_HOST, PG_PORT) as proxy:
        proxy.hang()
        env = ctx.checkout.env(pg_url(proxy.port, name))
        with Server(ctx.checkout, "pg-hang", env) as server:
            up = server.wait_healthy(STARTUP_TIMEOUT)
            out: dict[str, Any] = {
                "startup_s": None if server.startup_s is None else round(server.startup_s, 2)
            }
            if not up:
                out["error"] = server.startup_error
                out["summary"] = f"start-up: {server.startup_error}"
                return out
            client = Client(server.base_url, ctx.checkout.retell_key, ctx.salon)
            try:
                call_id = new_call("hang")
                inbound = client.inbound(call_id)
                function = client.function("check_availability", AVAILABILITY, call_id)
                ready = client.get("/ready")
            finally:
                client.close()
    out.update(
        call_inbound=inbound.record(),
        check_availability=function.record(),
        ready=ready.record(),
        max_latency_s=max_latency(inbound, function, ready),
    )
    out["summary"] = (
        f"/health after {out['startup_s']}s; inbound {inbound.short()}; fn {function.short()}; "
        f"ready {ready.short()}"
    )
    return out


def case_nested_json(ctx: Context) -> dict[str, Any]:
    client: Client = need(ctx.sqlite, "the SQLite server")
    depth = 5000
    raw = ('{"a":' * depth + "1" + "}" * depth).encode()
    replies = {
        path: client.post(path, raw)
        for path in ("/retell/functions/list_services", "/retell/inbound", "/retell/webhook")
    }
    health = client.get("/health")
    out: dict[str, Any] = {path: reply.record() for path, reply in replies.items()}
    out["health_after"] = health.record()
    out["summary"] = " / ".join(f"{p.rsplit('/', 1)[-1]} {r.short()}" for p, r in replies.items())
    return out


def case_nul_on_pg(ctx: Context) -> dict[str, Any]:
    client: Client = need(ctx.pg, "the PostgreSQL server")
    nul_call = f"call_\x00nul_{uuid.uuid4().hex[:6]}"
    nul_inbound = client.inbound(nul_call)
    nul_function = client.function("list_services", {}, nul_call)
    call_id = new_call("nul")
    client.inbound(call_id)
    booking = client.function("book_appointment", book_args("12:00", name="Peter\x00 Schuster"), call_id)
    ended = client.webhook(
        "call_ended", call_id, transcript="User: Hallo\x00 Welt", end_timestamp=fresh_stamp()
    )
    out: dict[str, Any] = {
        "call_id_nul_inbound": nul_inbound.record(),
        "call_id_nul_function": nul_function.record(),
        "name_nul_booking": booking.record(),
        "transcript_nul_call_ended": ended.record(),
    }
    with contextlib.suppress(Exception):
        out["db_appointments"] = int(psql("SELECT count(*) FROM appointments", need(ctx.pg_name, "db")))
    out["summary"] = (
        f"call_id: inbound {nul_inbound.short()}, fn {nul_function.short()}; name: {booking.short()}; "
        f"transcript: {ended.short()}"
    )
    return out


def case_webhook_timestamp(ctx: Context) -> dict[str, Any]:
    client: Client = need(ctx.sqlite, "the SQLite server")
    call_id = new_call("stamp")
    client.inbound(call_id)
    reply = client.webhook("call_ended", call_id, start_timestamp=10**18, transcript="User: Hallo")
    return {"call_ended": reply.record(), "summary": reply.short()}


def case_date_9999(ctx: Context) -> dict[str, Any]:
    client: Client = need(ctx.sqlite, "the SQLite server")
    call_id = new_call("9999")
    client.inbound(call_id)
    out: dict[str, Any] = {}
    parts = []
    for function, args in (
        ("check_availability", {"dienstleistung": "Bartpflege", "datum": "31.12.9999", "uhrzeit": "10 Uhr"}),
        ("find_appointments", {"name": NAME, "datum": "31.12.9999"}),
    ):
        first = client.function(function, args, call_id)
        again = client.function(function, args, call_id)
        same = first.status == again.status and first.reason == again.reason
        out[function] = {"first": first.record(), "again": again.record(), "same_reason_again": same}
        parts.append(f"{function}: {first.reason or first.status} / again {again.reason or again.status}")
    out["summary"] = "; ".join(parts)
    return out


def appointment_statuses(ctx: Context, call_id: str) -> list[str]:
    path: Path = need(ctx.sqlite_path, "the SQLite database")
    return [
        str(r[0]) for r in sqlite_rows(path, "SELECT status FROM appointments WHERE call_id = ?", call_id)
    ]


def case_misrouted_body(ctx: Context) -> dict[str, Any]:
    client: Client = need(ctx.sqlite, "the SQLite server")
    call_a = new_call("misrouted")
    client.inbound(call_a)
    booked = client.function("book_appointment", book_args("14:00"), call_a)
    before = appointment_statuses(ctx, call_a)
    webhook_body = {"event": "call_ended", "call": client.call(call_a, transcript="User: tschüss")}
    as_function = client.post("/retell/functions/cancel_appointment", webhook_body)
    bare = client.post(
        "/retell/functions/cancel_appointment",
        {},
        headers={"X-Call-Id": call_a, "X-Agent-Id": ctx.salon.agent},
    )
    after = appointment_statuses(ctx, call_a)
    return {
        "booking": booked.record(),
        "db_status_before": before,
        "webhook_body_to_cancel": as_function.record(),
        "bare_empty_with_call_headers": bare.record(),
        "db_status_after": after,
        "summary": (
            f"booked {booked.short()}; webhook body {as_function.short()}; bare {{}} {bare.short()}; "
            f"db {before} -> {after}"
        ),
    }


def case_replay(ctx: Context) -> dict[str, Any]:
    client: Client = need(ctx.sqlite, "the SQLite server")
    path: Path = need(ctx.sqlite_path, "the SQLite database")
    call_id = new_call("replay")
    client.inbound(call_id)
    raw = json.dumps(
        {"name": "book_appointment", "call": client.call(call_id), "args": book_args("10:00", "Freitag")},
        ensure_ascii=False,
    ).encode()
    signature = sign(raw, client.key, fresh_stamp())
    first = client.post("/retell/functions/book_appointment", raw, signature=signature)
    replayed = client.post("/retell/functions/book_appointment", raw, signature=signature)
    count = len(sqlite_rows(path, "SELECT id FROM appointments WHERE call_id = ?", call_id))
    read = json.dumps({"name": "list_services", "call": client.call(call_id), "args": {}}).encode()
    read_signature = sign(read, client.key, fresh_stamp())
    read_first = client.post("/retell/functions/list_services", read, signature=read_signature)
    read_again = client.post("/retell/functions/list_services", read, signature=read_signature)
    same_reply = first.body == replayed.body
    return {
        "book_first": first.record(),
        "book_replayed": replayed.record(),
        "book_replay_same_reply": same_reply,
        "appointments_for_call": count,
        "read_first": read_first.record(),
        "read_replayed": read_again.record(),
        "summary": (
            f"book {first.status}/{replayed.status} (same reply: {same_reply}), {count} appointment(s); "
            f"read {read_first.status}/{read_again.status}"
        ),
    }


def case_changeme_dev(ctx: Context) -> dict[str, Any]:
    template: Path = need(ctx.template_db, "the SQLite template")
    db = ctx.checkout.workdir / "changeme.db"
    shutil.copy(template, db)
    env = ctx.checkout.env(
        sqlite_url(db),
        REZEPTION_RETELL_API_KEY=None,
        REZEPTION_ADMIN_SECRET=None,
        REZEPTION_DEV_SECRETS_FILE=str(ctx.checkout.workdir / "changeme-dev-secrets.json"),
    )
    with Server(ctx.checkout, "changeme", env) as server:
        if not server.wait_healthy():
            raise RuntimeError(f"server did not start: {server.startup_error}")
        client = Client(server.base_url, "changeme", ctx.salon)
        try:
            reply = client.inbound(new_call("changeme"))
        finally:
            client.close()
    verdict = "accepted" if reply.status == 200 else "refused" if reply.status == 401 else "other"
    return {"call_inbound_signed_changeme": reply.record(), "summary": f"{reply.status} ({verdict})"}


def case_weak_secrets_production(ctx: Context) -> dict[str, Any]:
    template: Path = need(ctx.template_db, "the SQLite template")
    strong = secrets.token_hex(16)  # 32 characters
    out: dict[str, Any] = {}
    for label, key, admin in (
        ("retell_key_changemechangeme", "changemechangeme", ctx.checkout.admin_secret),
        ("retell_key_a_x16", "a" * 16, ctx.checkout.admin_secret),
        ("both_equal_strong_32", strong, strong),
    ):
        env = ctx.checkout.env(
            sqlite_url(template),
            REZEPTION_ENVIRONMENT="production",
            REZEPTION_RETELL_API_KEY=key,
            REZEPTION_ADMIN_SECRET=admin,
        )
        done = ctx.checkout.cli(["db", "current"], env, timeout=60)
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or [""]
        out[label] = {"exit_code": done.returncode, "last_line": last[0][:200]}
    out["summary"] = ", ".join(f"{k}: exit {v['exit_code']}" for k, v in out.items())
    return out


def case_production_docs(ctx: Context) -> dict[str, Any]:
    template: Path = need(ctx.template_db, "the SQLite template")
    db = ctx.checkout.workdir / "production.db"
    shutil.copy(template, db)
    env = ctx.checkout.env(sqlite_url(db), REZEPTION_ENVIRONMENT="production")
    revisions = set(
        re.findall(
            r'^revision\s*=\s*"([^"]+)"',
            "\n".join(
                p.read_text()
                for p in (ctx.checkout.path / "src/rezeption/store/migrations/versions").glob("*.py")
            ),
            re.MULTILINE,
        )
    )
    with Server(ctx.checkout, "production", env) as server:
        if not server.wait_healthy():
            raise RuntimeError(f"server did not start: {server.startup_error}")
        client = Client(server.base_url, ctx.checkout.retell_key, ctx.salon)
        try:
            pages = {path: client.get(path) for path in ("/docs", "/openapi.json", "/redoc")}
            ready = client.get("/ready")
        finally:
            client.close()
    text = json.dumps(ready.body)
    shows_revision = bool(re.search(r"\b[0-9a-f]{12}\b", text)) or any(
        re.search(rf'"{re.escape(r)}"', text) for r in revisions
    )
    out: dict[str, Any] = {p: r.record() for p, r in pages.items()}
    out["ready"] = ready.record()
    out["ready_body"] = ready.body
    out["ready_shows_schema_revision"] = shows_revision
    out["summary"] = (
        " ".join(f"{p} {r.status}" for p, r in pages.items())
        + f"; /ready {ready.status} shows revision: {shows_revision}"
    )
    return out


def case_sqlite_locked(ctx: Context) -> dict[str, Any]:
    client: Client = need(ctx.sqlite, "the SQLite server")
    path: Path = need(ctx.sqlite_path, "the SQLite database")
    call_id = new_call("locked")
    client.inbound(call_id)
    holder = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        holder.execute("BEGIN IMMEDIATE")
        # longer than REQUEST_TIMEOUT: the before code's wait ends near SQLAlchemy's 30 s pool timeout
        booking = client.function("book_appointment", book_args("14:00", "Freitag"), call_id, timeout=45)
        ready = client.get("/ready")
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    time.sleep(2)  # a booking still running in the server may finish once the lock is gone
    after = appointment_statuses(ctx, call_id)
    return {
        "book_appointment": booking.record(),
        "ready": ready.record(),
        "max_latency_s": max_latency(booking, ready),
        "db_status_2s_after_release": after,
        "summary": f"booking {booking.short()}; ready {ready.short()}; db 2 s after release: {after}",
    }


def case_same_booking_other_words(ctx: Context) -> dict[str, Any]:
    client: Client = need(ctx.sqlite, "the SQLite server")
    call_id = new_call("words")
    client.inbound(call_id)
    first = client.function("book_appointment", book_args("12:00"), call_id)
    second = client.function("book_appointment", book_args("12 Uhr"), call_id)
    body = second.body if isinstance(second.body, dict) else {}
    return {
        "first": first.record(),
        "second": second.record(),
        "second_schon_gebucht": body.get("schon_gebucht"),
        "second_message": str(body.get("message", ""))[:160],
        "summary": (
            f"first {first.short()}; second ok={body.get('ok')} reason={second.reason} "
            f"schon_gebucht={body.get('schon_gebucht')}"
        ),
    }


def post_chunked(
    port: int, path: str, total_mib: int, headers: dict[str, str], limit_s: float
) -> dict[str, Any]:
    """POST `total_mib` MiB as 1 MiB chunks over a raw socket, stopping as soon as the server answers."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    frame = f"{MIB:x}\r\n".encode() + b"x" * MIB + b"\r\n"
    start = time.monotonic()
    sent, note = 0, ""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(head.encode())
            for _ in range(total_mib):
                if select.select([sock], [], [], 0)[0]:
                    note = "server answered before the body ended"
                    break
                if time.monotonic() - start > limit_s:
                    note = f"stopped sending after {limit_s:.0f} s"
                    break
                sock.sendall(frame)
                sent += 1
            else:
                sock.sendall(b"0\r\n\r\n")
        except OSError as exc:
            note = f"send failed: {type(exc).__name__}"
        answer = b""
        sock.settimeout(max(2.0, limit_s - (time.monotonic() - start)))
        with contextlib.suppress(OSError):
            while b"\r\n" not in answer:
                data = sock.recv(4096)
                if not data:
                    break
                answer += data
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return {
        "status": int(match.group(1)) if match else None,
        "sent_mib": sent,
        "latency_s": round(time.monotonic() - start, 2),
        "note": note or "whole body sent",
    }


def case_calcom_webhook_big_body(ctx: Context) -> dict[str, Any]:
    server: Server = need(ctx.sqlite_server, "the SQLite server")
    before = peak_rss_mb(server.pid)
    sent = post_chunked(
        server.port,
        f"/calcom/webhooks/{ctx.salon.slug}",
        200,
        {"Content-Type": "application/json", "X-Cal-Signature-256": "bogus"},
        limit_s=60,
    )
    time.sleep(0.5)
    after = peak_rss_mb(server.pid)
    return {
        **sent,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "summary": (
            f"{sent['status']} after {sent['sent_mib']} MiB sent ({sent['note']}); peak RSS "
            f"{before.get('VmHWM')} -> {after.get('VmHWM')} MB"
        ),
    }


def case_slow_headers(ctx: Context) -> dict[str, Any]:
    server: Server = need(ctx.sqlite_server, "the SQLite server")
    client: Client = need(ctx.sqlite, "the SQLite server")
    connections: list[socket.socket] = []
    closed: set[int] = set()
    answered: set[int] = set()
    health: Reply | None = None

    def check(i: int, sock: socket.socket, byte: bytes | None) -> None:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            data = None
        except OSError:
            closed.add(i)
            return
        if data == b"":
            closed.add(i)
            return
        if data:
            answered.add(i)
        if byte is not None:
            try:
                sock.send(byte)
            except OSError:
                closed.add(i)

    start = time.monotonic()
    try:
        for _ in range(100):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"POST /retell/webhook HTTP/1.1\r\nHost: x\r\n")
            sock.setblocking(False)
            connections.append(sock)
        while time.monotonic() - start < 30:
            for i, sock in enumerate(connections):
                if i not in closed:
                    check(i, sock, b"X")
            if health is None and time.monotonic() - start > 14:
                health = client.get("/health", timeout=5)
            time.sleep(min(2.0, max(0.0, 30 - (time.monotonic() - start))))
        for i, sock in enumerate(connections):
            if i not in closed:
                check(i, sock, None)
    finally:
        for sock in connections:
            sock.close()
    still_open = len(connections) - len(closed)
    return {
        "connections": len(connections),
        "still_open_after_30s": still_open,
        "closed_by_server": len(closed),
        "got_a_response": len(answered),
        "health_meanwhile": None if health is None else health.record(),
        "seconds": round(time.monotonic() - start, 1),
        "summary": (
            f"{still_open}/{len(connections)} still open after 30 s; "
            f"/health meanwhile {health.short() if health else 'n/a'}"
        ),
    }


def case_log_scan(ctx: Context) -> dict[str, Any]:
    needles = (CALLER, CALLER_DIGITS, "Schuster")
    counts = dict.fromkeys(needles, 0)
    lines = 0
    for log in ctx.checkout.logs:
        if not log.exists():
            continue
        for line in log.read_text(errors="replace").splitlines():
            lines += 1
            for needle in needles:
                if needle in line:
                    counts[needle] += 1
    return {
        "log_files": [str(p) for p in ctx.checkout.logs],
        "lines": lines,
        "lines_containing": counts,
        "summary": ", ".join(f"{k}: {v}" for k, v in counts.items()) + f" (of {lines} lines)",
    }


# --- running a checkout --------------------------------------------------------------------------

Case = Callable[[Context], dict[str, Any]]


def run_case(name: str, case: Case, ctx: Context, limit: float, deadline: float) -> dict[str, Any]:
    """One case in a thread with a hard time limit; an exception or an overrun becomes an error."""
    if time.monotonic() > deadline:
        return {"error": "skipped: the run's total time budget is spent", "summary": "not measured (time)"}
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result.update(case(ctx))
        except Exception as exc:
            result.update(error=f"{type(exc).__name__}: {exc}"[:300])

    start = time.monotonic()
    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        return {
            "error": f"case exceeded its {limit:.0f} s limit",
            "summary": f"not measured (> {limit:.0f} s)",
        }
    result.setdefault("summary", f"not measured: {result.get('error')}")
    result["case_seconds"] = round(time.monotonic() - start, 1)
    print(f"  [{ctx.checkout.label}] {name}: {result['summary']}", flush=True)
    return result


def probe(path: Path, label: str, deadline: float) -> dict[str, Any]:
    """Every case against one checkout."""
    workdir = Path(tempfile.mkdtemp(prefix=f"failure_probe_{label}_"))
    checkout = Checkout(path.resolve(), label, workdir)
    ctx = Context(checkout, checkout.salon())
    started = time.monotonic()
    commit = subprocess.run(
        ["git", "-C", str(checkout.path), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(checkout.path), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    out: dict[str, Any] = {
        "checkout": str(checkout.path),
        "commit": commit,
        "src_files_changed_since_commit": len(dirty),
        "imported_from": checkout.imported_from(),
        "workdir": str(workdir),
        "cases": {},
    }
    print(f"== {label}: {checkout.path} ({commit}), rezeption from {out['imported_from']}", flush=True)
    if not out["imported_from"].startswith(str(checkout.path / "src")):
        out["error"] = "the checkout's own rezeption is not the one imported"
        return out
    cases: dict[str, Any] = out["cases"]

    def run(name: str, case: Case, limit: float = CASE_TIMEOUT) -> None:
        cases[name] = run_case(name, case, ctx, limit, deadline)

    with contextlib.ExitStack() as stack:
        # SQLite: one migrated, loaded template; copies for each server.
        try:
            template = workdir / "template.db"
            checkout.prepare(sqlite_url(template))
            ctx.template_db = template
            ctx.sqlite_path = workdir / "main.db"
            shutil.copy(template, ctx.sqlite_path)
            server = stack.enter_context(
                Server(checkout, "sqlite", checkout.env(sqlite_url(ctx.sqlite_path)))
            )
            if server.wait_healthy():
                ctx.sqlite_server = server
                ctx.sqlite = Client(server.base_url, checkout.retell_key, ctx.salon)
                stack.callback(ctx.sqlite.close)
            else:
                out["sqlite_error"] = server.startup_error
        except Exception as exc:
            out["sqlite_error"] = f"{type(exc).__name__}: {exc}"[:300]
        # PostgreSQL: a fresh database, the server behind a switchable proxy.
        try:
            ctx.pg_name = stack.enter_context(pg_database(label))
            checkout.prepare(pg_url(PG_PORT, ctx.pg_name))
            ctx.proxy = stack.enter_context(TcpProxy(PG_HOST, PG_PORT))
            server = stack.enter_context(
                Server(checkout, "pg", checkout.env(pg_url(ctx.proxy.port, ctx.pg_name)))
            )
            if server.wait_healthy():
                ctx.pg = Client(server.base_url, checkout.retell_key, ctx.salon)
                stack.callback(ctx.pg.close)
            else:
                out["pg_error"] = server.startup_error
        except Exception as exc:
            out["pg_error"] = f"{type(exc).__name__}: {exc}"[:300]

        run("4_nul_on_pg", case_nul_on_pg)  # healthy PostgreSQL first, then make it refuse
        run("1_pg_refused", case_pg_refused)
        run("2_pg_hanging", case_pg_hanging, limit=STARTUP_TIMEOUT + 3 * REQUEST_TIMEOUT + 20)
        run("3_nested_json", case_nested_json)
        run("5_webhook_timestamp", case_webhook_timestamp)
        run("6_date_9999", case_date_9999)
        run("7_misrouted_body", case_misrouted_body)
        run("8_replay", case_replay)
        run("9_changeme_dev", case_changeme_dev)
        run("10_weak_secrets_production", case_weak_secrets_production, limit=200)
        run("11_production_docs", case_production_docs)
        run("12_sqlite_locked", case_sqlite_locked)
        run("13_same_booking_other_words", case_same_booking_other_words)
        run("14_calcom_webhook_big_body", case_calcom_webhook_big_body)
        run("15_slow_headers", case_slow_headers, limit=45)
    run("16_log_scan", case_log_scan)  # after every server of this checkout has stopped
    out["cases"] = dict(sorted(cases.items(), key=lambda kv: int(kv[0].split("_", 1)[0])))
    out["seconds"] = round(time.monotonic() - started, 1)
    return out


def ensure_before_worktree() -> str | None:
    """The before checkout at BEFORE_PATH (a git worktree of BEFORE_COMMIT); an error string if impossible."""
    if (BEFORE_PATH / "src" / "rezeption").is_dir():
        return None
    done = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", str(BEFORE_PATH), BEFORE_COMMIT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0 or not (BEFORE_PATH / "src" / "rezeption").is_dir():
        return f"git worktree add failed ({done.returncode}): {done.stderr.strip()[-200:]}"
    return None


def print_table(results: dict[str, Any]) -> None:
    labels = [label for label in ("before", "after") if label in results]
    names: list[str] = []
    for label in labels:
        for name in results[label].get("cases", {}):
            if name not in names:
                names.append(name)
    names.sort(key=lambda n: int(n.split("_", 1)[0]))
    print("\n| case | " + " | ".join(labels) + " |")
    print("| --- |" + " --- |" * len(labels))
    for name in names:
        cells = []
        for label in labels:
            entry = results[label]
            case = entry.get("cases", {}).get(name)
            cells.append(str(case["summary"]) if case else f"not measured: {entry.get('error', 'n/a')}")
        print(f"| {name} | " + " | ".join(c.replace("|", "/") for c in cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkout", type=Path, help="the source tree to measure (default: this repository)")
    parser.add_argument("--label", choices=("before", "after"), help="its name in the results")
    options = parser.parse_args()

    deadline = time.monotonic() + TOTAL_BUDGET
    results: dict[str, Any] = {}
    if options.checkout or options.label:
        label = options.label or "after"
        checkout = options.checkout or (BEFORE_PATH if label == "before" else ROOT)
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            results = json.loads(RESULTS.read_text()).get("checkouts", {})
        results[label] = probe(checkout, label, deadline)
    else:
        problem = ensure_before_worktree()
        if problem:
            results["before"] = {
                "checkout": str(BEFORE_PATH),
                "error": f"not measured: {problem}",
                "cases": {},
            }
        else:
            results["before"] = probe(BEFORE_PATH, "before", deadline - TOTAL_BUDGET / 2)
        results["after"] = probe(ROOT, "after", deadline)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "failure_probe",
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "before_commit": BEFORE_COMMIT,
                "checkouts": results,
            },
            indent=2,
            ensure_ascii=False,
            default=str,
        )
        + "\n"
    )
    print_table(results)
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
