"""The agent as code: the demo salon's definition renders and passes the check; each thing that broke
the old agent is refused with its place and reason (a broken copy of the definition per case)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from tests.conftest import ROOT
from typer.testing import CliRunner

from rezeption.agent.check import problems
from rezeption.agent.definition import agent_dir, render
from rezeption.cli import app
from rezeption.store.salon_file import read_salon

BASE = "https://rezeption.example"
SALONS = sorted((ROOT / "salons").glob("*.yaml"))


@pytest.mark.parametrize("path", SALONS, ids=lambda p: p.name)
def test_every_salon_in_the_repository_has_an_agent_that_passes(path: Path) -> None:
    salon = read_salon(path)
    definition = render(salon, agent_dir(ROOT, salon), BASE)
    assert problems(definition, salon) == []
    tools = {t["name"]: t for t in definition.llm["general_tools"]}
    assert tools["book_appointment"]["max_retry"] == 0 and tools["book_appointment"]["speak_during_execution"]
    assert (
        tools["check_availability"]["execution_message_description"]
        == "Einen Moment, ich schaue in den Kalender."
    )
    assert tools["transfer_call"]["transfer_destination"]["number"] == salon.transfer_number
    assert "end_call" in tools and definition.agent["language"] == "de-DE"
    assert definition.agent["timezone"] == "Europe/Berlin"
    assert definition.agent["webhook_url"] == f"{BASE}/retell/webhook"


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A copy of the demo agent to break."""
    copy = tmp_path / "agents" / "friseur1"
    shutil.copytree(ROOT / "agents" / "friseur1", copy)
    return copy


def check_copy(
    directory: Path, salon_path: Path = ROOT / "salons" / "friseur1.yaml", base: str = BASE
) -> list[str]:
    salon = read_salon(salon_path)
    return problems(render(salon, directory, base), salon)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_a_variable_nobody_sets_is_refused(broken: Path) -> None:
    edit(broken / "prompt.md", "({{customer_name}})", "({{name}})")
    assert check_copy(broken) == ["prompt.md: {{name}} is set neither by call_inbound nor by Retell"]


def test_a_variable_not_in_snake_case_is_refused(broken: Path) -> None:
    edit(broken / "agent.yaml", 'begin_message: "{{salon_name}}', 'begin_message: "{{salonName}}')
    assert check_copy(broken) == ["agent.yaml begin_message: {{salonName}} is not snake_case"]


def test_a_prompt_without_the_date_context_is_refused(broken: Path) -> None:
    edit(broken / "prompt.md", "Heute ist {{heute}}", "Heute ist ein schöner Tag")
    assert check_copy(broken) == ["prompt.md: no date context: {{heute}} from call_inbound is never used"]


def test_a_slow_tool_without_a_spoken_line_is_refused(broken: Path) -> None:
    edit(broken / "agent.yaml", '  book_appointment: "Einen Moment, ich trage den Termin ein."\n', "")
    assert check_copy(broken) == [
        "tool book_appointment: can take longer than a moment and has no spoken line (slow_tools)"
    ]


def test_a_salon_without_a_transfer_number_and_a_plain_http_url_are_refused(
    broken: Path, tmp_path: Path
) -> None:
    salon = tmp_path / "salon.yaml"
    salon.write_text(
        (ROOT / "salons" / "friseur1.yaml")
        .read_text(encoding="utf-8")
        .replace('transfer_number: "+493012345678"', ""),
        encoding="utf-8",
    )
    found = check_copy(broken, salon, base="http://rezeption.example")
    assert "salon friseur1: transfer_number is missing: nobody can be put through to the salon" in found
    assert "base URL: http://rezeption.example is not https (Retell sends personal data)" in found


def test_a_tool_that_matches_no_route_or_model_and_a_retried_write_are_refused(broken: Path) -> None:
    salon = read_salon(ROOT / "salons" / "friseur1.yaml")
    definition = render(salon, broken, BASE)
    tools = {t["name"]: t for t in definition.llm["general_tools"]}
    tools["book_appointment"]["max_retry"] = 2
    tools["check_availability"]["parameters"]["properties"]["date_iso"] = {"type": "string"}
    definition.llm["general_tools"].append({**tools["list_services"], "name": "send_sms"})
    found = problems(definition, salon)
    assert "tool book_appointment: a write that Retell would retry (max_retry must be 0)" in found
    assert any(p.startswith("tool check_availability: parameters") for p in found)
    assert "tool send_sms: no function route of that name" in found


def test_agent_show_json_prints_the_definition_for_a_base_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT)
    env = {"REZEPTION_DEV_SECRETS_FILE": str(tmp_path / "s.json")}
    shown = CliRunner().invoke(app, ["agent", "show", "--json", "--base-url", BASE], env=env)
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.stdout)
    assert body["agent"]["webhook_url"] == f"{BASE}/retell/webhook"
    assert {t["name"] for t in body["retell_llm"]["general_tools"]} >= {"book_appointment", "end_call"}
    checked = CliRunner().invoke(app, ["agent", "check", "--base-url", BASE], env=env)
    assert checked.exit_code == 0 and "salons/friseur1.yaml: ok" in checked.stdout


def test_an_unknown_tool_in_the_definition_is_refused(broken: Path) -> None:
    edit(broken / "agent.yaml", "slow_tools:", 'slow_tools:\n  send_sms: "Einen Moment."')
    assert check_copy(broken) == ["agent.yaml slow_tools: send_sms is not one of our functions"]


PROMPT_ASKS = {
    "greets with the salon's name": ("begin_message", r"^\{\{salon_name\}\}"),
    "knows today from call_inbound": ("prompt", r"Heute ist \{\{heute\}\}.*nie auf dein Wissen"),
    "passes day and time as spoken": ("prompt", r"Rechne keine Daten aus.*wie der Anrufer sie sagt"),
    "asks for the name once": ("prompt", r"Namen nur einmal.*nie ein zweites Mal"),
    "reads back, books after a yes": ("prompt", r"Lies Leistung, Tag, Uhrzeit.*Erst nach einem Ja buchst"),
    "offers our alternatives": ("prompt", r"biete genau die Alternativen an, die die Funktion nennt"),
    "finds and confirms first": ("prompt", r"zuerst mit find_appointments.*Erst nach einem Ja"),
    "names only a recognized caller": ("prompt", r'customer_known "true".*Sonst nenne keinen Namen'),
    "never reads out phone numbers": ("prompt", r"Lies nie eine Telefonnummer vor"),
    "says goodbye and ends the call": ("prompt", r"Verabschiede dich.*end_call"),
    "transfers after two tries": ("prompt", r"nach zwei Versuchen.*transfer_call"),
}


@pytest.mark.parametrize("requirement", PROMPT_ASKS)
def test_the_definition_asks_the_agent_to(requirement: str) -> None:
    salon = read_salon(ROOT / "salons" / "friseur1.yaml")
    llm = render(salon, agent_dir(ROOT, salon), BASE).llm
    field, pattern = PROMPT_ASKS[requirement]
    text = llm["begin_message"] if field == "begin_message" else llm["general_prompt"]
    assert re.search(pattern, text, re.S), requirement
