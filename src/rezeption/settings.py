"""Settings from the environment (prefix REZEPTION_), validated once at start-up.

Secrets must be strong (`secret_weaknesses`) and different from each other in production, and
wherever the server listens beyond loopback (`rezeption serve` checks `exposure_problems`). In
development a secret that is not set is not a placeholder anyone knows: it is generated once per
installation and kept in `var/dev-secrets.json` (mode 0600; `REZEPTION_DEV_SECRETS_FILE`), so
`make run` needs no setup and a request signed (or a reference forged) with `changeme` fails.
Only the environment "test" keeps the literal placeholder, for tests that set their own.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rezeption.domain.clock import Clock, StartedClock, SystemClock
from rezeption.store.db import Timeouts

MIN_SECRET_LENGTH = 24
MIN_DISTINCT_CHARACTERS = 6
PLACEHOLDER_WORDS = (
    "changeme",
    "secret",
    "password",
    "test",
    "example",
    "placeholder",
    "dev",
    "default",
    "admin",
    "rezeption",
)
SECRET_VARIABLES = {"retell_api_key": "REZEPTION_RETELL_API_KEY", "admin_secret": "REZEPTION_ADMIN_SECRET"}
GENERATE = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def secret_weaknesses(value: str) -> list[str]:
    """The strength rules `value` breaks, in words an operator can act on (never the value itself)."""
    problems: list[str] = []
    if len(value) < MIN_SECRET_LENGTH:
        problems.append(f"shorter than {MIN_SECRET_LENGTH} characters")
    if len(set(value)) < MIN_DISTINCT_CHARACTERS:
        problems.append(f"fewer than {MIN_DISTINCT_CHARACTERS} different characters")
    folded = value.casefold()
    words = [word for word in PLACEHOLDER_WORDS if word in folded]
    if words:
        problems.append("contains the placeholder word " + ", ".join(f'"{w}"' for w in words))
    if _repeats(value):
        problems.append("is a short piece repeated")
    return problems


def _repeats(value: str) -> bool:
    """Whether `value` is a piece of at most half its length said again and again ("abcabcab")."""
    return any(value[period:] == value[:-period] for period in range(1, len(value) // 2 + 1))


def development_secrets(path: Path) -> dict[str, str]:
    """This installation's generated development secrets (one per variable), made on first use.

    Created with O_EXCL and mode 0600, so two processes starting at once agree on one file; a file
    that cannot be read as such is an error naming the file (delete it to get new secrets)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = {variable: secrets.token_urlsafe(32) for variable in SECRET_VARIABLES.values()}
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it a moment ago: read theirs
        else:
            with os.fdopen(descriptor, "w") as file:
                json.dump(fresh, file)
            return fresh
    try:
        stored = json.loads(path.read_text())
        if all(isinstance(stored.get(v), str) and stored[v] for v in SECRET_VARIABLES.values()):
            return {v: stored[v] for v in SECRET_VARIABLES.values()}
    except (OSError, ValueError, AttributeError):
        pass
    raise ValueError(f"{path} does not hold the development secrets; delete it to generate new ones")


def is_loopback(host: str) -> bool:
    """Whether `host` (a bind address) is reachable from this machine only."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="REZEPTION_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    environment: Literal["development", "test", "production"] = "development"
    # development and test only: the clock starts here and runs on (try what callers hear on a given day)
    clock_start: datetime | None = None
    database_url: str = "sqlite+aiosqlite:///./var/rezeption.db"
    redis_url: str | None = None
    retell_api_key: SecretStr = SecretStr("changeme")
    retell_api_url: str = "https://api.retellai.com"  # Retell's management API (`rezeption agent publish`)
    admin_secret: SecretStr = SecretStr("changeme")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = False
    db_pool_size: int = Field(10, ge=1, le=200)
    # Overload (ops.admission): requests at work at once (unset: the pool size), how long one may wait
    # for its turn (first come, first served), how many may wait; the rest are turned away politely.
    admission_concurrency: int | None = Field(None, ge=1, le=1000)
    admission_max_wait: float = Field(1.0, gt=0, le=8)
    admission_max_waiting: int = Field(500, ge=0, le=100_000)
    # Every database wait is bounded, well inside the time Retell waits for a function (ops: README).
    db_connect_timeout: float = Field(Timeouts.connect, gt=0, le=60)
    db_statement_timeout: float = Field(5.0, gt=0, le=600)
    db_pool_timeout: float = Field(Timeouts.pool, gt=0, le=60)
    db_busy_timeout: float = Field(Timeouts.busy, gt=0, le=60)  # SQLite: each of lock and writer queue
    ready_timeout: float = Field(2.0, gt=0, le=30)  # /ready answers 503 when the database takes longer
    db_min_free_mb: int = Field(64, ge=0)  # SQLite: /ready says 503 when its disk has less free
    dev_secrets_file: Path = Path("var/dev-secrets.json")  # development: generated secrets
    embedded_worker: Literal["auto", "on", "off"] = "auto"  # auto: inside `serve` on SQLite only
    # Retell's "payload: args only" with an unsigned X-Call-Id header: reads only, and off by default
    retell_bare_args: bool = False
    slot_refresher: bool = True  # keep Cal.com salons' slot pictures warm (ops.slot_refresher)
    warmup: bool = True  # open the pool and run the hot reads once before taking traffic (ops.warmup)
    docs: bool | None = None  # /docs, /redoc, /openapi.json; default: on except in production
    # /metrics asks for `Authorization: Bearer <token>` when set (unset: open, keep it off the internet)
    metrics_token: SecretStr | None = None
    # OpenTelemetry: spans over OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318); unset: off
    otlp_endpoint: str | None = None
    # uvicorn, in `rezeption serve` (it has no timeout for slow request headers: see the README)
    # httptools (faster; the head bounded by rezeption.http_head) or h11 (pure Python)
    http_parser: Literal["h11", "httptools"] = "httptools"
    # a request head still incomplete after a read may hold this much (h11: a head arriving in one
    # read of the socket, up to 256 KB, is parsed whole): a 1 MB head is refused, not buffered
    http_max_head_bytes: int = Field(16 * 1024, ge=1024, le=1024 * 1024)
    http_keep_alive_timeout: int = Field(5, ge=1, le=300)
    http_max_concurrency: int = Field(1000, ge=1)
    http_graceful_shutdown: int = Field(10, ge=0, le=600)

    @property
    def timeouts(self) -> Timeouts:
        """The database waits, for `Database.from_url`."""
        return Timeouts(
            connect=self.db_connect_timeout,
            statement=self.db_statement_timeout,
            pool=self.db_pool_timeout,
            busy=self.db_busy_timeout,
        )

    @property
    def docs_enabled(self) -> bool:
        """Whether the API docs are served: REZEPTION_DOCS, else everywhere but in production."""
        return self.docs if self.docs is not None else self.environment != "production"

    def secret_problems(self) -> list[str]:
        """Each weak secret (which variable, which rules) and whether the two are equal; [] when strong."""
        problems = []
        for field, variable in SECRET_VARIABLES.items():
            secret: SecretStr = getattr(self, field)
            weaknesses = secret_weaknesses(secret.get_secret_value())
            if weaknesses:
                problems.append(f"{variable} is weak: {'; '.join(weaknesses)}")
        if self.retell_api_key.get_secret_value() == self.admin_secret.get_secret_value():
            problems.append(
                "REZEPTION_RETELL_API_KEY and REZEPTION_ADMIN_SECRET are the same; they must differ"
            )
        return problems

    def exposure_problems(self, host: str) -> list[str]:
        """Why the server must not listen on `host` with these settings ([] when it may).

        Beyond loopback every caller on the network can sign requests with a weak key, whatever the
        environment; on loopback only production insists (its settings refuse to load anyway).
        """
        if is_loopback(host) and self.environment != "production":
            return []
        return self.secret_problems()

    @model_validator(mode="after")
    def _generated_secrets_in_development(self) -> Settings:
        unset = [field for field in SECRET_VARIABLES if field not in self.model_fields_set]
        if self.environment == "development" and unset:
            generated = development_secrets(self.dev_secrets_file)
            for field in unset:
                setattr(self, field, SecretStr(generated[SECRET_VARIABLES[field]]))
        return self

    @model_validator(mode="after")
    def _real_time_in_production(self) -> Settings:
        if self.clock_start is not None:
            if self.environment == "production":
                raise ValueError(
                    "REZEPTION_CLOCK_START is for development and tests; production runs on real time"
                )
            if self.clock_start.tzinfo is None:
                raise ValueError("needs a UTC offset, e.g. 2026-12-24T08:00:00+01:00")
        return self

    def clock(self) -> Clock:
        """The clock every command and the server run on: real time, or from `clock_start` on."""
        return StartedClock(self.clock_start) if self.clock_start is not None else SystemClock()

    @model_validator(mode="after")
    def _strong_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            problems = self.secret_problems()
            if problems:
                raise ValueError(
                    "refusing to start in production with weak secrets: "
                    + " | ".join(problems)
                    + f" ({GENERATE})"
                )
        return self
