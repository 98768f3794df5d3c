"""Put the rendered agent live with the official retell-sdk, and take it back: diff, publish,
rollback, versions.

Publish is a sequence of steps that can each be repeated: update the LLM draft, update the agent
draft, publish the draft with a title that carries the definition's fingerprint (and the git
commit), pin that version on each of the salon's phone numbers with call_inbound's URL. When a step
fails, what was done and what was not is reported (`PublishIncomplete`); running publish again
finds a version already published with the same fingerprint and only finishes the pinning.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from retell import Retell, omit

from rezeption.agent.definition import Definition
from rezeption.store.salon_file import SalonFile

COMPARED_LLM = ("model", "general_prompt", "begin_message", "general_tools", "default_dynamic_variables")
COMPARED_AGENT = (
    "agent_name", "voice_id", "language", "timezone", "webhook_url", "reminder_trigger_ms",
    "reminder_max_count", "end_call_after_silence_ms", "responsiveness", "interruption_sensitivity",
)  # fmt: skip


class AgentPublishError(RuntimeError):
    """Retell refused or could not be reached; the message says which step and why."""


@dataclass
class PublishIncomplete(AgentPublishError):
    """A publish stopped in the middle: `done` happened, `failed` did not, the rest was not tried."""

    done: list[str]
    failed: str
    cause: str

    def __str__(self) -> str:
        done = "; ".join(self.done) or "nothing"
        return f"publish stopped at: {self.failed} ({self.cause}). Done: {done}. Run `agent publish` again."


@dataclass(frozen=True)
class Version:
    """One agent version as `agent versions` lists it."""

    number: int
    published: bool
    title: str | None
    pinned_on: tuple[str, ...] = ()


@dataclass
class PublishReport:
    """What a publish did."""

    version: int
    steps: list[str] = field(default_factory=list)


def fingerprint(definition: Definition) -> str:
    """A short hash of what Retell receives (the same definition always gives the same one)."""
    doc = json.dumps(definition.as_json(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(doc.encode()).hexdigest()[:12]


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(exclude_none=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    return value


class AgentPublisher:
    """The salon's agent at Retell (its first `retell_agent_ids` entry) against our definition."""

    def __init__(self, client: Retell, definition: Definition, salon: SalonFile, base_url: str) -> None:
        if not salon.retell_agent_ids:
            raise AgentPublishError(f"salon {salon.slug}: retell_agent_ids is empty: which agent to publish?")
        if not salon.phone_numbers:
            raise AgentPublishError(
                f"salon {salon.slug}: phone_numbers is empty: where to put the agent live?"
            )
        self.client = client
        self.definition = definition
        self.salon = salon
        self.agent_id = salon.retell_agent_ids[0]
        self.inbound_url = f"{base_url.rstrip('/')}/retell/inbound"

    def _call(self, step: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except Exception as error:  # the SDK's APIStatusError, APIConnectionError, APITimeoutError
            status = getattr(error, "status_code", None)
            why = f"HTTP {status}" if status else type(error).__name__
            if status == 401:
                why = "Retell refused the API key (REZEPTION_RETELL_API_KEY)"
            raise AgentPublishError(f"{step}: {why}") from error

    def versions(self) -> list[Version]:
        """Every version of the agent, newest first, with the numbers it is pinned on."""
        listed = self._call("list versions", lambda: self.client.agent.list_versions(self.agent_id))
        pins = self.pins()
        return [
            Version(
                item.version,
                item.is_published,
                item.version_title,
                tuple(n for n, v in pins.items() if v == item.version),
            )
            for item in listed.items
        ]

    def pins(self) -> dict[str, int | None]:
        """Which version of our agent each of the salon's numbers answers with (None: not ours)."""
        pins: dict[str, int | None] = {}
        for number in self.salon.phone_numbers:
            found = self._call(f"read {number}", partial(self.client.phone_number.retrieve, number))
            pinned = [a for a in (found.inbound_agents or []) if a.agent_id == self.agent_id]
            pins[number] = (
                int(pinned[0].agent_version) if pinned and pinned[0].agent_version is not None else None
            )
        return pins

    def diff(self) -> list[str]:
        """What publishing would change against what the numbers answer with (or the draft)."""
        live_versions = {v for v in self.pins().values() if v is not None}
        version = max(live_versions) if live_versions else None
        agent = self._call(
            "read agent",
            lambda: self.client.agent.retrieve(self.agent_id, version=omit if version is None else version),
        )
        llm_id = agent.response_engine.llm_id
        llm = self._call(
            "read llm",
            lambda: self.client.llm.retrieve(llm_id, version=omit if version is None else version),
        )
        changes = []
        for name, live, ours, keys in (
            ("llm", llm, self.definition.llm, COMPARED_LLM),
            ("agent", agent, self.definition.agent, COMPARED_AGENT),
        ):
            for key in keys:
                theirs = _plain(getattr(live, key, None))
                if theirs != _plain(ours.get(key)):
                    changes.append(f"{name}.{key}: {_short(theirs)} -> {_short(ours.get(key))}")
        return changes

    def publish(self, title: str) -> PublishReport:
        """Draft, publish, pin; repeatable after a failure in the middle (see the module)."""
        mark = f"#{fingerprint(self.definition)}"
        stamp = f"{title} {mark}"
        done: list[str] = []

        def step(name: str, action: Callable[[], Any]) -> Any:
            try:
                result = self._call(name, action)
            except AgentPublishError as error:
                raise PublishIncomplete(done, name, str(error).split(": ", 1)[-1]) from error
            done.append(name)
            return result

        existing = [v for v in self.versions() if v.published and v.title and v.title.endswith(mark)]
        if existing:
            version = existing[0].number
            done.append(f"version {version} already published with this definition")
        else:
            agent = step("read agent", lambda: self.client.agent.retrieve(self.agent_id))
            llm_id = agent.response_engine.llm_id
            step("update llm draft", lambda: self.client.llm.update(llm_id, **self.definition.llm))
            body = {**self.definition.agent, "response_engine": {"type": "retell-llm", "llm_id": llm_id}}
            draft = step("update agent draft", lambda: self.client.agent.update(self.agent_id, **body))
            version = int(draft.version)
            step(
                f"publish version {version}",
                lambda: self.client.agent.publish(self.agent_id, version=version, version_title=stamp),
            )
        for number in self.salon.phone_numbers:
            step(f"pin version {version} on {number}", partial(self._pin, number, version))
        return PublishReport(version, done)

    def rollback(self, version: int) -> list[str]:
        """Pin an earlier published version on the salon's numbers."""
        published = {v.number for v in self.versions() if v.published}
        if version not in published:
            raise AgentPublishError(
                f"version {version} is not a published version (published: {sorted(published)})"
            )
        for number in self.salon.phone_numbers:
            self._call(f"pin version {version} on {number}", partial(self._pin, number, version))
        return list(self.salon.phone_numbers)

    def _pin(self, number: str, version: int) -> Any:
        return self.client.phone_number.update(
            number,
            inbound_agents=[{"agent_id": self.agent_id, "weight": 1, "agent_version": version}],
            inbound_webhook_url=self.inbound_url,
        )


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."
