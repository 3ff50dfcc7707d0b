"""SQL for the catalog's records. Every statement is scoped by project; callers pass plain values."""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from services.common import metrics
from services.common.ids import is_id, new_id
from services.common.vocabulary import MAX_OUTPUTS_PER_IMAGE, TERMINAL_STATUSES

from .arweave_store import IMAGE_ARCHIVE_COLUMNS, queue_archives, take_archive
from .db import pipelined, pipelined_transaction
from .notifier import notify, notify_watchers
from .records import GENERATION_COLUMNS, SPEC_COLUMNS, Row, qualified_columns
from .sealing import Sealer
from .webhook_outbox import queue_deliveries


@dataclass(frozen=True)
class SweepPolicy:
    # How long a sweep's claim on a blob holds off writers naming it, if its sweeper never reports
    # back: far longer than one batch of deletes takes.
    claim_seconds: float = 300.0
    # How long a deleted blob is remembered: longer than a job can stall between storing bytes and
    # recording them (store retries, the completion's timeout, a lease).
    memory_seconds: float = 3600.0


@dataclass(frozen=True)
class Outcome:
    """How a generation ended: `status` is one of TERMINAL_STATUSES; `images` only for completed."""

    generation_id: str
    status: str
    server_id: str | None
    reason: str
    images: list[Row] = field(default_factory=list)
    # Queue the images for Arweave, if the project publishes permanent URLs.
    archive: bool = False
    # The images were stored again after a sweep refused them (`_REFUSED`).
    stored_again: bool = False


# A job's state as reads show it. Its queue position counts the jobs of its model that the queue
# (queue.py's claim order: score, then age) starts before it.
_JOB_STATE = (
    "SELECT j.generation_id, j.progress, j.step, j.steps,"
    " CASE WHEN j.state = 'queued' THEN (SELECT count(*) FROM jobs q"
    "   WHERE q.state = 'queued' AND q.model_id = j.model_id"
    "     AND (q.score > j.score OR (q.score = j.score"
    "       AND (q.enqueued_at, q.generation_id) < (j.enqueued_at, j.generation_id))))"
    " END AS queue_position"
    " FROM jobs j WHERE j.generation_id = ANY(%s)"
)
_IMAGE_COLUMNS = (
    "id, generation_id, project_id, idx, storage_key, sha256, content_type, size_bytes, width, height,"
    " manifest_label, permanent_key, variants"
)

BUILTIN_MODELS = [{"name": "procedural", "provider": "procedural", "url": "builtin://procedural"}]


# An unused blob (`u`) a sweep has claimed and not yet reported on: its bytes may be being deleted.
_SWEPT_NOW = "u.swept_until > clock_timestamp()"
# Whether a writer naming the blob is refused: while a sweep holds it, and once it was deleted unless
# the writer stored the bytes again since a refusal (`{stored_again}`): bytes stored before the delete
# are gone.
_REFUSED = f"({_SWEPT_NOW} OR (u.swept_at IS NOT NULL AND NOT {{stored_again}}))"
# Whether any row still uses the blob `{key}` names: an output image, a generation's input, or an
# upload (expired uploads are deleted before unused blobs are claimed).
_BLOB_USED = (
    "(EXISTS (SELECT 1 FROM output_images o WHERE o.storage_key = {key})"
    " OR EXISTS (SELECT 1 FROM uploads up WHERE up.storage_key = {key})"
    " OR EXISTS (SELECT 1 FROM generations g WHERE g.inputs IS NOT NULL"
    "  AND g.inputs @> jsonb_build_array(jsonb_build_object('storage_key', {key}::text))))"
)
# An upload's image, as its columns and as InputImageRecord's fields (the same names).
UPLOAD_IMAGE_COLUMNS = ("storage_key", "sha256", "content_type", "size_bytes", "width", "height")
_UPLOAD_COLUMNS = ", ".join(("id", "project_id", *UPLOAD_IMAGE_COLUMNS, "created_at", "expires_at"))


def permanent_key(storage_key: str) -> str:
    """A new image's permanent-URL key: 256 random bits, with its type's extension (a storage key's
    shape, so the route's checks and the access log's masking hold for both)."""
    return f"{secrets.token_hex(32)}.{storage_key.rpartition('.')[2]}"


@contextlib.asynccontextmanager
async def _one_snapshot(conn: AsyncConnection):
    """Reads that see one moment: a generation row and its job's state are read by two statements, and
    a claim committing between them showed a `pending` generation whose job was already running (no
    queue position). Pipelined, so the transaction adds one round trip (its commit), not three."""
    async with pipelined_transaction(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"):
        yield


class Repository:
    def __init__(self, pool: AsyncConnectionPool, sealer: Sealer | None = None):
        self.pool = pool
        # Seals the secrets tenants give (services/catalog/sealing.py); tests of other things omit it.
        self.sealer = sealer or Sealer([secrets.token_hex(32)])

    # -- projects and keys -------------------------------------------------------------------------

    async def create_project_with_key(self, name: str, key_hash: bytes, key_name: str, admin: bool) -> str:
        async with self.pool.connection() as conn, conn.transaction():
            project_id = await self.create_project(conn, name)
            await self.create_key(conn, project_id, key_hash, key_name, admin)
            return project_id

    async def create_project(self, conn: AsyncConnection, name: str) -> str:
        project_id = new_id("project")
        await conn.execute("INSERT INTO projects (id, name) VALUES (%s, %s)", (project_id, name))
        for model in BUILTIN_MODELS:
            model_id = new_id("model")
            await conn.execute(
                "INSERT INTO models (id, project_id, name, provider) VALUES (%s, %s, %s, %s)",
                (model_id, project_id, model["name"], model["provider"]),
            )
            await conn.execute(
                "INSERT INTO model_servers (id, model_id, position, url, max_concurrency)"
                " VALUES (%s, %s, 0, %s, 64)",
                (new_id("server"), model_id, model["url"]),
            )
        return project_id

    async def create_key(
        self, conn: AsyncConnection, project_id: str, key_hash: bytes, name: str, admin: bool
    ) -> str:
        key_id = new_id("key")
        await conn.execute(
            "INSERT INTO api_keys (id, project_id, name, key_hash, admin) VALUES (%s, %s, %s, %s, %s)",
            (key_id, project_id, name, key_hash, admin),
        )
        return key_id

    async def find_key(self, key_hash: bytes) -> Row | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, project_id, admin, kind, end_user, revoked_at FROM api_keys WHERE key_hash = %s",
                (key_hash,),
            )
            return await cur.fetchone()

    # -- models ------------------------------------------------------------------------------------

    async def list_models(self, project_id: str, name: str | None = None) -> list[Row]:
        async with self.pool.connection() as conn:
            return await self._models(conn, project_id, name)

    async def _models(self, conn: AsyncConnection, project_id: str, name: str | None) -> list[Row]:
        cur = await conn.execute(
            "SELECT m.id, m.project_id, m.name, m.provider, m.upstream_model, m.created_at,"
            " m.daily_limit, m.monthly_limit, m.price_per_image, m.content_credentials,"
            " m.native_policy, m.max_outputs_per_image, m.comfyui,"
            " coalesce(json_agg(json_build_object('id', s.id, 'url', s.url,"
            "   'max_concurrency', s.max_concurrency, 'benched', s.benched_until IS NOT NULL,"
            "   'last_error', s.last_error,"
            "   'outstanding', (SELECT count(*) FROM jobs j"
            "     WHERE j.state = 'running' AND j.server_id = s.id))"
            "   ORDER BY s.position) FILTER (WHERE s.id IS NOT NULL), '[]') AS servers"
            " FROM models m LEFT JOIN model_servers s ON s.model_id = m.id"
            " WHERE m.project_id = %s AND (%s::text IS NULL OR m.name = %s OR m.id = %s)"
            " GROUP BY m.id ORDER BY m.name",
            (project_id, name, name, name),
        )
        return await cur.fetchall()

    async def create_model(self, project_id: str, model: Row) -> Row | None:
        """None when the project already has a model of that name."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO models (id, project_id, name, provider, upstream_model, daily_limit,"
                " monthly_limit, price_per_image, content_credentials, native_policy, max_outputs_per_image,"
                " comfyui)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (project_id, name) DO NOTHING RETURNING id",
                (
                    new_id("model"),
                    project_id,
                    model["name"],
                    model["provider"],
                    model["upstream_model"],
                    model.get("daily_limit"),
                    model.get("monthly_limit"),
                    model.get("price_per_image", 0),
                    model.get("content_credentials", True),
                    Jsonb(model["native_policy"]) if model.get("native_policy") is not None else None,
                    model.get("max_outputs_per_image") or MAX_OUTPUTS_PER_IMAGE,
                    Jsonb(model["comfyui"]) if model.get("comfyui") is not None else None,
                ),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            await self._insert_servers(conn, row["id"], model["servers"])
            return (await self._models(conn, project_id, model["name"]))[0]

    async def replace_servers(self, project_id: str, name: str, servers: list[Row]) -> Row | None:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT id FROM models WHERE project_id = %s AND (name = %s OR id = %s) FOR UPDATE",
                (project_id, name, name),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            # Running jobs keep their server id and finish there; new claims see only the new list.
            await conn.execute("DELETE FROM model_servers WHERE model_id = %s", (row["id"],))
            await self._insert_servers(conn, row["id"], servers)
            await notify(conn, "imagegen_jobs")
            return (await self._models(conn, project_id, name))[0]

    async def _insert_servers(self, conn: AsyncConnection, model_id: str, servers: list[Row]) -> None:
        async with conn.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO model_servers"
                " (id, model_id, position, url, api_key, max_concurrency, private_ok)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        new_id("server"),
                        model_id,
                        position,
                        s["url"],
                        self.sealer.seal(s["api_key"]),
                        s["max_concurrency"],
                        s.get("private_ok", False),
                    )
                    for position, s in enumerate(servers)
                ],
            )

    async def delete_model(self, project_id: str, name: str, reason: str) -> bool:
        """Removes the model; its unfinished generations fail with `reason`."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "DELETE FROM models WHERE project_id = %s AND (name = %s OR id = %s) RETURNING id",
                (project_id, name, name),
            )
            row = await cur.fetchone()
            if row is None:
                return False
            cur = await conn.execute(
                "SELECT generation_id FROM jobs WHERE model_id = %s FOR UPDATE", (row["id"],)
            )
            for job in await cur.fetchall():
                await self.finish(conn, job["generation_id"], "failed", None, reason, [])
            return True

    async def webhook_secret(self, project_id: str, candidate: str) -> str:
        """The project's secret; `candidate` becomes it the first time it is asked for (sealed)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE projects SET webhook_secret = coalesce(webhook_secret, %s) WHERE id = %s"
                " RETURNING webhook_secret",
                (self.sealer.seal(candidate), project_id),
            )
            row = await cur.fetchone()
            return self.sealer.open(row["webhook_secret"]) if row else ""

    async def reseal_secrets(self) -> int:
        """Seals again, under the first key, every secret that is plain or under an older one; answers
        how many. Run at start, so rotating keys takes a restart."""
        resealed = 0
        async with self.pool.connection() as conn:
            for table, column in (("model_servers", "api_key"), ("projects", "webhook_secret")):
                cur = await conn.execute(f"SELECT id, {column} AS value FROM {table} WHERE {column} <> ''")
                for row in await cur.fetchall():
                    if self.sealer.stale(row["value"]):
                        sealed = self.sealer.seal(self.sealer.open(row["value"]))
                        await conn.execute(
                            f"UPDATE {table} SET {column} = %s WHERE id = %s AND {column} = %s",
                            (sealed, row["id"], row["value"]),
                        )
                        resealed += 1
        return resealed

    # -- generations -------------------------------------------------------------------------------

    async def finish(
        self,
        conn: AsyncConnection,
        generation_id: str,
        status: str,
        server_id: str | None,
        reason: str,
        images: list[Row],
    ) -> Row | None:
        """`finish_many` for one generation: its row, or None when it was missing or already finished."""
        finished = await self.finish_many(conn, [Outcome(generation_id, status, server_id, reason, images)])
        return finished.get(generation_id)

    async def finish_many(self, conn: AsyncConnection, outcomes: list[Outcome]) -> dict[str, Row]:
        """Moves unfinished generations to their terminal status, in the caller's transaction: records
        their images, drops their jobs, and queues their webhooks. Answers the rows it moved, by id.

        A generation missing from the answer was not there or had already finished: a generation gets
        exactly one set of images however many workers answered for it. Ids must be distinct.
        """
        named = [(o, image["storage_key"]) for o in outcomes for image in o.images]
        if named:
            await self.lock_unused_blobs(conn, [key for _, key in named])
        cur = await conn.execute(
            "UPDATE generations g SET status = o.status, server_id = coalesce(o.server_id, g.server_id),"
            " reason = o.reason, updated_at = clock_timestamp(), completed_at = clock_timestamp()"
            " FROM projects p,"
            "   unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS o(id, status, server_id, reason)"
            " WHERE g.id = o.id AND g.status IN ('pending', 'processing') AND p.id = g.project_id"
            "   AND NOT EXISTS (SELECT 1 FROM unnest(%s::text[], %s::text[], %s::boolean[])"
            "    AS b(generation_id, key, stored_again) JOIN unused_blobs u ON u.storage_key = b.key"
            f"    WHERE b.generation_id = o.id AND {_REFUSED.format(stored_again='b.stored_again')})"
            f" RETURNING {qualified_columns('g')},"
            " g.quota_day, g.credits_charged, p.permanent_urls",
            (
                [o.generation_id for o in outcomes],
                [o.status for o in outcomes],
                [o.server_id for o in outcomes],
                [o.reason for o in outcomes],
                [o.generation_id for o, _ in named],
                [key for _, key in named],
                [o.stored_again for o, _ in named],
            ),
        )
        finished = {row["id"]: row for row in await cur.fetchall()}
        if not finished:
            return {}
        if metrics.enabled:
            for row in finished.values():
                metrics.GENERATIONS.labels(row[SPEC_COLUMNS["model"]], row["status"]).inc()
        images, archived = [], []
        for outcome in outcomes:
            row = finished.get(outcome.generation_id)
            if row is None:
                continue
            row["images"] = [
                {
                    **{c: image[c] for c in _IMAGE_COLUMNS.split(", ") if c in image},
                    "id": image["id"] or new_id("image"),
                    "permanent_key": permanent_key(image["storage_key"]),
                    "generation_id": row["id"],
                    "project_id": row["project_id"],
                    "idx": image["index"],
                }
                for image in outcome.images
            ]
            images.extend(row["images"])
            # An Arweave copy is as public and permanent as a permanent URL: only where those are on.
            if outcome.archive and row["permanent_urls"]:
                archived.extend(row["images"])
        # One round trip for everything that follows from the rows moved.
        async with pipelined(conn):
            if images:
                await conn.execute(
                    f"INSERT INTO output_images ({_IMAGE_COLUMNS})"
                    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::text[],"
                    "   %s::text[], %s::text[], %s::bigint[], %s::int[], %s::int[], %s::text[], %s::text[],"
                    "   %s::boolean[])",
                    [[image[c] for image in images] for c in _IMAGE_COLUMNS.split(", ")],
                )
            await conn.execute("DELETE FROM jobs WHERE generation_id = ANY(%s)", (list(finished),))
            await queue_deliveries(conn, finished.values())
            await self._give_back(conn, [r for r in finished.values() if r["status"] != "completed"])
            await notify_watchers(conn, list(finished))
            # A finished job frees a server slot, which only a queued job can be waiting for. (A job
            # queued by a transaction this one cannot see yet notifies itself; claimers look again
            # every half second in any case.)
            await notify(conn, "imagegen_jobs", when="EXISTS (SELECT 1 FROM jobs WHERE state = 'queued')")
        if archived:
            await queue_archives(conn, archived)
        return finished

    async def _give_back(self, conn: AsyncConnection, unmade: list[Row]) -> None:
        """Returns what failed and cancelled generations took: their images to the user's counters for
        the day and month they were counted in, and their credits."""
        images: dict[tuple[str, str, str, dt.date], int] = defaultdict(int)
        credits: dict[tuple[str, str], int] = defaultdict(int)
        for row in unmade:
            if row["quota_day"] is not None:
                day = row["quota_day"]
                images[(row["model_id"], row[SPEC_COLUMNS["user"]], "day", day)] += row["n"]
                images[(row["model_id"], row[SPEC_COLUMNS["user"]], "month", day.replace(day=1))] += row["n"]
            if row["credits_charged"]:
                credits[(row["project_id"], row[SPEC_COLUMNS["user"]])] += row["credits_charged"]
        if images:
            keys = list(images)
            await conn.execute(
                "UPDATE usage_counters c SET images = greatest(c.images - r.n, 0)"
                " FROM unnest(%s::text[], %s::text[], %s::text[], %s::date[], %s::int[])"
                "   AS r(model_id, end_user, period, period_start, n)"
                " WHERE c.model_id = r.model_id AND c.end_user = r.end_user AND c.period = r.period"
                "   AND c.period_start = r.period_start",
                [[k[i] for k in keys] for i in range(4)] + [[images[k] for k in keys]],
            )
        if credits:
            keys = list(credits)
            await conn.execute(
                "UPDATE credits c SET balance = c.balance + r.amount, updated_at = clock_timestamp()"
                " FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS r(project_id, end_user, amount)"
                " WHERE c.project_id = r.project_id AND c.end_user = r.end_user",
                ([k[0] for k in keys], [k[1] for k in keys], [credits[k] for k in keys]),
            )

    async def status_of(self, conn: AsyncConnection, generation_id: str) -> str | None:
        cur = await conn.execute("SELECT status FROM generations WHERE id = %s", (generation_id,))
        row = await cur.fetchone()
        return row["status"] if row else None

    async def generation_exists(self, project_id: str, generation_id: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM generations WHERE project_id = %s AND id = %s", (project_id, generation_id)
            )
            return await cur.fetchone() is not None

    async def list_generations(
        self,
        project_id: str,
        filters: Row,
        cursor: tuple[dt.datetime, str] | None,
        newer: bool,
        limit: int,
    ) -> list[Row]:
        """Up to `limit` generations after `cursor`: older ones, or with `newer` the ones just newer
        (those come back oldest first)."""
        where = ["project_id = %s"]
        params: list[Any] = [project_id]
        # A model is named by its name or its `mod_…` id.
        model_column = "model_id" if is_id("model", filters.get("model") or "") else SPEC_COLUMNS["model"]
        for column, key in (
            (SPEC_COLUMNS["user"], "user"),
            (model_column, "model"),
            ("status", "status"),
            ("id", "id"),
        ):
            if filters.get(key):
                where.append(f"{column} = %s")
                params.append(filters[key])
        if cursor is not None:
            where.append("(created_at, id) > (%s, %s)" if newer else "(created_at, id) < (%s, %s)")
            params.extend(cursor)
        order = "ASC" if newer else "DESC"
        params.append(limit)
        async with self.pool.connection() as conn, _one_snapshot(conn):
            cur = await conn.execute(
                f"SELECT {GENERATION_COLUMNS} FROM generations WHERE {' AND '.join(where)}"
                f" ORDER BY created_at {order}, id {order} LIMIT %s",
                params,
            )
            rows = await cur.fetchall()
            await self._attach_details(conn, rows)
            return rows

    async def get_generation(self, project_id: str, generation_id: str) -> Row | None:
        async with self.pool.connection() as conn, _one_snapshot(conn):
            cur = await conn.execute(
                f"SELECT {GENERATION_COLUMNS} FROM generations WHERE project_id = %s AND id = %s",
                (project_id, generation_id),
            )
            row = await cur.fetchone()
            if row is not None:
                await self._attach_details(conn, [row])
            return row

    async def generation_status(self, project_id: str, generation_id: str) -> str | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT status FROM generations WHERE project_id = %s AND id = %s",
                (project_id, generation_id),
            )
            row = await cur.fetchone()
        return None if row is None else row["status"]

    async def lock_status(self, conn: AsyncConnection, project_id: str, generation_id: str) -> str | None:
        """The generation's status, its row locked until the caller's transaction ends."""
        cur = await conn.execute(
            "SELECT status FROM generations WHERE project_id = %s AND id = %s FOR UPDATE",
            (project_id, generation_id),
        )
        row = await cur.fetchone()
        return None if row is None else row["status"]

    async def generation_by_id(self, conn: AsyncConnection, generation_id: str) -> Row | None:
        """Any project's generation, with its images: for the catalog's own use, never a tenant's."""
        cur = await conn.execute(
            f"SELECT {GENERATION_COLUMNS} FROM generations WHERE id = %s", (generation_id,)
        )
        row = await cur.fetchone()
        if row is not None:
            await self._attach_details(conn, [row])
        return row

    async def _attach_details(self, conn: AsyncConnection, rows: list[Row]) -> None:
        await self._attach_images(conn, rows)
        await self._attach_job_state(conn, rows)

    async def _attach_job_state(self, conn: AsyncConnection, rows: list[Row]) -> None:
        """Where each unfinished generation stands: its queue position while queued, its server's
        progress while running."""
        unfinished = {row["id"]: row for row in rows if row["status"] not in TERMINAL_STATUSES}
        if not unfinished:
            return
        cur = await conn.execute(_JOB_STATE, (list(unfinished),))
        for state in await cur.fetchall():
            unfinished[state.pop("generation_id")].update(state)

    async def _attach_images(self, conn: AsyncConnection, rows: list[Row]) -> None:
        if not rows:
            return
        by_id = {row["id"]: row for row in rows}
        for row in rows:
            row["images"] = []
        cur = await conn.execute(
            f"SELECT {', '.join('o.' + c for c in _IMAGE_COLUMNS.split(', '))}, {IMAGE_ARCHIVE_COLUMNS}"
            " FROM output_images o LEFT JOIN arweave_archives a ON a.storage_key = o.storage_key"
            " WHERE o.generation_id = ANY(%s) ORDER BY o.idx",
            (list(by_id),),
        )
        for image in await cur.fetchall():
            take_archive(image)
            by_id[image["generation_id"]]["images"].append(image)

    async def delete_generation(self, project_id: str, generation_id: str) -> list[str] | None:
        """Deletes the generation, or answers None; the keys nothing references any more become
        unused blobs, and are answered."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT inputs FROM generations WHERE project_id = %s AND id = %s FOR UPDATE",
                (project_id, generation_id),
            )
            generation = await cur.fetchone()
            if generation is None:
                return None
            cur = await conn.execute(
                "DELETE FROM output_images WHERE generation_id = %s RETURNING storage_key", (generation_id,)
            )
            keys = {row["storage_key"] for row in await cur.fetchall()}
            keys.update(item["storage_key"] for item in generation["inputs"] or ())
            await conn.execute("DELETE FROM generations WHERE id = %s", (generation_id,))
            if not keys:
                return []
            cur = await conn.execute(
                f"SELECT k FROM unnest(%s::text[]) AS k WHERE NOT {_BLOB_USED.format(key='k')}",
                (sorted(keys),),
            )
            unused = [row["k"] for row in await cur.fetchall()]
            await self._note_unused(conn, unused)
            return unused

    async def erase_user(self, project_id: str, user: str) -> Row:
        """Deletes the user's generations, counters, own limits and credits in one transaction. Their
        blobs nothing else uses become unused, claimable at once; archives not yet posted are abandoned.
        Answers the counts and the Arweave copies already published."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT DISTINCT o.storage_key FROM output_images o"
                " JOIN generations g ON g.id = o.generation_id WHERE g.project_id = %s AND g.end_user = %s",
                (project_id, user),
            )
            keys = {row["storage_key"] for row in await cur.fetchall()}
            # Their images, jobs and output rows go with them (ON DELETE CASCADE).
            cur = await conn.execute(
                "DELETE FROM generations WHERE project_id = %s AND end_user = %s RETURNING id, inputs",
                (project_id, user),
            )
            erased = await cur.fetchall()
            ids = [row["id"] for row in erased]
            keys.update(item["storage_key"] for row in erased for item in row["inputs"] or ())
            await conn.execute("DELETE FROM idempotency_keys WHERE generation_id = ANY(%s)", (ids,))
            await conn.execute(
                "DELETE FROM webhook_deliveries WHERE generation_id = ANY(%s) AND state = 'pending'", (ids,)
            )
            await conn.execute(
                "DELETE FROM usage_counters WHERE end_user = %s"
                " AND model_id IN (SELECT id FROM models WHERE project_id = %s)",
                (user, project_id),
            )
            await conn.execute(
                "DELETE FROM user_limits WHERE end_user = %s"
                " AND model_id IN (SELECT id FROM models WHERE project_id = %s)",
                (user, project_id),
            )
            await conn.execute(
                "DELETE FROM credits WHERE project_id = %s AND end_user = %s", (project_id, user)
            )
            cur = await conn.execute(
                f"SELECT k FROM unnest(%s::text[]) AS k WHERE NOT {_BLOB_USED.format(key='k')}",
                (sorted(keys),),
            )
            unused = [row["k"] for row in await cur.fetchall()]
            await self._note_unused(conn, unused, at_once=True)  # erased, not merely deleted
            await conn.execute(
                "UPDATE arweave_archives SET state = 'abandoned', last_error = 'its user was erased'"
                " WHERE storage_key = ANY(%s) AND state = 'pending'",
                (unused,),
            )
            cur = await conn.execute(
                "SELECT transaction->>'id' AS transaction_id, url FROM arweave_archives"
                " WHERE storage_key = ANY(%s) AND state IN ('posted', 'confirmed') ORDER BY storage_key",
                (sorted(keys),),
            )
            published = await cur.fetchall()
        return {"generations": len(ids), "images": len(keys), "arweave_copies": published}

    async def permanent_image(self, key: str) -> Row | None:
        """The image a permanent URL's key names, if its project publishes permanent URLs."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {', '.join('o.' + c for c in _IMAGE_COLUMNS.split(', '))} FROM output_images o"
                " JOIN projects p ON p.id = o.project_id"
                " WHERE o.permanent_key = %s AND p.permanent_urls LIMIT 1",
                (key,),
            )
            return await cur.fetchone()

    # -- unused blobs ------------------------------------------------------------------------------

    async def _note_unused(self, conn: AsyncConnection, keys: list[str], at_once: bool = False) -> None:
        # A key noticed again starts its grace period again: someone just stored it. An erasure's keys
        # skip the grace period, and keep skipping it when noticed again.
        await conn.execute(
            "INSERT INTO unused_blobs (storage_key, at_once) SELECT DISTINCT unnest(%s::text[]), %s"
            " ON CONFLICT (storage_key) DO UPDATE"
            " SET noticed_at = excluded.noticed_at, at_once = unused_blobs.at_once OR excluded.at_once,"
            "   swept_at = NULL",
            (keys, at_once),
        )

    async def lock_unused_blobs(self, conn: AsyncConnection, keys: list[str]) -> None:
        """Locks the unused-blob entries of keys about to be recorded, until the caller's transaction
        ends: a sweep's claim skips them, and one that claimed first has committed before the caller's
        next statement starts, which so sees it (`_SWEPT_NOW`). In a pipeline, no round trip of its own."""
        await conn.execute(
            "SELECT 1 FROM unused_blobs WHERE storage_key = ANY(%s) ORDER BY storage_key FOR UPDATE",
            (sorted(set(keys)),),
        )

    async def refused_blobs(self, conn: AsyncConnection, keys: list[str], stored_again: bool) -> list[str]:
        """Of keys about to be recorded (and locked), those whose bytes a sweep is deleting or deleted
        (`_REFUSED`): the writer stores them again once no sweep holds them, and asks again."""
        cur = await conn.execute(
            "SELECT storage_key FROM unused_blobs u WHERE storage_key = ANY(%s)"
            f" AND {_REFUSED.format(stored_again='%s')} ORDER BY storage_key",
            (sorted(set(keys)), stored_again),
        )
        return [row["storage_key"] for row in await cur.fetchall()]

    async def blobs_being_swept(self, keys: list[str]) -> list[str]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT storage_key FROM unused_blobs u WHERE storage_key = ANY(%s) AND {_SWEPT_NOW}"
                " ORDER BY storage_key",
                (sorted(set(keys)),),
            )
            return [row["storage_key"] for row in await cur.fetchall()]

    async def adopt_orphans(self, keys: list[str]) -> list[str]:
        """Notes as unused the keys no row uses and no unused-blob entry knows, or only as deleted (the
        bytes were stored again since, by a job that never recorded them); answers them."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO unused_blobs (storage_key)"
                f" SELECT DISTINCT k FROM unnest(%s::text[]) AS k WHERE NOT {_BLOB_USED.format(key='k')}"
                " ON CONFLICT (storage_key) DO UPDATE SET noticed_at = excluded.noticed_at, swept_at = NULL"
                "   WHERE unused_blobs.swept_at IS NOT NULL"
                " RETURNING storage_key",
                (keys,),
            )
            return [row["storage_key"] for row in await cur.fetchall()]

    async def note_unused(self, keys: list[str], at_once: bool = False) -> None:
        async with self.pool.connection() as conn:
            await self._note_unused(conn, keys, at_once)

    async def claim_unused(
        self, max_keys: int, grace_seconds: float, sweeps: SweepPolicy = SweepPolicy()
    ) -> dict[str, Row]:
        """Claims blobs unused for the whole grace period (an erased user's at once), answering for each
        when it became unused (`noticed_at`) and `at_once`; ones a row uses again are dropped. A claim
        whose sweeper never reported back can be taken again once it runs out. Expired uploads go
        first, their blobs noted as unused, and deleted blobs' entries older than the memory."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM unused_blobs WHERE swept_at < clock_timestamp() - make_interval(secs => %s)",
                (sweeps.memory_seconds,),
            )
            async with conn.transaction():
                cur = await conn.execute(
                    "DELETE FROM uploads WHERE expires_at < clock_timestamp() RETURNING storage_key"
                )
                expired = [row["storage_key"] for row in await cur.fetchall()]
                if expired:
                    await self._note_unused(conn, expired)
            async with conn.transaction():
                cur = await conn.execute(
                    "UPDATE unused_blobs u SET swept_until = clock_timestamp() + make_interval(secs => %s)"
                    " WHERE storage_key IN ("
                    "  SELECT storage_key FROM unused_blobs"
                    "   WHERE (swept_until IS NULL AND swept_at IS NULL"
                    "     AND (at_once OR noticed_at < clock_timestamp() - make_interval(secs => %s)))"
                    "   OR swept_until < clock_timestamp()"
                    "   ORDER BY noticed_at LIMIT %s FOR UPDATE SKIP LOCKED)"
                    " RETURNING storage_key, noticed_at, at_once,"
                    f" {_BLOB_USED.format(key='u.storage_key')} AS used",
                    (sweeps.claim_seconds, grace_seconds, max_keys),
                )
                claimed = await cur.fetchall()
                if used := [row["storage_key"] for row in claimed if row["used"]]:
                    await conn.execute("DELETE FROM unused_blobs WHERE storage_key = ANY(%s)", (used,))
            return {row["storage_key"]: row for row in claimed if not row["used"]}

    async def end_sweep(self, deleted: dict[str, dt.datetime], kept: list[str]) -> None:
        """Ends a sweep's claims. Deleted blobs are remembered as deleted (`swept_at`, see `_REFUSED`),
        unless noted unused again since the claim (a job stored the same bytes and did not record
        them): those stay unused. Kept ones, stored again since they became unused, start their grace
        period again."""
        async with self.pool.connection() as conn, conn.transaction():
            if deleted:
                await conn.execute(
                    "UPDATE unused_blobs u SET swept_at = clock_timestamp()"
                    " FROM unnest(%s::text[], %s::timestamptz[]) AS d(key, since)"
                    " WHERE u.storage_key = d.key AND u.noticed_at = d.since",
                    (list(deleted), list(deleted.values())),
                )
            if kept:
                await conn.execute(
                    "UPDATE unused_blobs SET noticed_at = clock_timestamp() WHERE storage_key = ANY(%s)",
                    (kept,),
                )
            await conn.execute(
                "UPDATE unused_blobs SET swept_until = NULL WHERE storage_key = ANY(%s)",
                ([*deleted, *kept],),
            )

    # -- uploads -----------------------------------------------------------------------------------

    async def record_upload(
        self, project_id: str, image: Row, ttl_seconds: float, stored_again: bool
    ) -> Row | None:
        """The upload's row; None when a sweep refuses its blob (`refused_blobs`)."""
        async with self.pool.connection() as conn, conn.transaction():
            await self.lock_unused_blobs(conn, [image["storage_key"]])
            if await self.refused_blobs(conn, [image["storage_key"]], stored_again):
                return None
            cur = await conn.execute(
                "INSERT INTO uploads (id, project_id, storage_key, sha256, content_type, size_bytes, width,"
                " height, expires_at) VALUES (%(id)s, %(project_id)s, %(storage_key)s, %(sha256)s,"
                " %(content_type)s, %(size_bytes)s, %(width)s, %(height)s,"
                " clock_timestamp() + make_interval(secs => %(ttl)s))"
                f" RETURNING {_UPLOAD_COLUMNS}",
                {**image, "id": new_id("upload"), "project_id": project_id, "ttl": ttl_seconds},
            )
            return await cur.fetchone()

    async def uploads(self, project_id: str, ids: list[str]) -> dict[str, Row]:
        """The project's unexpired uploads among `ids`, by id."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_UPLOAD_COLUMNS} FROM uploads"
                " WHERE project_id = %s AND id = ANY(%s) AND expires_at > clock_timestamp()",
                (project_id, ids),
            )
            return {row["id"]: row for row in await cur.fetchall()}
