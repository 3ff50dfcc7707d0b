"""SQL for the Arweave outbox: images waiting to be posted, posted ones waiting for confirmations.

A row is written in the transaction that records its generation, so an acknowledged image is never
left out; generators' archivers lease due rows, post them and report back (see generator/archiver.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

Row = dict[str, Any]

_ARCHIVE_COLUMNS = (
    "storage_key, content_type, state, transaction::text AS transaction, url, last_error, attempts"
)
_FIELDS = ("state", "transaction", "url", "last_error", "attempts")
# The archive's fields as a read of `output_images o` joins them (`a`, on storage key), prefixed.
IMAGE_ARCHIVE_COLUMNS = ", ".join(
    f"a.{field}{'::text' if field == 'transaction' else ''} AS arweave_{field}" for field in _FIELDS
)


def take_archive(image: Row) -> None:
    """Moves an image row's prefixed archive fields into `image["arweave"]` (None when not archived)."""
    fields = {field: image.pop(f"arweave_{field}") for field in _FIELDS}
    image["arweave"] = fields if fields["state"] else None


async def queue_archives(conn: AsyncConnection, images: list[Row]) -> None:
    """Queues the images for Arweave in the caller's transaction, and notes each one's archive on it.

    Bytes archived before keep their archive; an abandoned one (its image was deleted) is taken up again.
    """
    cur = await conn.execute(
        "INSERT INTO arweave_archives (storage_key, content_type)"
        " SELECT DISTINCT ON (k) k, t FROM unnest(%s::text[], %s::text[]) AS i(k, t)"
        " ON CONFLICT (storage_key) DO UPDATE SET"
        "   state = CASE WHEN arweave_archives.state = 'abandoned' THEN 'pending'"
        "     ELSE arweave_archives.state END,"
        "   next_attempt_at = CASE WHEN arweave_archives.state = 'abandoned' THEN clock_timestamp()"
        "     ELSE arweave_archives.next_attempt_at END"
        f" RETURNING {_ARCHIVE_COLUMNS}",
        ([image["storage_key"] for image in images], [image["content_type"] for image in images]),
    )
    archives = {row["storage_key"]: row for row in await cur.fetchall()}
    for image in images:
        image["arweave"] = archives[image["storage_key"]]
    # Delivered at commit; archivers waiting in a claim wake at once (see notifier.py).
    await conn.execute("SELECT pg_notify('imagegen_arweave', '')")


class ArweaveArchives:
    def __init__(self, pool: AsyncConnectionPool):
        self.pool = pool

    async def claim(self, max_archives: int, lease_seconds: float) -> list[Row]:
        """Leases due archives. A pending one counts an attempt; one that no image uses any more is
        answered with `used` false, and the caller abandons it."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE arweave_archives a SET attempts = attempts + (state = 'pending')::int,"
                " next_attempt_at = clock_timestamp() + %s"
                " WHERE storage_key IN (SELECT storage_key FROM arweave_archives"
                "   WHERE state IN ('pending', 'posted') AND next_attempt_at <= clock_timestamp()"
                "   ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)"
                f" RETURNING {_ARCHIVE_COLUMNS},"
                " EXISTS (SELECT 1 FROM output_images o WHERE o.storage_key = a.storage_key) AS used",
                (dt.timedelta(seconds=lease_seconds), max_archives),
            )
            return await cur.fetchall()

    async def record(
        self, storage_key: str, state: str, transaction: str | None, url: str, error: str, retry_in: float
    ) -> bool:
        """Answers False when there is no such archive."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE arweave_archives SET state = %(state)s, transaction = %(transaction)s::jsonb,"
                " url = %(url)s, last_error = %(error)s,"
                " next_attempt_at = clock_timestamp() + %(retry_in)s,"
                " posted_at = CASE WHEN %(state)s = 'pending' THEN NULL"
                "   ELSE coalesce(posted_at, clock_timestamp()) END,"
                " confirmed_at = CASE WHEN %(state)s = 'confirmed' THEN clock_timestamp() END"
                " WHERE storage_key = %(key)s",
                {
                    "state": state,
                    "transaction": transaction,
                    "url": url,
                    "error": error,
                    "retry_in": dt.timedelta(seconds=retry_in),
                    "key": storage_key,
                },
            )
            return cur.rowcount == 1
