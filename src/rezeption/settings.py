"""Settings from the environment (prefix REZEPTION_), validated once at start-up.

In production the service refuses to start with placeholder or missing secrets.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDERS = frozenset({"", "changeme", "change-me", "secret", "dev", "development", "test", "placeholder"})


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="REZEPTION_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./var/rezeption.db"
    redis_url: str | None = None
    retell_api_key: SecretStr = SecretStr("changeme")
    admin_secret: SecretStr = SecretStr("changeme")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = False
    db_pool_size: int = Field(10, ge=1, le=200)
    embedded_worker: Literal["auto", "on", "off"] = "auto"  # auto: inside `serve` on SQLite only
    warmup: bool = True  # open the pool and run the hot reads once before taking traffic (ops.warmup)

    @model_validator(mode="after")
    def _no_placeholders_in_production(self) -> Settings:
        if self.environment == "production":
            weak = [
                name
                for name, value in (
                    ("REZEPTION_RETELL_API_KEY", self.retell_api_key),
                    ("REZEPTION_ADMIN_SECRET", self.admin_secret),
                )
                if value.get_secret_value().strip().lower() in PLACEHOLDERS
                or len(value.get_secret_value()) < 16
            ]
            if weak:
                raise ValueError(
                    f"refusing to start in production with placeholder secrets: {', '.join(weak)} "
                    "(set real values of at least 16 characters)"
                )
        return self
