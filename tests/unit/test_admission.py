"""The admission gate (ops.admission.FairGate): turns go first come, first served; a full line, a wait
that cannot end in time and a wait that ran out are turned away; a waiter that gives up never keeps
a turn from the others."""

from __future__ import annotations

import asyncio

import pytest

from rezeption.ops.admission import FairGate, Overloaded


async def _queued(gate: FairGate, count: int) -> None:
    for _ in range(1000):
        if gate.waiting >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{count} waiters expected, {gate.waiting} in line")


async def test_turns_go_in_the_order_the_requests_came() -> None:
    gate = FairGate(1, max_wait=5, max_waiting=10)
    await gate.enter()  # the one turn is taken
    order: list[int] = []

    async def request(n: int) -> None:
        await gate.enter()
        order.append(n)
        gate.leave(0.001)

    tasks = []
    for n in range(5):
        tasks.append(asyncio.create_task(request(n)))
        await _queued(gate, n + 1)
    gate.leave(0.001)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert gate.busy == 0 and gate.waiting == 0


async def test_a_full_line_turns_the_next_request_away_at_once() -> None:
    gate = FairGate(2, max_wait=5, max_waiting=1)
    await gate.enter()
    await gate.enter()
    waiting = asyncio.create_task(gate.enter())
    await _queued(gate, 1)
    with pytest.raises(Overloaded) as refused:
        await gate.enter()
    assert refused.value.reason == "full"
    gate.leave(0.01)
    assert await waiting >= 0  # the one in line got the freed turn
    assert gate.busy == 2


async def test_a_wait_that_cannot_end_in_time_is_refused_on_arrival() -> None:
    gate = FairGate(1, max_wait=0.5, max_waiting=100)
    gate.service_time = 0.2  # recent requests took 0.2 s each
    await gate.enter()
    first = asyncio.create_task(gate.enter())
    await _queued(gate, 1)  # expected wait for the next: 2 ahead x 0.2 s = 0.4 s, still in time
    second = asyncio.create_task(gate.enter())
    await _queued(gate, 2)
    with pytest.raises(Overloaded) as refused:  # 3 x 0.2 s = 0.6 s > 0.5 s
        await gate.enter()
    assert refused.value.reason == "late"
    for _ in range(3):
        gate.leave(0.2)
    await asyncio.gather(first, second)


async def test_a_request_that_waited_its_time_out_is_turned_away_and_leaves_the_line() -> None:
    gate = FairGate(1, max_wait=0.05, max_waiting=10)
    await gate.enter()
    with pytest.raises(Overloaded) as refused:
        await gate.enter()
    assert refused.value.reason == "waited"
    assert gate.waiting == 0
    gate.leave(0.01)
    assert gate.busy == 0, "the turn is free again: nobody waits for it"


async def test_a_waiter_that_hangs_up_does_not_take_a_turn_with_it() -> None:
    gate = FairGate(1, max_wait=5, max_waiting=10)
    await gate.enter()
    gone = asyncio.create_task(gate.enter())
    await _queued(gate, 1)
    stays = asyncio.create_task(gate.enter())
    await _queued(gate, 2)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    gate.leave(0.01)
    await stays
    assert gate.busy == 1 and gate.waiting == 0
    gate.leave(0.01)
    assert gate.busy == 0


def test_nonsense_limits_are_refused() -> None:
    for concurrency, wait, waiting in ((0, 1.0, 1), (1, 0.0, 1), (1, 1.0, -1), (1, 0.01, 1)):
        with pytest.raises(ValueError):
            FairGate(concurrency, max_wait=wait, max_waiting=waiting)


class Ticking:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_line_that_stands_a_whole_interval_allows_only_the_short_wait_until_it_clears() -> None:
    clock = Ticking()
    gate = FairGate(1, max_wait=5, max_waiting=100, target=0.05, interval=0.5, clock=clock)
    gate.service_time = 0.04
    await gate.enter()
    for _ in range(3):  # each waits 0.2 s for its turn: over the 50 ms target
        waiting = asyncio.create_task(gate.enter())
        await _queued(gate, 1)
        clock.now += 0.2
        gate.leave(0.04)
        assert await waiting == pytest.approx(0.2)
    assert gate.standing, "the shortest wait of the interval was over the target"

    first = asyncio.create_task(gate.enter())  # expected wait 1 x 0.04 s: within the target
    await _queued(gate, 1)
    with pytest.raises(Overloaded) as refused:  # 2 x 0.04 s = 80 ms: fine for a burst, not now
        await gate.enter()
    assert refused.value.reason == "late"

    clock.now += 0.1  # `first` waits 0.1 s: still over the target
    gate.leave(0.04)
    await first
    gate.leave(0.04)
    clock.now += 0.5
    await gate.enter()  # a turn at once, but the interval just ended held waits over the target
    assert gate.standing, "one lucky request does not end a standing line"
    gate.leave(0.04)
    clock.now += 0.6
    await gate.enter()  # a whole interval in which nobody waited over the target
    assert not gate.standing
    second = asyncio.create_task(gate.enter())
    await _queued(gate, 1)
    third = asyncio.create_task(gate.enter())  # 80 ms expected: allowed again
    await _queued(gate, 2)
    for _ in range(3):
        gate.leave(0.04)
    await asyncio.gather(second, third)
