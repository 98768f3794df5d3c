"""Never silent: one answer streamed under one response id, with holding lines while it is worked out.

When the answer is not ready within `HOLD_AFTER` seconds, a short holding sentence goes out first
("Einen Moment bitte, ich schaue nach."); when it is still not ready after the caller has heard
that sentence and a short pause, the next one ("Ich bin gleich so weit."), and so on. How long a
sentence takes to speak is estimated at `CHARS_PER_SECOND` (a calm German TTS voice); the same
estimate measures silence in `bench/dialog.py`. A voice whose response was superseded (the caller
kept talking) stops sending, but the work it waits for is never cancelled: a write stays made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from rezeption.ops.metrics import FIRST_WORDS_SECONDS
from rezeption.ops.metrics import HOLDING_LINES as HOLDING_LINES_SPOKEN

HOLD_AFTER = 0.25  # seconds after response_required: below the 300 ms the caller notices
PAUSE = 0.5  # seconds of quiet after a holding sentence before the next one
CHARS_PER_SECOND = 12.0
HOLDING_LINES = (
    "Einen Moment bitte, ich schaue nach. ",
    "Ich bin gleich so weit. ",
    "Danke für Ihre Geduld, einen kleinen Moment noch. ",
    "Es dauert leider etwas länger, ich bin noch dran. ",
)
T = TypeVar("T")
Send = Callable[[str], Awaitable[None]]


def speaking_time(text: str) -> float:
    """Seconds a sentence takes to speak (estimate)."""
    return len(text) / CHARS_PER_SECOND


class Voice:
    """The voice of one response: streams holding lines while `during` waits, then the answer."""

    def __init__(self, send: Send, *, alive: Callable[[], bool] = lambda: True, hold: bool = True) -> None:
        self._send = send
        self.alive = alive
        self.hold = hold  # holding lines at all (the interim_lines flag)
        loop = asyncio.get_running_loop()
        self._clock = loop.time
        self.started = self._clock()
        self.speech_ends: float | None = None  # when what was sent so far has been spoken
        self.holding = 0

    async def say(self, text: str) -> None:
        """Send a part of the answer (not the end of it), unless the response is dead."""
        if not text or not self.alive():
            return
        now = self._clock()
        if self.speech_ends is None:
            FIRST_WORDS_SECONDS.observe(now - self.started)
        self.speech_ends = max(now, self.speech_ends or now) + speaking_time(text)
        await self._send(text)

    def answered(self) -> None:
        """The final part goes out now (counted as the first words when nothing came before)."""
        if self.speech_ends is None:
            FIRST_WORDS_SECONDS.observe(self._clock() - self.started)

    def _next_hold(self) -> float:
        if self.speech_ends is None:
            return self.started + HOLD_AFTER
        return self.speech_ends + PAUSE

    async def during(self, work: Awaitable[T]) -> T:
        """Wait for `work`, keeping the caller company; its result (or exception) is returned as is."""
        task = asyncio.ensure_future(work)  # never cancelled from here: asyncio.wait leaves it running
        while True:
            timeout = max(0.0, self._next_hold() - self._clock())
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if done:
                return task.result()
            if not self.hold or not self.alive() or self.holding >= len(HOLDING_LINES):
                return await asyncio.shield(task)
            await self.say(HOLDING_LINES[self.holding])
            self.holding += 1
            HOLDING_LINES_SPOKEN.inc()
