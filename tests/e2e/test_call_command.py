"""`rezeption call --script` as a terminal runs it (a process of its own: the server it starts for
the call sets up logging for its process): with no server on the configured port it starts one for
the call (same database), plays Retell's side over the custom-LLM socket, prints the transcript,
and exits 0 only when the receptionist ended the call."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.conftest import DEMO_SALON, empty_tables
from typer.testing import CliRunner

from rezeption.cli import app
from rezeption.store.db import Database

CLOCK_START = "2026-12-07T08:00:00+01:00"  # a Monday: "Mittwoch" is 9 December


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path, sqlite_template: Path) -> dict[str, str]:
    database = tmp_path / "call.db"
    database.write_bytes(sqlite_template.read_bytes())
    url = f"sqlite+aiosqlite:///{database}"

    async def emptied() -> None:
        db = Database.from_url(url)
        try:
            await empty_tables(db)
        finally:
            await db.dispose()

    asyncio.run(emptied())
    environment = {
        **os.environ,
        "REZEPTION_DATABASE_URL": url,
        "REZEPTION_ENVIRONMENT": "development",
        "REZEPTION_DEV_SECRETS_FILE": str(tmp_path / "dev-secrets.json"),
        "REZEPTION_CLOCK_START": CLOCK_START,
        "REZEPTION_PORT": str(free_port()),  # nothing listens there: the command serves the call itself
        "REZEPTION_EMBEDDED_WORKER": "off",
    }
    loaded = CliRunner().invoke(app, ["tenants", "load", str(DEMO_SALON)], env=environment)
    assert loaded.exit_code == 0, loaded.output
    return environment


def rezeption(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The command in its own process, as a terminal runs it."""
    command = [sys.executable, "-m", "rezeption.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def script(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "anruf.txt"
    path.write_text("# ein Testanruf\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def confirmed(env: dict[str, str]) -> list[str]:
    async def read() -> list[str]:
        db = Database.from_url(env["REZEPTION_DATABASE_URL"])
        try:
            async with db.statement() as conn:
                rows = await conn.execute(text("SELECT status FROM appointments ORDER BY id"))
                return [row[0] for row in rows]
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_a_scripted_call_books_and_ends_with_exit_0(env: dict[str, str], tmp_path: Path) -> None:
    lines = ("Herrenhaarschnitt am Mittwoch um zehn, Hans Schuster", "ja", "nein danke, tschüss")
    result = rezeption(env, "call", "--script", str(script(tmp_path, *lines)))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout.splitlines()
    assert out[0].startswith("Rezeption: Friseur 1, guten Tag!")
    assert "Anrufer: Herrenhaarschnitt am Mittwoch um zehn, Hans Schuster" in out
    assert any(line.startswith("Rezeption (") and "Ich habe Ihren Termin gebucht" in line for line in out)
    assert out[-1].endswith("[aufgelegt]") and "ein Testanruf" not in result.stdout
    assert confirmed(env) == ["confirmed"]


def test_a_script_that_stops_before_the_goodbye_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    lines = ("Herrenhaarschnitt am Mittwoch um zehn, Hans Schuster",)
    result = rezeption(env, "call", "--script", str(script(tmp_path, *lines)))
    assert result.returncode == 1
    assert "ended before the receptionist ended the call" in result.stderr
    assert confirmed(env) == []


def test_a_missing_script_or_salon_is_one_line_and_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    missing = rezeption(env, "call", "--script", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "no script" in missing.stderr
    unknown = rezeption(env, "call", "--salon", "nobody")
    assert unknown.returncode == 2 and "--salon" in unknown.stderr


def test_a_remote_server_is_refused(env: dict[str, str]) -> None:
    result = rezeption(env, "call", "--url", "http://203.0.113.7:8000")
    assert result.returncode == 2 and "only rings a server on this machine" in result.stderr
