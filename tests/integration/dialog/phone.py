"""A phone for dialog tests: calls the dialog engine in-process, through the same function runner
(validation, idempotency, call memory) the HTTP functions and the socket use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rezeption.bootstrap import Services
from rezeption.dialog.manager import Caller, Dialog, Say
from rezeption.domain.model import Catalog
from rezeption.retell.functions import CallRef, FunctionRunner

AGENT = "agent_friseur1"


@dataclass
class Conversation:
    """One call: what the caller said, what the receptionist answered, which functions ran."""

    dialog: Dialog
    greeting: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    functions: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    last: Say | None = None

    async def say(self, words: str) -> str:
        """The caller speaks; the receptionist's answer."""
        self.last = await self.dialog.respond(words)
        self.lines.append((words, self.last.text))
        return self.last.text

    def called(self, name: str) -> list[dict[str, Any]]:
        """The replies of every call of function `name` in this conversation."""
        return [reply for called, _, reply in self.functions if called == name]


class Phone:
    """Places calls to the salon with the wired services."""

    def __init__(self, services: Services, runner: FunctionRunner) -> None:
        self.services = services
        self.runner = runner
        self.calls = 0
        self.faults: dict[str, list[dict[str, Any]]] = {}  # function -> replies given instead, in turn
        self.pauses: list[float] = []

    async def call(
        self, from_number: str | None = "+4915123456789", call_id: str | None = None
    ) -> Conversation:
        """Ring the salon (as call_inbound would record it) and hear the greeting."""
        self.calls += 1
        call_id = call_id or f"call_dialog_{self.calls}"
        tenant_id = await self.services.calls.tenant_for(agent_id=AGENT, to_number=None)
        assert tenant_id is not None
        await self.services.calls.open(
            call_id,
            tenant_id=tenant_id,
            at=self.services.clock.now(),
            agent_id=AGENT,
            from_number=from_number,
            to_number=None,
        )
        ref = CallRef(call_id, AGENT, from_number, None)

        async def catalog() -> Catalog:
            async with self.services.uow.reading() as tx:
                return await self.services.bookings.catalogs.get(
                    tx, tenant_id, self.services.clock.now().date()
                )

        conversation: Conversation

        async def functions(name: str, args: dict[str, Any]) -> dict[str, Any]:
            if self.faults.get(name):
                reply = self.faults[name].pop(0)
            else:
                reply = (await self.runner.run(name, ref, args)).reply
            conversation.functions.append((name, args, reply))
            return reply

        async def pause(seconds: float) -> None:
            self.pauses.append(seconds)

        match = await self.services.callers.find_caller(tenant_id, from_number)
        salon = await catalog()
        dialog = Dialog(
            call_id=call_id,
            catalog=catalog,
            functions=functions,
            clock=self.services.clock,
            caller=Caller(match.name if match.status == "known" else None),
            transfer_number=salon.tenant.transfer_number,
            pause=pause,
        )
        greeting = (await dialog.begin()).text
        conversation = Conversation(dialog, greeting)
        return conversation
