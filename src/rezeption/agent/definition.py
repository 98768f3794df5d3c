"""Render an agent definition (`agents/<name>/agent.yaml` + `prompt.md`) for one salon and base URL
into the two bodies Retell's API receives: the Retell LLM (prompt, tools, default variables) and the
agent (voice, language, time zone, silence handling, webhook).

The function tools come from our function models (`retell.tools.tool_definitions`), never written
twice; this module only adds what the agent needs around them: the spoken line for slow tools, a
timeout that matches the server's time budget, no retry of a write, and Retell's `end_call` and
`transfer_call` to the salon's own number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from rezeption.retell.functions import BUDGET_SECONDS
from rezeption.retell.tools import TOOL_TIMEOUT_MS, tool_definitions
from rezeption.store.salon_file import SalonFile

assert BUDGET_SECONDS * 1000 < TOOL_TIMEOUT_MS, "Retell must wait longer than our time budget"


class AgentFileError(ValueError):
    """The agent definition cannot be used; the message names the file and the field."""


class AgentSpec(BaseModel):
    """`agents/<name>/agent.yaml`: the agent's settings; the prompt lives beside it."""

    model_config = ConfigDict(extra="forbid")

    agent_name: str
    voice_id: str
    language: str = "de-DE"
    timezone: str = "Europe/Berlin"
    model: str = "gpt-4.1"
    begin_message: str
    reminder_trigger_ms: int = Field(8000, ge=1000)
    reminder_max_count: int = Field(2, ge=0)
    end_call_after_silence_ms: int = Field(30000, ge=10000)
    responsiveness: float = Field(1.0, ge=0, le=1)
    interruption_sensitivity: float = Field(0.8, ge=0, le=1)
    slow_tools: dict[str, str] = Field(default_factory=dict)
    default_dynamic_variables: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class Definition:
    """What Retell receives for one salon: the LLM create body and the agent create body."""

    salon: str
    llm: dict[str, Any]
    agent: dict[str, Any]
    spec: AgentSpec
    source: Path
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """Both bodies, as `rezeption agent show --json` prints them."""
        return {"salon": self.salon, "retell_llm": self.llm, "agent": self.agent}


def agent_dir(root: Path, salon: SalonFile) -> Path:
    """The salon's agent definition directory (`agents/<agent or slug>/`)."""
    return root / "agents" / (salon.agent or salon.slug)


def load_spec(directory: Path) -> tuple[AgentSpec, str]:
    """The agent's settings and prompt from `directory`; AgentFileError names what is wrong."""
    settings, prompt = directory / "agent.yaml", directory / "prompt.md"
    try:
        raw = yaml.safe_load(settings.read_text(encoding="utf-8")) or {}
        text = prompt.read_text(encoding="utf-8")
    except OSError as error:
        raise AgentFileError(f"{error.filename}: cannot read: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise AgentFileError(f"{settings}: not valid YAML: {error}") from error
    try:
        return AgentSpec.model_validate(raw), text
    except ValueError as error:
        raise AgentFileError(f"{settings}: {error}") from error


def render(salon: SalonFile, directory: Path, base_url: str) -> Definition:
    """The definition for `salon` at `base_url` (where Retell reaches our functions and webhooks)."""
    spec, prompt = load_spec(directory)
    base = base_url.rstrip("/")
    tools: list[dict[str, Any]] = []
    for tool in tool_definitions(base):
        line = spec.slow_tools.get(tool["name"])
        tool.update(  # timeout_ms and max_retry 0 come with tool_definitions
            speak_during_execution=line is not None,
            execution_message_type="static_text",
            execution_message_description=line or "",
        )
        tools.append(tool)
    tools.append(
        {
            "type": "end_call",
            "name": "end_call",
            "description": "Beendet das Gespräch nach der Verabschiedung.",
        }
    )
    if salon.transfer_number:
        tools.append(
            {
                "type": "transfer_call",
                "name": "transfer_call",
                "description": "Verbindet mit dem Salon, wenn der Anrufer einen Menschen sprechen möchte "
                "oder nach zwei Versuchen nicht geholfen werden kann.",
                "transfer_destination": {"type": "predefined", "number": salon.transfer_number},
                "speak_during_execution": True,
                "execution_message_type": "static_text",
                "execution_message_description": "Ich verbinde Sie mit dem Salon, einen Moment bitte.",
            }
        )
    llm = {
        "model": spec.model,
        "general_prompt": prompt,
        "begin_message": spec.begin_message,
        "general_tools": tools,
        "default_dynamic_variables": dict(spec.default_dynamic_variables),
    }
    agent = {
        "agent_name": spec.agent_name,
        "voice_id": spec.voice_id,
        "language": spec.language,
        "timezone": spec.timezone,
        "response_engine": {"type": "retell-llm", "llm_id": "{{llm_id}}"},
        "webhook_url": f"{base}/retell/webhook",
        "reminder_trigger_ms": spec.reminder_trigger_ms,
        "reminder_max_count": spec.reminder_max_count,
        "end_call_after_silence_ms": spec.end_call_after_silence_ms,
        "responsiveness": spec.responsiveness,
        "interruption_sensitivity": spec.interruption_sensitivity,
    }
    numbers = ", ".join(salon.phone_numbers)
    notes = [f"call_inbound: {base}/retell/inbound (set on the phone number(s) {numbers})"]
    return Definition(salon.slug, llm, agent, spec, directory, notes)
