"""Secret strength: production refuses weak or equal secrets with a message that names the variable
and the rule (never the value); beyond loopback `serve` refuses them in any environment; development
on loopback keeps its placeholders (so `make run` works with no environment).

Before (issue 11): production accepted "changemechangeme", sixteen "a"s and the same value for both.
"""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from rezeption.settings import Settings, is_loopback, secret_weaknesses

STRONG = "rk_7Qm2vXz9LpR4tW8yB3nF6hJ"
OTHER_STRONG = "as_K5dG1sV7cN0qE2uY9iO4pL"

WEAK = {
    "changeme": ["shorter than 24", "fewer than 10 different", '"changeme"'],
    "changemechangeme": ["shorter than 24", "fewer than 10 different", '"changeme"', "repeated"],
    "aaaaaaaaaaaaaaaa": ["shorter than 24", "fewer than 10 different", "repeated"],
    "a" * 40: ["fewer than 10 different", "repeated"],
    "abcabcabcabcabcabcabcabcabc": ["fewer than 10 different", "repeated"],
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
    "": ["shorter than 24", "fewer than 10 different"],
}


@pytest.mark.parametrize("value", list(WEAK))
def test_weak_secrets_break_named_rules(value: str) -> None:
    problems = " ; ".join(secret_weaknesses(value))
    for rule in WEAK[value]:
        assert rule in problems, f"{value!r}: {problems}"
    assert len(secret_weaknesses(value)) == len(WEAK[value])


@pytest.mark.parametrize(
    "value",
    # hex has no letter beyond "f": no placeholder word can appear in a random hex token
    [STRONG, OTHER_STRONG, "Zr8#kQ2m!Lw5vT9x@Bn4Jc7h", *(secrets.token_hex(16) for _ in range(3))],
)
def test_strong_secrets_pass(value: str) -> None:
    assert secret_weaknesses(value) == []


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


def test_development_on_loopback_keeps_its_placeholders_but_not_beyond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("REZEPTION_ENVIRONMENT", "REZEPTION_RETELL_API_KEY", "REZEPTION_ADMIN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.retell_api_key.get_secret_value() == "changeme" and settings.docs_enabled
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2", "[::1]"):
        assert settings.exposure_problems(host) == [], host
    for host in ("0.0.0.0", "::", "192.168.1.20", "rezeption.example", "10.0.0.1"):
        problems = settings.exposure_problems(host)
        assert any("REZEPTION_RETELL_API_KEY is weak" in p for p in problems), host
        assert any("must differ" in p for p in problems), host


def test_loopback_is_the_loopback_only() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("salon.local")
