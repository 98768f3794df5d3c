"""Time budgets that end on time, even when the work cannot stop quickly.

`asyncio.timeout` cancels the work and then waits for it to unwind; work stuck on a database that
stopped answering unwinds only when its own connection gives up (a rollback on a dead socket), so
the caller would still wait. `within` runs the work as a task and returns (or raises TimeoutError)
when the budget ends; a cancelled task finishes unwinding in the background and is kept referenced
until then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BudgetSpent(TimeoutError):
    """The budget ended before the work did (not a timeout the work itself ran into)."""


_unwinding: set[asyncio.Task[Any]] = set()


async def within(seconds: float, work: Coroutine[Any, Any, T]) -> T:
    """The result of `work`, or BudgetSpent after `seconds` (work cancelled, not waited for)."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=max(seconds, 0.0))
    if task in done:
        return task.result()
    task.cancel()
    _unwinding.add(task)
    task.add_done_callback(_forget)
    raise BudgetSpent(f"not done within {seconds:.2f} s")


def _forget(task: asyncio.Task[Any]) -> None:
    _unwinding.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: the task failed while unwinding, nobody waits for it any more
