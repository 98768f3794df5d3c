"""The owner's lease on an idempotency key (`IdempotencyStore.holding`): renewed while the owner
works, so a duplicate never takes over a live owner's key; no longer renewed once it is done, so a
retry takes over the key of an owner that is gone. Both backends, real waits of the renewal."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from rezeption.domain.clock import FixedClock
from rezeption.store.db import Database
from rezeption.store.idempotency import LEASE, RENEW_EVERY, IdempotencyStore

SCOPE = "book_appointment"


async def _renewal_passes() -> None:
    """Long enough for the renewal that comes every RENEW_EVERY to have run once more."""
    await asyncio.sleep(RENEW_EVERY * 1.6)


async def test_a_live_owner_keeps_its_key_past_the_lease_and_a_gone_one_loses_it(
    database: Database, clock: FixedClock, salon_id: int
) -> None:
    owner, duplicate = IdempotencyStore(database, clock), IdempotencyStore(database, clock)
    assert (await owner.claim("slow", scope=SCOPE, tenant_id=salon_id)).owned
    assert (await owner.claim("quick", scope=SCOPE, tenant_id=salon_id)).owned
    async with owner.holding("slow"):
        async with owner.holding("quick"):
            clock.advance(LEASE * 3)  # both claims' own leases are long over
            await _renewal_passes()
            clock.advance(timedelta(seconds=1))
            assert not (await duplicate.claim("slow", scope=SCOPE, tenant_id=salon_id)).owned
            assert not (await duplicate.claim("quick", scope=SCOPE, tenant_id=salon_id)).owned
        clock.advance(LEASE * 3)  # "quick" is done (its owner died before storing the reply)
        await _renewal_passes()
        clock.advance(timedelta(seconds=1))
        assert not (await duplicate.claim("slow", scope=SCOPE, tenant_id=salon_id)).owned
        assert (await duplicate.claim("quick", scope=SCOPE, tenant_id=salon_id)).owned
    clock.advance(LEASE * 3)
    await _renewal_passes()
    assert (await duplicate.claim("slow", scope=SCOPE, tenant_id=salon_id)).owned
    await owner.close()
    await duplicate.close()


async def test_a_key_held_twice_in_one_process_is_renewed_until_both_are_done(
    database: Database, clock: FixedClock, salon_id: int
) -> None:
    """A retry in the same process took the key over while the first owner still worked: the
    first one finishing must not end the lease of the second."""
    owner, duplicate = IdempotencyStore(database, clock), IdempotencyStore(database, clock)
    assert (await owner.claim("twice", scope=SCOPE, tenant_id=salon_id)).owned
    async with owner.holding("twice"):
        async with owner.holding("twice"):
            await asyncio.sleep(0)
        clock.advance(LEASE * 3)
        await _renewal_passes()
        clock.advance(timedelta(seconds=1))
        assert not (await duplicate.claim("twice", scope=SCOPE, tenant_id=salon_id)).owned
    await owner.close()
    await duplicate.close()
