"""Postgres LISTEN/NOTIFY, as events that waiting RPCs can await.

Every catalog process listens, so a job queued or finished through one catalog wakes the workers and
watchers connected to any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator

import psycopg
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("imagegen.catalog.notifier")

# `imagegen_queue` (payload: a model id) comes from a trigger on `jobs` (migration 0014);
# `imagegen_generation` (payload: its id) from `notify_watchers`, only for watched generations.
CHANNELS = ("imagegen_generation", "imagegen_jobs", "imagegen_webhooks", "imagegen_arweave", "imagegen_queue")


class Notifier:
    def __init__(self, database_url: str):
        self.database_url = database_url
        self._waiters: dict[tuple[str, str], set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task | None = None
        self._listening = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="notifier")
        await asyncio.wait_for(self._listening.wait(), 30)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.database_url, autocommit=True) as conn:
                    for channel in CHANNELS:
                        await conn.execute(f"LISTEN {channel}")
                    self._listening.set()
                    # Whatever happened while the connection was down, waiters re-read and see it.
                    self._wake_everyone()
                    async for note in conn.notifies():
                        self._wake(note.channel, note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listen connection lost", extra={"fields": {"error": str(exc)}})
                await asyncio.sleep(1)

    def _wake(self, channel: str, payload: str) -> None:
        for event in self._waiters.get((channel, payload), ()):
            event.set()

    def _wake_everyone(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    @contextlib.contextmanager
    def subscribe(self, channel: str, payload: str = "") -> Iterator[asyncio.Event]:
        """An event set at each notification; subscribe before reading state so no change is missed."""
        event = asyncio.Event()
        with self.also(event, channel, payload):
            yield event

    @contextlib.asynccontextmanager
    async def watching(self, pool: AsyncConnectionPool, generation_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set at each change of the generation (`notify_watchers`), which is marked watched
        meanwhile: changes of generations nobody watches notify no one. Read the generation inside the
        block: a change that commits after the read notifies, but for one whose notify ran just before
        the mark and committed just after the read, which a periodic re-read must catch."""
        with self.subscribe("imagegen_generation", generation_id) as changed:
            async with _marked_watched(pool, generation_id):
                yield changed

    @contextlib.contextmanager
    def also(self, event: asyncio.Event, channel: str, payload: str = "") -> Iterator[None]:
        """Sets an event already subscribed elsewhere at this channel's notifications too."""
        key = (channel, payload)
        self._waiters[key].add(event)
        try:
            yield
        finally:
            self._waiters[key].discard(event)
            if not self._waiters[key]:
                del self._waiters[key]


async def wait_for(event: asyncio.Event, timeout: float) -> bool:
    """True when the event fired within `timeout`; clears it either way for the next round."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
        return True
    except TimeoutError:
        return False
    finally:
        event.clear()


# A watch older than this is taken for one whose catalog died without removing it.
_STALE_WATCH = "1 day"


@contextlib.asynccontextmanager
async def _marked_watched(pool: AsyncConnectionPool, generation_id: str) -> AsyncIterator[None]:
    watch_id = secrets.token_hex(8)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO generation_watches (generation_id, watch_id) VALUES (%s, %s)",
            (generation_id, watch_id),
        )
    try:
        yield
    finally:
        async with pool.connection() as conn:
            await conn.execute(
                "DELETE FROM generation_watches WHERE generation_id = %s AND watch_id = %s",
                (generation_id, watch_id),
            )


async def notify_watchers(conn: psycopg.AsyncConnection, generation_ids: list[str]) -> None:
    """`imagegen_generation` for each of the generations someone watches, at commit."""
    await conn.execute(
        "SELECT pg_notify('imagegen_generation', id) FROM unnest(%s::text[]) AS id"
        " WHERE EXISTS (SELECT 1 FROM generation_watches w WHERE w.generation_id = id)",
        (generation_ids,),
    )


async def forget_stale_watches(conn: psycopg.AsyncConnection) -> None:
    await conn.execute(
        f"DELETE FROM generation_watches WHERE since < clock_timestamp() - interval '{_STALE_WATCH}'"
    )


async def notify(conn: psycopg.AsyncConnection, channel: str, payload: str = "", when: str = "") -> None:
    """Postgres delivers it at commit, to every catalog listening; with `when` (an SQL condition), only
    if that holds."""
    condition = f" WHERE {when}" if when else ""
    await conn.execute(f"SELECT pg_notify(%s, %s){condition}", (channel, payload))
