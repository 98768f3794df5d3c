"""The load generator's own lateness is measured, and its collector waits while it runs."""

from __future__ import annotations

import asyncio
import gc
import time

from rezeption.ops.loadtest import LAG_TICK, LagWatch, LoadResult, collector_paused


async def test_a_blocked_generator_loop_shows_as_lag() -> None:
    with LagWatch() as watch:
        await asyncio.sleep(LAG_TICK * 3)
        time.sleep(0.2)  # noqa: ASYNC251 - on purpose: the loop stops, as in a full collection
        await asyncio.sleep(LAG_TICK * 3)
    assert max(watch.samples) >= 150, watch.samples
    figures = LoadResult([], 1.0, watch.samples).lag_figures()
    assert figures["generator_lag_max_ms"] >= 150


def test_no_samples_report_no_lag() -> None:
    assert LoadResult([], 1.0).lag_figures() == {"generator_lag_p99_ms": 0.0, "generator_lag_max_ms": 0.0}


def test_the_collector_waits_during_the_run_and_runs_again_after() -> None:
    assert gc.isenabled()
    try:
        with collector_paused():
            assert not gc.isenabled()
            raise RuntimeError("the run failed")
    except RuntimeError:
        pass
    assert gc.isenabled(), "even a failed run gives the collector back"
