"""The argument models are the one source of truth: validation, OpenAPI and the agent's tool schemas."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rezeption.app import create_app
from rezeption.retell.tools import TOOLS, BookAppointmentArgs, RescheduleAppointmentArgs, tool_definitions
from rezeption.settings import Settings


def test_english_aliases_fill_the_german_fields() -> None:
    args = BookAppointmentArgs.model_validate(
        {
            "service": "Bart",
            "date": "morgen",
            "time": "10",
            "staff": "Ben",
            "customer_name": "Jo",
            "phone": "030 1",
        }
    )
    assert (args.dienstleistung, args.datum, args.uhrzeit, args.mitarbeiter, args.name, args.telefon) == (
        "Bart",
        "morgen",
        "10",
        "Ben",
        "Jo",
        "030 1",
    )
    moved = RescheduleAppointmentArgs.model_validate({"reference": "T-1-abc", "new_date": "Freitag"})
    assert moved.referenz == "T-1-abc" and moved.neues_datum == "Freitag"


@pytest.mark.parametrize("bad", [{"name": 7}, {"datum": ["morgen"]}, {"uhrzeit": "1" * 201}])
def test_wrong_types_and_absurd_lengths_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BookAppointmentArgs.model_validate(bad)


def test_tool_definitions_describe_every_function_for_the_agent() -> None:
    tools = {t["name"]: t for t in tool_definitions("https://rezeption.example/")}
    assert set(tools) == set(TOOLS)
    check = tools["check_availability"]
    assert check["url"] == "https://rezeption.example/retell/functions/check_availability"
    assert set(check["parameters"]["properties"]) == {
        "dienstleistung",
        "datum",
        "uhrzeit",
        "wochentag",
        "mitarbeiter",
    }
    assert check["speak_during_execution"] is True and check["max_retry"] == 0
    assert tools["list_services"]["speak_during_execution"] is False


def test_the_openapi_document_shows_each_functions_arguments() -> None:
    schema = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", environment="test")).openapi()
    for name, model in TOOLS.items():
        operation = schema["paths"][f"/retell/functions/{name}"]["post"]
        args = operation["requestBody"]["content"]["application/json"]["schema"]["properties"]["args"]
        assert set(args.get("properties", {})) == set(model.model_fields), name
    assert "/retell/functions/{name}" not in schema["paths"]
