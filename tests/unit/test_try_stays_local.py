"""`rezeption try` signs with this installation's Retell key: it refuses any server that is not on
this machine (a look-alike host name included) before it reads the database or sends anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rezeption.cli import app


@pytest.mark.parametrize(
    "url", ["https://rezeption.example", "http://localhost.evil.example:8000", "http://10.0.0.5"]
)
def test_try_refuses_a_server_beyond_this_machine(url: str, tmp_path: Path) -> None:
    env = {
        "REZEPTION_DEV_SECRETS_FILE": str(tmp_path / "s.json"),
        "REZEPTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'never-created.db'}",
    }
    done = CliRunner().invoke(app, ["try", "get_opening_hours", "--url", url], env=env)
    assert done.exit_code == 2 and "only calls a server on this machine" in done.stderr
    assert not (tmp_path / "never-created.db").exists()
