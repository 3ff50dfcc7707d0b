"""`python -m bench.pg_transactions`: what one catalog transaction costs, by how it is sent.

On a durable embedded Postgres, over loopback, with the catalog's driver (psycopg, async, uvloop): the
client's CPU and the Postgres backend's per transaction, for one statement on its own (autocommit), and
for transactions of 1 and 8 INSERTs sent in one round trip or four, begun and committed by psycopg's
`conn.transaction()` in a pipeline or by the catalog's `pipelined_transaction`. The shapes alternate in
rounds and each figure is the median of its rounds: this machine's speed drifts within a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pathlib
import statistics
import sys
import tempfile
import time

import psutil
import psycopg

from services.catalog.db import pipelined_transaction
from tools.embedded_pg import EmbeddedPostgres

INSERT = "INSERT INTO bench_rows (a, b) VALUES (%s, %s) RETURNING id"


def _psycopg_transaction(conn):
    @contextlib.asynccontextmanager
    async def block():
        async with conn.pipeline(), conn.transaction():
            yield

    return block()


async def _statements(conn, count: int, round_trips: int) -> None:
    per_trip = count // round_trips
    for i in range(count):
        cur = await conn.execute(INSERT, ("x", i))
        if (i + 1) % per_trip == 0 and i < count - 1:
            await cur.fetchone()  # the answer the next statement needs: a round trip


def _shapes(conn):
    async def autocommit():
        await conn.execute(INSERT, ("x", 0))

    def transaction(begin_commit, count: int, round_trips: int):
        async def run():
            async with begin_commit(conn):
                await _statements(conn, count, round_trips)

        return run

    shapes = {"1 statement, autocommit": autocommit}
    for count, round_trips in ((1, 1), (8, 1), (8, 4)):
        shape = f"{count} statement(s), {round_trips} round trip(s)"
        shapes[f"conn.transaction(): {shape}"] = transaction(_psycopg_transaction, count, round_trips)
        shapes[f"pipelined_transaction: {shape}"] = transaction(pipelined_transaction, count, round_trips)
    return shapes


async def _measure(database_url: str, calls: int, rounds: int) -> dict[str, tuple[float, float]]:
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    async with conn:
        await conn.execute("CREATE TABLE bench_rows (id bigserial PRIMARY KEY, a text, b int)")
        backend = psutil.Process((await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0])
        shapes = _shapes(conn)
        by_round: dict[str, list[tuple[float, float]]] = {name: [] for name in shapes}
        for _ in range(rounds):
            for name, run in shapes.items():
                for _ in range(calls // 10):
                    await run()  # warm: prepared statements, caches
                server_before, client_before = sum(backend.cpu_times()[:2]), time.process_time()
                for _ in range(calls):
                    await run()
                server = sum(backend.cpu_times()[:2]) - server_before
                client = time.process_time() - client_before
                by_round[name].append((client * 1e6 / calls, server * 1e6 / calls))
            await conn.execute("TRUNCATE bench_rows")
    return {
        name: (statistics.median(c for c, _ in rounds_), statistics.median(s for _, s in rounds_))
        for name, rounds_ in by_round.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=500, help="transactions per shape and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="imagegen-pg-bench-") as tmp:
        postgres = EmbeddedPostgres(pathlib.Path(tmp) / "postgres", durable=True).start()
        try:
            runner = asyncio.run
            with contextlib.suppress(ImportError):
                import uvloop

                runner = uvloop.run
            figures = runner(_measure(postgres.create_database("bench"), args.calls, args.rounds))
        finally:
            postgres.stop()
    print(f"per transaction, median of {args.rounds} rounds of {args.calls}: client CPU us, Postgres CPU us")
    for name, (client, server) in figures.items():
        print(f"  {name:58} {client:7.0f} {server:7.0f}")


if __name__ == "__main__":
    sys.exit(main())
