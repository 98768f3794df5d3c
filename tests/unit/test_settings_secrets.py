"""Secret strength: production refuses weak or equal secrets with a message that names the variable
and the rule (never the value); beyond loopback `serve` refuses them in any environment; development
generates its own secrets once per installation (so `make run` works with no environment and
`changeme` signs nothing).

Before (issue 11): production accepted "changemechangeme", sixteen "a"s and the same value for both;
development accepted requests signed with `changeme`.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from rezeption.settings import Settings, is_loopback, secret_weaknesses

STRONG = "rk_7Qm2vXz9LpR4tW8yB3nF6hJ"
OTHER_STRONG = "as_K5dG1sV7cN0qE2uY9iO4pL"

WEAK = {
    "changeme": ["shorter than 24", '"changeme"'],
    "changemechangeme": ["shorter than 24", '"changeme"', "repeated"],
    "aaaaaaaaaaaaaaaa": ["shorter than 24", "fewer than 6 different", "repeated"],
    "a" * 40: ["fewer than 6 different", "repeated"],
    "abcabcabcabcabcabcabcabcabc": ["fewer than 6 different", "repeated"],
    "aaaaabbbbbcccccdddddeeeeee": ["fewer than 6 different"],  # long, no piece repeated
    "Qx7!pL2#vR9$Qx7!pL2#vR9$Qx7!": ["repeated"],  # 10 different, long, but one piece said 3.5 times
    "MySuperSecretKey-2026-Salon-Berlin": ['"secret"'],
    "Password-for-Friseur-1-2026-x": ['"password"'],
    "salon-TEST-key-9f8e7d6c5b4a3210": ['"test"'],
    "k9-example-7Hq2Lm4Rt6Vw8Yz0Bn": ['"example"'],
    "xx-placeholder-4Hq2Lm4Rt6Vw8Yz": ['"placeholder"'],
    "Dev-Key-7Hq2Lm4Rt6Vw8Yz0Bn3Cp": ['"dev"'],
    "DEFAULT-7Hq2Lm4Rt6Vw8Yz0Bn3Cp": ['"default"'],
    "admin-7Hq2Lm4Rt6Vw8Yz0Bn3CpQ5": ['"admin"'],
    "Rezeption-7Hq2Lm4Rt6Vw8Yz0Bn3": ['"rezeption"'],
    "": ["shorter than 24", "fewer than 6 different"],
}


@pytest.mark.parametrize("value", list(WEAK))
def test_weak_secrets_break_named_rules(value: str) -> None:
    problems = " ; ".join(secret_weaknesses(value))
    for rule in WEAK[value]:
        assert rule in problems, f"{value!r}: {problems}"
    assert len(secret_weaknesses(value)) == len(WEAK[value])


@pytest.mark.parametrize(
    "value",
    [STRONG, OTHER_STRONG, "Zr8#kQ2m!Lw5vT9x@Bn4Jc7h"],
)
def test_strong_secrets_pass(value: str) -> None:
    assert secret_weaknesses(value) == []


def test_random_hex_tokens_pass() -> None:
    """Drawn here, not at collection (the suite's worker processes must collect the same tests).
    Hex has no letter beyond "f": no placeholder word can appear in a random hex token.

    Found when a fresh clone's run failed: the rule asked for 10 different characters, and a random
    hex token of the shortest length allowed (24) has fewer once in 145 draws (32: once in 10,500),
    so an operator's `openssl rand -hex 12` was refused now and then. Six different characters
    still catch a typed pattern; a random 24-character hex token has fewer once in 3 x 10^8."""
    for value in (secrets.token_hex(n) for n in (12, 16, 32) for _ in range(2000)):
        assert secret_weaknesses(value) == [], value


@pytest.mark.parametrize("weak", ["changemechangeme", "a" * 16, "abcabcabcabcabcabcabcabcabc"])
@pytest.mark.parametrize("variable", ["REZEPTION_RETELL_API_KEY", "REZEPTION_ADMIN_SECRET"])
def test_production_refuses_a_weak_secret_naming_the_variable_and_the_rule(
    weak: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REZEPTION_ENVIRONMENT", "production")
    monkeypatch.setenv("REZEPTION_RETELL_API_KEY", STRONG)
    monkeypatch.setenv("REZEPTION_ADMIN_SECRET", OTHER_STRONG)
    monkeypatch.setenv(variable, weak)
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)  # type: ignore[call-arg]
    message = str(refused.value)
    assert f"{variable} is weak" in message and "repeated" in message
    assert weak not in message, "the secret itself is never printed"
    other = ({"REZEPTION_RETELL_API_KEY", "REZEPTION_ADMIN_SECRET"} - {variable}).pop()
    assert other not in message, "only the weak one is named"


def test_production_refuses_equal_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REZEPTION_ENVIRONMENT", "production")
    monkeypatch.setenv("REZEPTION_RETELL_API_KEY", STRONG)
    monkeypatch.setenv("REZEPTION_ADMIN_SECRET", STRONG)
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert "are the same; they must differ" in str(refused.value)
    assert STRONG not in str(refused.value)


def test_production_accepts_two_strong_different_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REZEPTION_ENVIRONMENT", "production")
    monkeypatch.setenv("REZEPTION_RETELL_API_KEY", STRONG)
    monkeypatch.setenv("REZEPTION_ADMIN_SECRET", OTHER_STRONG)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.secret_problems() == [] and settings.exposure_problems("0.0.0.0") == []
    assert not settings.docs_enabled


def test_development_generates_its_own_strong_secrets_once_per_installation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("REZEPTION_ENVIRONMENT", "REZEPTION_RETELL_API_KEY", "REZEPTION_ADMIN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    where = tmp_path / "var" / "dev-secrets.json"
    settings = Settings(_env_file=None, dev_secrets_file=where)  # type: ignore[call-arg]
    key, admin = settings.retell_api_key.get_secret_value(), settings.admin_secret.get_secret_value()
    assert "changeme" not in (key, admin) and key != admin
    assert settings.secret_problems() == [] and settings.docs_enabled
    assert where.stat().st_mode & 0o777 == 0o600
    again = Settings(_env_file=None, dev_secrets_file=where)  # type: ignore[call-arg]
    assert again.retell_api_key.get_secret_value() == key, "the next start signs with the same key"
    other_install = Settings(_env_file=None, dev_secrets_file=tmp_path / "other.json")  # type: ignore[call-arg]
    assert other_install.retell_api_key.get_secret_value() != key


def test_development_keeps_a_secret_that_was_set_and_names_a_broken_secrets_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("REZEPTION_ENVIRONMENT", raising=False)
    monkeypatch.setenv("REZEPTION_RETELL_API_KEY", "changeme")  # said on purpose: kept, on loopback only
    monkeypatch.delenv("REZEPTION_ADMIN_SECRET", raising=False)
    settings = Settings(_env_file=None, dev_secrets_file=tmp_path / "s.json")  # type: ignore[call-arg]
    assert settings.retell_api_key.get_secret_value() == "changeme"
    assert settings.exposure_problems("127.0.0.1") == []
    assert any("REZEPTION_RETELL_API_KEY is weak" in p for p in settings.exposure_problems("0.0.0.0"))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"REZEPTION_ADMIN_SECRET": 7}))
    with pytest.raises(ValidationError, match="delete it"):
        Settings(_env_file=None, dev_secrets_file=broken)  # type: ignore[call-arg]


def test_the_test_environment_keeps_the_placeholder_only_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REZEPTION_RETELL_API_KEY", "REZEPTION_ADMIN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REZEPTION_ENVIRONMENT", "test")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.retell_api_key.get_secret_value() == "changeme"
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2", "[::1]"):
        assert settings.exposure_problems(host) == [], host
    for host in ("0.0.0.0", "::", "192.168.1.20", "rezeption.example", "10.0.0.1"):
        problems = settings.exposure_problems(host)
        assert any("REZEPTION_RETELL_API_KEY is weak" in p for p in problems), host
        assert any("must differ" in p for p in problems), host


def test_loopback_is_the_loopback_only() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("salon.local")
