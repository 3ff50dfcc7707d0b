"""The webhook outbox: deliveries written in the transaction that finishes a generation, then claimed
under a lease by generators, which POST them and report back.

Every delivery is a row before its generation's end commits, so none is lost to a crash; a retried one
is the same row, so its receiver sees one `webhook-id`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services.common.ids import new_id

from .notifier import notify
from .records import Row

# Progress deliveries come at most this often per generation, and a failed one is not retried: the
# next one tells more.
PROGRESS_INTERVAL_SECONDS = 1.0

if TYPE_CHECKING:
    from .repository import Repository


def wants(row: Row, event: str) -> bool:
    """Whether a generation's webhook is sent for `event`: named in its filter, or `completed` when it
    named none."""
    chosen = row["webhook_events_filter"] or ("completed",)
    return bool(row["callback_url"]) and event in chosen


async def queue_deliveries(
    conn: AsyncConnection, generations: Iterable[Row], event: str = "completed"
) -> None:
    """A delivery of `event` for each of the generations whose webhook wants it, in the caller's
    transaction."""
    webhooks = [row for row in generations if wants(row, event)]
    if not webhooks:
        return
    await conn.execute(
        "INSERT INTO webhook_deliveries (id, project_id, generation_id, url, event)"
        " SELECT *, %s FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])",
        (
            event,
            [new_id("webhook") for _ in webhooks],
            [row["project_id"] for row in webhooks],
            [row["id"] for row in webhooks],
            [row["callback_url"] for row in webhooks],
        ),
    )
    await notify(conn, "imagegen_webhooks")


async def queue_progress_deliveries(conn: AsyncConnection, generation_ids: list[str]) -> None:
    """A `progress` delivery for each running generation that asked for them, unless it has one waiting
    or had one within the last PROGRESS_INTERVAL_SECONDS."""
    cur = await conn.execute(
        "SELECT g.id, g.project_id, g.callback_url, g.webhook_events_filter FROM generations g"
        " WHERE g.id = ANY(%s) AND 'progress' = ANY(g.webhook_events_filter) AND g.callback_url <> ''"
        " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.generation_id = g.id"
        "   AND d.event = 'progress' AND (d.state = 'pending' OR d.created_at > clock_timestamp() - %s))",
        (generation_ids, dt.timedelta(seconds=PROGRESS_INTERVAL_SECONDS)),
    )
    await queue_deliveries(conn, await cur.fetchall(), "progress")


class WebhookOutbox:
    def __init__(self, pool: AsyncConnectionPool, repository: Repository):
        self.pool = pool
        self.repo = repository

    async def claim(self, max_deliveries: int, lease_seconds: float) -> list[Row]:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE webhook_deliveries d SET attempts = attempts + 1,"
                " next_attempt_at = clock_timestamp() + %s"
                " FROM projects p WHERE p.id = d.project_id AND d.id IN (SELECT id FROM webhook_deliveries"
                "   WHERE state = 'pending' AND next_attempt_at <= clock_timestamp()"
                "   ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)"
                " RETURNING d.id, d.url, d.attempts, d.event, d.generation_id, d.project_id,"
                " p.webhook_secret, p.permanent_urls",
                (dt.timedelta(seconds=lease_seconds), max_deliveries),
            )
            deliveries = await cur.fetchall()
            for delivery in deliveries:
                delivery["webhook_secret"] = self.repo.sealer.open(delivery["webhook_secret"] or "")
                delivery["generation"] = await self.repo.generation_by_id(conn, delivery["generation_id"])
            return deliveries

    async def record(
        self, delivery_id: str, delivered: bool, status_code: int, error: str, retry_in: float | None
    ) -> None:
        """`retry_in` None with `delivered` false gives up on the delivery."""
        if delivered:
            state, next_at = "delivered", dt.timedelta(0)
        elif retry_in is None:
            state, next_at = "failed", dt.timedelta(0)
        else:
            state, next_at = "pending", dt.timedelta(seconds=retry_in)
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE webhook_deliveries SET state = %s, last_status = %s, last_error = %s,"
                " next_attempt_at = clock_timestamp() + %s,"
                " delivered_at = CASE WHEN %s THEN clock_timestamp() END"
                " WHERE id = %s",
                (state, status_code, error, next_at, delivered, delivery_id),
            )

    async def attempts(self, delivery_id: str) -> tuple[int, str]:
        """Attempts so far, and the delivery's event."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT attempts, event FROM webhook_deliveries WHERE id = %s", (delivery_id,)
            )
            row = await cur.fetchone()
            return (row["attempts"], row["event"]) if row else (0, "completed")
