"""The free starts of one stylist's working interval, counted out by runs (`schedule._free_in`), are
exactly the starts a step-by-step walk over the grid finds: random hours, bookings, breaks,
buffers, grids and windows, including the nights the clocks change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from rezeption.domain.model import Interval, Service, Slot
from rezeption.domain.schedule import _free_in, _grid_ceiling, merge

BERLIN = ZoneInfo("Europe/Berlin")
DAYS = [
    datetime(2027, 3, 9, tzinfo=UTC),
    datetime(2027, 3, 28, tzinfo=UTC),
    datetime(2027, 10, 31, tzinfo=UTC),
]
"""A plain day and the two nights the clocks change in Berlin."""


def step_by_step(
    service: Service, staff_id: int, work: Interval, blocked: list[Interval], window: Interval,
    grid: timedelta, zone: ZoneInfo,
) -> Iterator[Slot]:  # fmt: skip
    """The walk as it was written before the runs: one grid start at a time."""
    before, duration = service.buffer_before, service.duration
    tail = duration + service.buffer_after
    ceil = _grid_ceiling(work, grid, zone)
    start = ceil(max(work.start + before, window.start))
    i, n = 0, len(blocked)
    while start < window.end:
        block_start, block_end = start - before, start + tail
        if block_end > work.end:
            return
        while i < n and blocked[i].end <= block_start:
            i += 1
        if i < n and blocked[i].start < block_end:
            start = ceil(max(blocked[i].end + before, start + grid))
            continue
        yield Slot(start, start + duration, staff_id)
        start += grid


minutes = st.integers(min_value=0, max_value=24 * 60)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Service, Interval, list[Interval], Interval, timedelta]:
    day = draw(st.sampled_from(DAYS))

    def at(m: int) -> datetime:
        return day + timedelta(minutes=m)

    a, b = sorted(draw(st.lists(minutes, min_size=2, max_size=2, unique=True)))
    work = Interval(at(a), at(b))
    spans = []
    for s, length in draw(st.lists(st.tuples(minutes, st.integers(1, 180)), max_size=8)):
        spans.append(Interval(at(s), at(s + length)))
    w1, w2 = sorted(draw(st.lists(st.integers(-60, 25 * 60), min_size=2, max_size=2, unique=True)))
    service = Service(
        1, "s", "Schnitt", (),
        timedelta(minutes=draw(st.integers(5, 240))),
        timedelta(minutes=draw(st.sampled_from([0, 5, 10, 15]))),
        timedelta(minutes=draw(st.sampled_from([0, 5, 10, 30]))),
    )  # fmt: skip
    grid = timedelta(minutes=draw(st.sampled_from([5, 10, 15, 20, 30, 60])))
    return service, work, merge(spans), Interval(at(w1), at(w2)), grid


@settings(max_examples=400, deadline=None)
@given(cases())
def test_runs_find_exactly_the_starts_of_the_step_by_step_walk(
    case: tuple[Service, Interval, list[Interval], Interval, timedelta],
) -> None:
    service, work, blocked, window, grid = case
    expected = list(step_by_step(service, 7, work, blocked, window, grid, BERLIN))
    assert _free_in(service, 7, work, blocked, window, grid, BERLIN) == expected
