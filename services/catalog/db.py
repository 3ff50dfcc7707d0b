"""Postgres adapter plumbing: the connection pool and migrations applied at start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import LiteralString, TypeVar

import psycopg
from psycopg.pq import PipelineStatus, TransactionStatus
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from services.common.errors import DomainError, Unavailable

log = logging.getLogger("imagegen.catalog.db")
MIGRATIONS = pathlib.Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same for every catalog that migrates this database.
MIGRATION_LOCK = 0x1A6E6E
T = TypeVar("T")


# How long a call waits for a database connection before it answers UNAVAILABLE: while Postgres is
# away, callers hear so within this, with when to try again, instead of hanging.
CONNECTION_WAIT_SECONDS = 2.0
RETRY_AFTER_SECONDS = 2.0


async def _configure(conn: psycopg.AsyncConnection) -> None:
    # Statements the driver has prepared keep one generic plan. Left to choose, Postgres planned some
    # again at every call (a custom plan looked cheaper for their arrays and unnest()s: the lock of a
    # model's servers, 313 us a time; a completion's update, 436 us): about 0.9 ms of its CPU per generation.
    await conn.execute("SET plan_cache_mode = force_generic_plan")


async def open_pool(database_url: str, min_size: int, max_size: int) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        configure=_configure,
        kwargs={"row_factory": dict_row, "autocommit": True, "connect_timeout": 2},
        open=False,
        name="catalog",
        timeout=CONNECTION_WAIT_SECONDS,
        reconnect_timeout=0,  # keep trying for as long as Postgres is away
    )
    await pool.open(wait=True, timeout=30)
    return pool


def database_unavailable(exc: BaseException) -> DomainError | None:
    """The UNAVAILABLE an exception of the database's own means (it is down, restarting, or no
    connection freed in time); None for anything else, which stays an internal error."""
    if isinstance(exc, PoolTimeout | psycopg.OperationalError):
        return Unavailable(
            "the catalog's database is unavailable; try again shortly",
            retry_after_seconds=RETRY_AFTER_SECONDS,
        )
    return None


@contextlib.asynccontextmanager
async def pipelined_transaction(
    conn: psycopg.AsyncConnection, begin: LiteralString = "BEGIN"
) -> AsyncIterator[psycopg.AsyncConnection]:
    """A transaction whose statements go out as they are made, begun and committed by statements of its
    own in the one pipeline: `conn.transaction()` in a pipeline waits for its BEGIN to be answered first,
    one more round trip. Measured on loopback (`python -m bench.pg_transactions`), a transaction this way
    costs the client 250 to 280 us less CPU and Postgres 120 to 140 us less: one statement, 228 and
    180 us against 479 and 300. Rolled back when its block raises (a statement's error, the caller's,
    or a cancel)."""
    try:
        async with conn.pipeline():
            await conn.execute(begin)
            yield conn
            await conn.execute("COMMIT")
    except BaseException:
        if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                await conn.execute("ROLLBACK")
        raise


def pipelined(conn: psycopg.AsyncConnection) -> AbstractAsyncContextManager:
    """`conn.pipeline()`, or nothing where `conn` is in one already: the end of a pipeline inside
    another waits for every answer so far, a round trip the outer one makes anyway at its own end."""
    if conn.info.pipeline_status != PipelineStatus.OFF:
        return contextlib.nullcontext()
    return conn.pipeline()


async def migrate(database_url: str) -> list[str]:
    """Applies every migration not yet applied, under an advisory lock so concurrent starts are safe."""
    applied_now: list[str] = []
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for path in sorted(MIGRATIONS.glob("*.sql")):
                if path.stem in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
                applied_now.append(path.stem)
                log.info("migration applied", extra={"fields": {"version": path.stem}})
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied_now


async def retry_deadlocks(work: Callable[[], Awaitable[T]], attempts: int = 3) -> T:
    """Runs a transaction again when Postgres broke a deadlock by aborting it.

    Claims lock a job before its generation, while cancels and deletes lock the generation first; the
    rare crossing is cheaper to retry than to serialize every path on one order.
    """
    for attempt in range(attempts):
        try:
            return await work()
        except psycopg.errors.DeadlockDetected:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")
