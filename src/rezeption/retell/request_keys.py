"""A write function's idempotency key: the same request in a call gets the same key (Retell's retry,
a duplicate, the LLM asking again after a timeout), so it runs once and is replayed after.

"The same request" ends where the call changed something in between. A caller who books 9 Uhr,
cancels it and books 9 Uhr again in the same words asks for a new booking; replaying the first
"gebucht" would promise an appointment that was cancelled. So each reply that changed something
(`changed_something`) counts a generation in the call's memory, with the request that made it, and
a key names its generation: a request asked again after another request's change gets a new key,
while the retry of the change itself keeps its own (the change counted it, so it steps back one).
Retell sends a retry before the agent hears any reply, so nothing else is asked in between.

A booking asked again under a later generation is not blind to the earlier one: a call with
changes checks its own appointments first (`availability_functions._already_held`), so a booking
that committed but whose reply never came ("Fragen Sie mich bitte gleich noch einmal") is
answered as the caller's, not booked twice, even when the key moved on. The count is stored with
the reply (committed without waiting for the disk). A cancel's or a move's before the reply is sent
(`FunctionRunner._store_change`): lost, it would let the words asked before it replay a reply it
made untrue. A booking's rides with the next batch (`reply_batches`): our process killed within
those 50 ms loses it, and then only a repeat of that same booking replays its own reply.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

CHANGES = "_changes"
"""The call memory's count of changes: {"n": how many, "by": the base key of the last one}."""


def base_key(call_id: str, name: str, args: dict[str, Any]) -> str:
    """sha256 of call id, function and the canonical (validated, sorted) arguments."""
    canonical = json.dumps(args, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{call_id}\x1f{name}\x1f{canonical}".encode()).hexdigest()


def generation(base: str, memory: Mapping[str, Any]) -> int:
    """The generation a request with key `base` belongs to in a call with `memory`: the changes
    made so far, less the last one if this very request made it (its retry)."""
    changes = memory.get(CHANGES)
    if not isinstance(changes, Mapping):
        return 0
    made = changes.get("n")
    if not isinstance(made, int) or made <= 0:  # none yet, or not a count: generation 0
        return 0
    return made - 1 if changes.get("by") == base else made


def in_generation(base: str, generation: int) -> str:
    """The key of `base` in `generation`; generation 0 is the base itself."""
    if generation <= 0:
        return base
    return hashlib.sha256(f"{base}\x1f{generation}".encode()).hexdigest()


def changed_something(reply: Mapping[str, Any]) -> bool:
    """A write's reply that says it changed the salon's book: booked ("gebucht", "angefragt"),
    cancelled, moved, consent stored. "Schon eingetragen" (the booking said again in other words)
    changed nothing; "vorgemerkt" (`ok` false: pending at the calendar) is not counted, and its
    later cancel or move is."""
    return reply.get("ok") is True and not reply.get("schon_gebucht")


def counted(base: str, generation: int) -> dict[str, Any]:
    """The memory to store with a change made by `base` in `generation`."""
    return {CHANGES: {"n": generation + 1, "by": base}}
