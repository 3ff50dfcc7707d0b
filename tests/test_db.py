"""The catalog's Postgres plumbing (services/catalog/db.py) on a real Postgres."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from services.catalog.db import open_pool, pipelined, pipelined_transaction


async def _table(conn: psycopg.AsyncConnection) -> None:
    await conn.execute("CREATE TABLE kept (id int PRIMARY KEY)")


async def _kept(conn: psycopg.AsyncConnection) -> list[int]:
    return [row[0] for row in await (await conn.execute("SELECT id FROM kept ORDER BY id")).fetchall()]


def test_a_pipelined_transaction_keeps_all_its_statements_or_none(database_url):
    async def scenario() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await _table(conn)
            async with pipelined_transaction(conn):
                inserted = await conn.execute("INSERT INTO kept VALUES (1), (2) RETURNING id")
                async with pipelined(conn):  # inside the transaction's pipeline: no pipeline of its own
                    await conn.execute("INSERT INTO kept VALUES (3)")
            # The answer is there once the transaction is over.
            assert [row[0] for row in await inserted.fetchall()] == [1, 2]

            # A statement that fails takes the statements before and after it with it.
            with pytest.raises(psycopg.errors.UniqueViolation):
                async with pipelined_transaction(conn):
                    await conn.execute("INSERT INTO kept VALUES (4)")
                    await conn.execute("INSERT INTO kept VALUES (1)")
                    await conn.execute("INSERT INTO kept VALUES (5)")
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE

            # So does the caller's own error, raised between statements.
            with pytest.raises(LookupError):
                async with pipelined_transaction(conn):
                    await conn.execute("INSERT INTO kept VALUES (6)")
                    raise LookupError("refused")
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE

            # And a cancel while the transaction is open (a caller who went away).
            async def abandoned() -> None:
                async with pipelined_transaction(conn):
                    await conn.execute("INSERT INTO kept VALUES (7)")
                    await asyncio.sleep(30)

            task = asyncio.create_task(abandoned())
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert await _kept(conn) == [1, 2, 3]

    asyncio.run(scenario())


def test_a_pipelined_transaction_can_read_one_snapshot(database_url):
    async def scenario() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await _table(conn)
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as other:
                async with pipelined_transaction(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"):
                    before = await _kept(conn)
                    await other.execute("INSERT INTO kept VALUES (1)")
                    assert await _kept(conn) == before == []
                with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                    async with pipelined_transaction(conn, "BEGIN READ ONLY"):
                        await conn.execute("INSERT INTO kept VALUES (2)")
            assert await _kept(conn) == [1]

    asyncio.run(scenario())


def test_the_catalog_s_connections_keep_one_plan_per_prepared_statement(database_url):
    async def scenario() -> str:
        pool = await open_pool(database_url, 1, 2)
        try:
            async with pool.connection() as conn:
                return (await (await conn.execute("SHOW plan_cache_mode")).fetchone())["plan_cache_mode"]
        finally:
            await pool.close()

    assert asyncio.run(scenario()) == "force_generic_plan"
