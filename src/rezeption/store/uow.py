"""The unit of work: opens a read or write transaction and rolls back unless the use case commits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from rezeption.store.db import Database
from rezeption.store.repositories import SqlBookingTx


class SqlUnitOfWork:
    """`booking.ports.UnitOfWork` over a `Database`."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[SqlBookingTx]:
        """Reads only: on SQLite a read transaction (one snapshot, rolled back at the end); on
        PostgreSQL statements without BEGIN and ROLLBACK (`Database.read`)."""
        async with self.database.read() as session:
            yield SqlBookingTx(session)

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[SqlBookingTx]:
        """A write transaction (the single writer on SQLite); rolls back unless committed."""
        async with self.database.write() as session:
            try:
                yield SqlBookingTx(session)
            finally:
                if session.in_transaction():
                    await session.rollback()

    @asynccontextmanager
    async def claiming(self) -> AsyncIterator[SqlBookingTx]:
        """Statements that each commit on their own on PostgreSQL (no BEGIN and COMMIT round trips);
        a write transaction on SQLite, as `writing()`."""
        if self.database.autocommit is None:
            async with self.writing() as tx:
                yield tx
            return
        async with self.database.statements() as session:
            yield SqlBookingTx(session)
