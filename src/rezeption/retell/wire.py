"""Retell's envelopes as Pydantic models: function calls, call_inbound, and call-event webhooks.

Only what we use is declared; everything else Retell sends is tolerated (extra fields allowed).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Tolerant(BaseModel):
    """Accept fields we do not know: Retell adds them over time."""

    model_config = ConfigDict(extra="allow")


class RetellCall(Tolerant):
    """The call object Retell attaches to function calls and webhooks."""

    call_id: str = Field(min_length=1, max_length=128)
    agent_id: str | None = Field(None, max_length=128)
    from_number: str | None = Field(None, max_length=64)
    to_number: str | None = Field(None, max_length=64)
    direction: str | None = None
    call_status: str | None = None
    start_timestamp: int | None = None
    end_timestamp: int | None = None
    disconnection_reason: str | None = None
    transcript: str | None = None
    call_analysis: dict[str, Any] | None = None


class FunctionEnvelope(Tolerant):
    """A custom-function request: `{name, call, args}`."""

    name: str = Field(min_length=1, max_length=64)
    call: RetellCall
    args: dict[str, Any] = Field(default_factory=dict)


class InboundCall(Tolerant):
    """What `call_inbound` tells us before the call connects."""

    from_number: str | None = Field(None, max_length=64)
    to_number: str | None = Field(None, max_length=64)
    agent_id: str | None = Field(None, max_length=128)
    agent_version: int | None = None
    call_id: str | None = Field(None, max_length=128)


class InboundEnvelope(Tolerant):
    """`{"event": "call_inbound", "call_inbound": {...}}`."""

    event: str = "call_inbound"
    call_inbound: InboundCall


class WebhookEnvelope(Tolerant):
    """`{"event": ..., "call": {...}}`; the legacy envelope put the call under `data`."""

    event: str = Field(min_length=1, max_length=64)
    call: RetellCall | None = None
    data: RetellCall | None = None

    @property
    def the_call(self) -> RetellCall | None:
        """The call, whichever envelope carried it."""
        return self.call or self.data
