"""Retell's envelopes as Pydantic models: function calls, call_inbound, and call-event webhooks.

Only what we use is declared; everything else Retell sends is tolerated (extra fields allowed).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_TIMESTAMP_MS = 4_102_444_800_000  # 2100-01-01: Retell's milliseconds since 1970, sanely bounded


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
    start_timestamp: int | None = Field(None, ge=0, le=MAX_TIMESTAMP_MS)
    end_timestamp: int | None = Field(None, ge=0, le=MAX_TIMESTAMP_MS)
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
    """`{"event": "call_inbound", "call_inbound": {...}}`: nothing else belongs at /inbound."""

    event: Literal["call_inbound"]
    call_inbound: InboundCall


class WebhookEnvelope(Tolerant):
    """`{"event": ..., "call": {...}}`; the legacy envelope put the call under `data`."""

    event: str = Field(min_length=1, max_length=64)
    call: RetellCall | None = None
    data: RetellCall | None = None

    @model_validator(mode="after")
    def _not_a_function_call(self) -> WebhookEnvelope:
        extra = self.model_extra or {}
        if "args" in extra or "name" in extra:
            raise ValueError("a function call is not a call event")
        return self

    @property
    def the_call(self) -> RetellCall | None:
        """The call, whichever envelope carried it."""
        return self.call or self.data
