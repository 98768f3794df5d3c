"""What the checker is told each call holds, when a cancel or reschedule caller changes what an
earlier call of theirs booked: the change is counted against the earlier call (a move keeps the
appointment with the call that made it), the changing call holds nothing itself, and an unanswered
cancel allows either. A generator that got this wrong would let the checker pass a server that
cancelled the wrong caller's appointment, or fail one that did right."""

from __future__ import annotations

from rezeption.ops.loadtest import CallResult, LoadResult


def result(calls: list[CallResult], earlier: list[CallResult]) -> LoadResult:
    return LoadResult(calls, 1.0, [], earlier)


def test_a_change_counts_against_the_call_that_booked() -> None:
    earlier = [
        CallResult("e-1", "book", booked=True),  # cancelled later
        CallResult("e-2", "book", booked=True),  # moved later
        CallResult("e-3", "book", booked=True),  # the cancel's answer never came
        CallResult("e-4", "book", booked=False),  # booked nothing: nothing to cancel
        CallResult("e-5", "book", uncertain=True),  # its own booking went unanswered, then cancelled
        CallResult("e-7", "book", uncertain=True),  # unanswered too, then moved: it exists
        CallResult("e-8", "book", uncertain=True),  # unanswered, and the caller found nothing
        CallResult("e-6", "book", booked=True),  # the cancel was refused (too late, say)
    ]
    calls = [
        CallResult("c-1", "cancel", cancelled=True, earlier_call="e-1"),
        CallResult("c-2", "reschedule", earlier_call="e-2"),
        CallResult("c-3", "cancel", uncertain=True, earlier_call="e-3"),
        CallResult("c-4", "cancel", earlier_call="e-4"),
        CallResult("c-5", "cancel", cancelled=True, earlier_call="e-5"),
        CallResult("c-6", "cancel", refusals=["too_late_to_change"], earlier_call="e-6"),
        CallResult("c-7", "reschedule", moved=True, earlier_call="e-7"),
        CallResult("c-8", "cancel", refusals=["not_found"], earlier_call="e-8"),
        CallResult("b-7", "book", booked=True),
        CallResult("b-8", "book", booked=True, cancelled=False, uncertain=True),
    ]
    assert result(calls, earlier).expected_active() == {
        "e-1": 0, "e-2": 1, "e-3": None, "e-4": 0, "e-5": 0, "e-6": 1, "e-7": 1, "e-8": None,
        "c-1": 0, "c-2": 0, "c-3": 0, "c-4": 0, "c-5": 0, "c-6": 0, "c-7": 0, "c-8": 0,
        "b-7": 1, "b-8": None,
    }  # fmt: skip


def test_the_earlier_calls_stay_out_of_the_runs_figures() -> None:
    earlier = [CallResult("e-1", "book", booked=True, booking_attempts=1, failures=["timeout"])]
    calls = [CallResult("b-1", "book", booked=True, booking_attempts=1),
             CallResult("c-1", "cancel", cancelled=True, earlier_call="e-1")]  # fmt: skip
    run = result(calls, earlier)
    assert run.success_rate == 1.0 and run.failure_reasons() == {}
    assert run.earlier_figures() == {"earlier_calls": 1, "earlier_booked": 1, "earlier_failures": 1}
    assert run.changes() == {"cancelled": 1, "moved": 0, "of": 1}


def test_the_time_each_caller_heard_is_the_time_checked() -> None:
    earlier = [
        CallResult("e-1", "book", booked=True, heard_at="2026-12-08T10:00"),  # moved to 11:30
        CallResult("e-2", "book", booked=True, heard_at="2026-12-08T14:00"),  # the move was refused
        CallResult("e-3", "book", booked=True, heard_at="2026-12-09T10:00"),  # the move went unanswered
        CallResult("e-4", "book", booked=True, heard_at="2026-12-09T15:00"),  # cancelled
    ]
    calls = [
        CallResult("c-1", "reschedule", moved=True, heard_at="2026-12-08T11:30", earlier_call="e-1"),
        CallResult("c-2", "reschedule", refusals=["slot_taken"], earlier_call="e-2"),
        CallResult("c-3", "reschedule", move_unanswered=True, failures=["timeout"], earlier_call="e-3"),
        CallResult("c-4", "cancel", cancelled=True, earlier_call="e-4"),
        CallResult("b-5", "book", booked=True, heard_at="2026-12-10T16:15"),
        CallResult("b-6", "book", uncertain=True),
    ]
    assert result(calls, earlier).expected_starts() == {
        "e-1": "2026-12-08T11:30", "e-2": "2026-12-08T14:00", "b-5": "2026-12-10T16:15",
    }  # fmt: skip
