"""`rezeption agent check`: refuse, with the place and the reason, what broke the old agent.

- a `{{variable}}` used in the prompt, begin message or a tool that neither call_inbound sets, nor the
  agent's defaults, nor Retell itself (system variables);
- a variable name that is not snake_case (Retell keeps `{{customerName}}` and `{{customer_name}}`
  apart, and the old agent used both);
- a tool whose name or parameters do not match a function route and its model, or an unknown tool;
- a slow tool without a spoken line (callers sat in silence for 11-13 s);
- a prompt without the date context from call_inbound (the model then uses its training year);
- a write tool that Retell would retry, or a tool timeout outside the server's time budget;
- a salon without a phone number to route calls, or without a transfer number for callers who ask
  for a person; a base URL that is not https outside development.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from rezeption.agent.definition import Definition
from rezeption.booking.caller_id import CallerMatch
from rezeption.domain.model import BookingPolicy, Catalog, Tenant
from rezeption.retell.functions import BUDGET_SECONDS, HANDLERS
from rezeption.retell.inbound import dynamic_variables
from rezeption.retell.tools import TOOL_TIMEOUT_MS, TOOLS
from rezeption.store.salon_file import SalonFile

VARIABLE = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
SYSTEM_VARIABLES = {
    "current_time", "current_hour", "current_calendar", "session_type", "session_duration",
    "session_duration_ms", "current_agent_state", "previous_agent_state", "current_node",
    "previous_node", "direction", "user_number", "agent_number", "call_id", "call_type", "llm_id",
}  # fmt: skip
SYSTEM_PREFIXES = ("current_time_", "current_hour_", "current_calendar_")
DATE_CONTEXT = ("heute", "jahr")
"""The prompt must give the model today's date and year from call_inbound."""
BUILT_IN_TOOLS = {"end_call", "transfer_call"}
SLOW = {
    "check_availability",
    "book_appointment",
    "find_appointments",
    "cancel_appointment",
    "reschedule_appointment",
}


def inbound_variables() -> set[str]:
    """Every dynamic variable call_inbound sets (its static part and caller recognition)."""
    tenant = Tenant(0, "x", "x", "Europe/Berlin", "BE", {}, BookingPolicy())
    static = dynamic_variables(Catalog(tenant, (), ()), datetime(2026, 1, 1, tzinfo=UTC))
    return set(static) | set(CallerMatch(status="unknown").dynamic_variables())


def problems(definition: Definition, salon: SalonFile, *, environment: str = "production") -> list[str]:
    """Every reason the definition must not go live, each with its place; [] when it may."""
    found: list[str] = []
    llm, agent = definition.llm, definition.agent
    known = inbound_variables() | set(llm.get("default_dynamic_variables", {}))
    places: list[tuple[str, str]] = [
        ("prompt.md", llm.get("general_prompt", "")),
        ("agent.yaml begin_message", llm.get("begin_message", "")),
    ]
    for tool in llm.get("general_tools", []):
        places.append((f"tool {tool.get('name')} description", tool.get("description", "")))
        places.append((f"tool {tool.get('name')} url", tool.get("url", "")))
    for where, text in places:
        for name in VARIABLE.findall(text):
            if not SNAKE.match(name) and not name.startswith(SYSTEM_PREFIXES):
                found.append(f"{where}: {{{{{name}}}}} is not snake_case")
            elif name not in known and name not in SYSTEM_VARIABLES and not name.startswith(SYSTEM_PREFIXES):
                found.append(f"{where}: {{{{{name}}}}} is set neither by call_inbound nor by Retell")
    for name in llm.get("default_dynamic_variables", {}):
        if not SNAKE.match(name):
            found.append(f"agent.yaml default_dynamic_variables: {name} is not snake_case")
    prompt_variables = set(VARIABLE.findall(llm.get("general_prompt", "")))
    for needed in DATE_CONTEXT:
        if needed not in prompt_variables:
            found.append(f"prompt.md: no date context: {{{{{needed}}}}} from call_inbound is never used")
    found.extend(_tool_problems(llm.get("general_tools", [])))
    for name in definition.spec.slow_tools:
        if name not in HANDLERS:
            found.append(f"agent.yaml slow_tools: {name} is not one of our functions")
    if not salon.phone_numbers:
        found.append(f"salon {salon.slug}: phone_numbers is empty: no call can reach the agent")
    if not salon.transfer_number:
        found.append(
            f"salon {salon.slug}: transfer_number is missing: nobody can be put through to the salon"
        )
    webhook = str(agent.get("webhook_url", ""))
    if environment != "development" and not webhook.startswith("https://"):
        found.append(
            f"base URL: {webhook.rsplit('/retell/', 1)[0]} is not https (Retell sends personal data)"
        )
    if agent.get("language") != "de-DE":
        found.append(f"agent.yaml language: {agent.get('language')} is not de-DE")
    return found


def _tool_problems(tools: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    names = [t.get("name") for t in tools]
    for tool in tools:
        name = str(tool.get("name"))
        where = f"tool {name}"
        if tool.get("type") in BUILT_IN_TOOLS and name in BUILT_IN_TOOLS:
            continue
        if name not in HANDLERS or name not in TOOLS:
            found.append(f"{where}: no function route of that name")
            continue
        expected = set(TOOLS[name].model_json_schema(by_alias=False).get("properties", {}))
        given = set(tool.get("parameters", {}).get("properties", {}))
        if given != expected:
            found.append(
                f"{where}: parameters {sorted(given)} do not match the function's {sorted(expected)}"
            )
        if not str(tool.get("url", "")).endswith(f"/retell/functions/{name}"):
            found.append(f"{where}: url {tool.get('url')} is not the function's route")
        writes = HANDLERS[name][1]
        if writes and tool.get("max_retry", 2) != 0:  # Retell's older default is 2 retries
            found.append(f"{where}: a write that Retell would retry (max_retry must be 0)")
        timeout = tool.get("timeout_ms", 120_000)
        if not BUDGET_SECONDS * 1000 < timeout <= TOOL_TIMEOUT_MS:
            found.append(f"{where}: timeout_ms {timeout} does not fit the server's {BUDGET_SECONDS} s budget")
        if name in SLOW and not (
            tool.get("speak_during_execution") and tool.get("execution_message_description")
        ):
            found.append(f"{where}: can take longer than a moment and has no spoken line (slow_tools)")
    for required in ("end_call",):
        if required not in names:
            found.append(f"tools: {required} is missing")
    for function in HANDLERS:
        if function not in names:
            found.append(f"tools: function {function} is not offered to the agent")
    return found
