"""Configuration that tells the truth: `.env.example` names every setting and loads as it is, the
README's table names every variable, and the clock may be started elsewhere only outside production."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.conftest import ROOT

from rezeption.domain.clock import StartedClock
from rezeption.settings import Settings

VARIABLES = {f"REZEPTION_{name.upper()}" for name in Settings.model_fields}


def test_env_example_names_every_setting_and_loads_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    named = set(re.findall(r"^#? ?(REZEPTION_[A-Z0-9_]+)=", example, re.M))
    assert named == VARIABLES
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    monkeypatch.chdir(tmp_path)
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("REZEPTION_DEV_SECRETS_FILE", str(tmp_path / "secrets.json"))
    loaded = Settings()
    assert loaded == Settings(_env_file=None, dev_secrets_file=tmp_path / "secrets.json")  # type: ignore[call-arg]


def test_the_readme_names_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Configuration") : readme.index("## Troubleshooting")]
    for variable in VARIABLES:  # a group may be written once: `REZEPTION_DB_CONNECT_TIMEOUT`, `_POOL_TIMEOUT`
        groups = ("REZEPTION_DB", "REZEPTION_HTTP", "REZEPTION_ADMISSION")
        group = next((g for g in groups if variable.startswith(g + "_")), None)
        short = variable.removeprefix(group) if group else variable
        assert f"`{variable}`" in table or (group and f"`{short}`" in table), variable


def test_a_started_clock_runs_on_from_its_start_and_production_refuses_it() -> None:
    start = datetime(2026, 12, 24, 7, 0, tzinfo=UTC)
    clock = Settings(environment="test", clock_start=start).clock()
    assert isinstance(clock, StartedClock)
    assert start <= clock.now() < start + timedelta(minutes=1)
    with pytest.raises(ValidationError, match="production runs on real time"):
        Settings(environment="production", clock_start=start)
    with pytest.raises(ValidationError, match="UTC offset"):
        Settings(environment="test", clock_start=datetime(2026, 12, 24, 7, 0))  # noqa: DTZ001
