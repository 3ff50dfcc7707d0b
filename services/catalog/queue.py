"""SQL for the job queue: enqueue, claim under a lease, renew, finish, retry, and the server bench.

Workers claim with `FOR UPDATE SKIP LOCKED`, so many of them take disjoint jobs without waiting on each
other; the servers of the claimed jobs' models are then locked, which makes `max_concurrency` exact across
every catalog and worker.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from imagegen.catalog.v1 import catalog_pb2
from psycopg import AsyncConnection, AsyncCursor, errors
from psycopg_pool import AsyncConnectionPool

from services.common import tracing
from services.common.ids import new_id
from services.common.vocabulary import PRIORITIES

from . import native_policy
from .account_store import AccountStore
from .db import pipelined, pipelined_transaction
from .notifier import notify, notify_watchers
from .records import GENERATION_COLUMNS, SPEC_COLUMNS, inputs_value, qualified_columns, spec_values
from .repository import Outcome, Repository, Row
from .scheduling import PriorityPolicy, QueuedJob, Server, assign_servers
from .webhook_outbox import queue_deliveries, queue_progress_deliveries

_READY_JOBS = (
    # Jobs of a model whose every server is full or benched are left for later rather than locked.
    # Worked out once per claim, so the scan below stays one pass down the ready index.
    "WITH open_models AS MATERIALIZED ("
    "  SELECT DISTINCT s.model_id FROM model_servers s"
    "  LEFT JOIN (SELECT server_id, count(*) AS n FROM jobs WHERE state = 'running' GROUP BY server_id) r"
    "    ON r.server_id = s.id"
    "  WHERE s.benched_until IS NULL AND coalesce(r.n, 0) < s.max_concurrency)"
    " SELECT j.generation_id, j.model_id, j.last_server_id FROM jobs j"
    " WHERE j.state = 'queued' AND j.run_after <= clock_timestamp()"
    "   AND j.model_id IN (SELECT model_id FROM open_models)"
    " ORDER BY j.score DESC, j.enqueued_at, j.generation_id"
    " LIMIT %s FOR UPDATE OF j SKIP LOCKED"
)

# A user's requests in the last 24 hours, counted up to a limit (the scores' `counted_up_to`).
RECENT_REQUESTS = (
    "SELECT count(*) AS n FROM (SELECT 1 FROM generations WHERE project_id = %s AND end_user = %s"
    " AND created_at > clock_timestamp() - interval '24 hours' LIMIT %s) recent"
)

# Advisory lock key for refresh_statistics; any constant that no other lock in the database uses.
_ANALYZE_LOCK = 0x696D6167_0001


def _seconds(value: float) -> dt.timedelta:
    return dt.timedelta(seconds=value)


def _server(row: Row) -> Server:
    return Server(row["id"], row["model_id"], row["position"], row["max_concurrency"])


def _lease_of(generation: Row, server: Row, attempt: int, deadline: dt.datetime | None) -> Row:
    """A job leased to a worker, as the servicer maps it to a `Job`."""
    return {"generation": generation, "server": server, "attempt": attempt, "deadline": deadline}


class Refused(Exception):
    """A create the queue turns away; raised inside its transaction so nothing of it stays."""

    def __init__(self, outcome: str, details: Row | None = None):
        super().__init__(outcome)
        self.outcome = outcome
        self.details = details


@dataclass
class _Inserted:
    """An enqueue's new generation: its insert's cursor (its RETURNING row, read after the commit), and
    the server its job is leased on (None: queued)."""

    generation: AsyncCursor
    server: Row | None


class JobQueue:
    def __init__(self, pool: AsyncConnectionPool, repository: Repository, accounts: AccountStore):
        self.pool = pool
        self.repo = repository
        self.accounts = accounts

    # -- enqueue -----------------------------------------------------------------------------------

    async def enqueue(
        self,
        project_id: str,
        spec: catalog_pb2.GenerationSpec,
        priorities: PriorityPolicy,
        idempotency: tuple[str, bytes] | None,
        deadline: dt.datetime | None,
        lease_to: tuple[str, float] | None = None,
        inputs: list[catalog_pb2.InputImageRecord] | tuple = (),
        request_body: bytes = b"",
        generation_id: str = "",
        inputs_stored_again: bool = False,
    ) -> tuple[str, Row | None]:
        """Records a `pending` generation and its job in one transaction; with `lease_to` (a worker and
        lease seconds) the job is leased to that worker at once when a server of the model is free and
        no earlier job is waiting for one, and the row carries it as `job`.

        Answers ("created", row), ("replayed", row) for a live idempotency key with the same request hash,
        ("conflict", None) for one with another hash, or a refusal with its details: "no-model",
        "native-refused" (the model does not take the request's native part), "needs-user" (the model
        has limits or a price), "over-limit" or "unpaid".

        `generation_id`, when the caller picks it, makes the call safe to repeat: a caller that lost the
        answer (the catalog it asked died) and asks again gets ("replayed", row) for what the first call
        committed, charged once. A lease the first call gave `lease_to`'s worker, which that worker never
        learned of, goes back to the queue.
        """
        repeatable = bool(generation_id)
        generation_id = generation_id or new_id("generation")
        try:
            # Pipelined: statements go out as they are made and the connection waits only where an
            # answer is needed (the model, the servers to lease on), and the new row is read once the
            # COMMIT has gone out with the inserts, so an enqueue is three round trips.
            async with self.pool.connection() as conn:
                async with pipelined_transaction(conn):
                    queued = await self._insert(
                        conn, generation_id, project_id, spec, priorities, idempotency, deadline,
                        lease_to, inputs, request_body, inputs_stored_again,
                    )  # fmt: skip
                if not isinstance(queued, _Inserted):
                    return queued
                row = {**await queued.generation.fetchone(), "images": []}
            job = _lease_of(row, queued.server, 1, deadline) if queued.server else None
            return "created", {**row, "job": job}
        except errors.UniqueViolation as exc:
            if not repeatable or exc.diag.constraint_name != "generations_pkey":
                raise
            if (outcome := await self._repeated(project_id, generation_id, lease_to)) is None:
                raise
            return outcome
        except Refused as refused:
            # Raised inside the transaction, so whatever was counted or charged before it is undone. A
            # repeated call can be refused by what its first call took (the user's last credits).
            if repeatable and (outcome := await self._repeated(project_id, generation_id, lease_to)):
                return outcome
            return refused.outcome, refused.details

    async def _repeated(
        self, project_id: str, generation_id: str, lease_to: tuple[str, float] | None
    ) -> tuple[str, Row] | None:
        async with self.pool.connection() as conn:
            row = await self.repo.generation_by_id(conn, generation_id)
        if row is None or row["project_id"] != project_id:
            return None
        if lease_to is not None:
            await self.release(lease_to[0], [generation_id])
        return "replayed", row

    async def _insert(
        self,
        conn: AsyncConnection,
        generation_id: str,
        project_id: str,
        spec: catalog_pb2.GenerationSpec,
        priorities: PriorityPolicy,
        idempotency: tuple[str, bytes] | None,
        deadline: dt.datetime | None,
        lease_to: tuple[str, float] | None,
        inputs: list[catalog_pb2.InputImageRecord] | tuple,
        request_body: bytes,
        inputs_stored_again: bool,
    ) -> _Inserted | tuple[str, Row | None]:
        """The enqueue's statements, in the caller's transaction: what an idempotency key answers, or
        the generation's insert (its row read after the commit) and the server it is leased on."""
        if idempotency is not None:
            outcome = await self._claim_idempotency_key(conn, project_id, generation_id, idempotency)
            if outcome is not None:
                return outcome
        if stored_inputs := [image.storage_key for image in inputs if image.storage_key]:
            await self.repo.lock_unused_blobs(conn, stored_inputs)
            if swept := await self.repo.refused_blobs(conn, stored_inputs, inputs_stored_again):
                raise Refused("being-swept", {"keys": swept})
        recent_cur = await conn.execute(RECENT_REQUESTS, (project_id, spec.user, priorities.counted_up_to))
        given = sum(1 for image in inputs if not image.pointer and image.role == "image")
        quota_day, charged = await self._charge(conn, project_id, spec, given)
        score = priorities.score(spec.priority, (await recent_cur.fetchone())["n"])
        server = None
        if lease_to is not None:
            # Only while no other job of the model is ready and queued: then the queue's order
            # decides, not who asked last. The rows go in leased, rather than queued and then
            # updated: no one can be watching them before this commits.
            server = await self._free_server(conn, QueuedJob(generation_id, charged["model_id"], None))
        values = {
            **spec_values(spec),
            "id": generation_id,
            "project_id": project_id,
            "model_id": charged["model_id"],
            # The model's own spelling of its name.
            SPEC_COLUMNS["model"]: charged["model_name"],
            "status": "processing" if server else "pending",
            "server_id": server["id"] if server else "",
            "inputs": inputs_value(inputs),
            "request_body": request_body,
            "quota_day": quota_day,
            "credits_charged": charged["credits"],
            "trace_parent": tracing.traceparent(),
        }
        placeholders = {column: f"%({column})s" for column in values}
        if server:
            placeholders["started_at"] = "clock_timestamp()"
        columns, given_values = ", ".join(placeholders), ", ".join(placeholders.values())
        generation_cur = await conn.execute(
            f"INSERT INTO generations ({columns}) VALUES ({given_values}) RETURNING {GENERATION_COLUMNS}",
            values,
        )
        await conn.execute(
            "INSERT INTO jobs (generation_id, project_id, model_id, state, score, deadline, server_id,"
            "   worker_id, attempts, lease_expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp() + %s)",
            (
                generation_id, project_id, charged["model_id"], "running" if server else "queued", score,
                deadline, server and server["id"], server and lease_to[0], 1 if server else 0,
                _seconds(lease_to[1]) if server else None,
            ),
        )  # fmt: skip
        if server:
            # What the start webhook's row needs is what was just inserted.
            await queue_deliveries(conn, [values], "start")
        else:
            await notify(conn, "imagegen_jobs")
        return _Inserted(generation_cur, server)

    async def _charge(
        self, conn: AsyncConnection, project_id: str, spec: catalog_pb2.GenerationSpec, images_given: int = 0
    ) -> tuple[dt.date | None, Row]:
        """Counts the images against the user's limits and takes their price in credits, or raises
        Refused. Answers the day counted (None when the model has no limits) and what was taken."""
        model = await self.accounts.model_for_user(conn, project_id, spec.model, spec.user)
        if model is None:
            raise Refused("no-model")
        refused = native_policy.refusal(model, spec, images_given)
        if refused is not None:
            raise Refused("native-refused", {"field": refused[0], "why": refused[1]})
        limited = model["daily_limit"] is not None or model["monthly_limit"] is not None
        cost = model["price_per_image"] * spec.n
        charged = {"model_id": model["id"], "model_name": model["name"], "credits": cost}
        if (limited or cost) and not spec.user:
            raise Refused("needs-user", {"model": model["name"], "limited": limited})
        day = None
        if limited:
            day, refused_period = await self.accounts.count_images(conn, model, spec.user, spec.n)
            if refused_period is not None:
                limit = model["daily_limit"] if refused_period == "day" else model["monthly_limit"]
                raise Refused(
                    "over-limit",
                    {"model": model["name"], "period": refused_period, "limit": limit, "day": day},
                )
        if cost and await self.accounts.charge(conn, project_id, spec.user, cost) is None:
            raise Refused("unpaid", {"model": model["name"], "cost": cost})
        return day, charged

    async def _claim_idempotency_key(
        self, conn: AsyncConnection, project_id: str, generation_id: str, idempotency: tuple[str, bytes]
    ) -> tuple[str, Row | None] | None:
        """None when the key is new (or expired) and now belongs to `generation_id`."""
        key, request_hash = idempotency
        # A concurrent insert of the same key waits here until the first transaction ends.
        cur = await conn.execute(
            "INSERT INTO idempotency_keys (project_id, key, request_hash, generation_id)"
            " VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (project_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,"
            "   generation_id = EXCLUDED.generation_id, created_at = clock_timestamp()"
            " WHERE idempotency_keys.created_at < clock_timestamp() - interval '24 hours'"
            " RETURNING generation_id",
            (project_id, key, request_hash, generation_id),
        )
        if await cur.fetchone() is not None:
            return None
        cur = await conn.execute(
            "SELECT request_hash, generation_id FROM idempotency_keys WHERE project_id = %s AND key = %s",
            (project_id, key),
        )
        earlier = await cur.fetchone()
        if bytes(earlier["request_hash"]) != request_hash:
            return "conflict", None
        return "replayed", await self.repo.generation_by_id(conn, earlier["generation_id"])

    # -- claim and lease ---------------------------------------------------------------------------

    async def claim(self, worker_id: str, max_jobs: int, lease_seconds: float) -> list[Row]:
        async with self.pool.connection() as conn, pipelined_transaction(conn):
            cur = await conn.execute(_READY_JOBS, (max_jobs,))
            candidates = [
                QueuedJob(r["generation_id"], r["model_id"], r["last_server_id"])
                for r in await cur.fetchall()
            ]
            return await self._lease(conn, worker_id, candidates, lease_seconds)

    async def _servers(
        self, conn: AsyncConnection, model_ids: list[str], queue_first: bool = False
    ) -> tuple[dict[str, Row], dict[str, int]]:
        """The models' unbenched servers, locked, by id, and how many jobs each runs. With `queue_first`,
        a model with a job ready in the queue has none: the queue's order goes first."""
        others_first = (
            " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.model_id = s.model_id AND j.state = 'queued'"
            "   AND j.run_after <= clock_timestamp())"
            if queue_first
            else ""
        )
        # Pipelined: one round trip. The count runs after the locks, so it sees every claim that
        # committed before them.
        async with pipelined(conn):
            # Locked in id order so two claimers never wait on each other in a cycle.
            servers_cur = await conn.execute(
                "SELECT s.id, s.model_id, s.position, s.max_concurrency, s.url, s.api_key, s.private_ok,"
                " m.provider, m.upstream_model, m.content_credentials, m.max_outputs_per_image, m.comfyui"
                " FROM model_servers s JOIN models m ON m.id = s.model_id"
                f" WHERE s.model_id = ANY(%s) AND s.benched_until IS NULL{others_first}"
                " ORDER BY s.id FOR UPDATE OF s",
                (model_ids,),
            )
            running_cur = await conn.execute(
                "SELECT server_id, count(*) AS running FROM jobs WHERE state = 'running'"
                " AND server_id IN (SELECT id FROM model_servers WHERE model_id = ANY(%s))"
                " GROUP BY server_id",
                (model_ids,),
            )
        servers = {
            row["id"]: {**row, "api_key": self.repo.sealer.open(row["api_key"])}
            for row in await servers_cur.fetchall()
        }
        return servers, {row["server_id"]: row["running"] for row in await running_cur.fetchall()}

    async def _free_server(self, conn: AsyncConnection, job: QueuedJob) -> Row | None:
        """The server a new job would run on now (locked), or None: every server is full or benched, or
        another job of the model waits in the queue."""
        servers, running = await self._servers(conn, [job.model_id], queue_first=True)
        assigned = assign_servers([job], [_server(s) for s in servers.values()], running)
        return servers[assigned[0][1].id] if assigned else None

    async def _lease(
        self, conn: AsyncConnection, worker_id: str, candidates: list[QueuedJob], lease_seconds: float
    ) -> list[Row]:
        """Leases what the candidates' servers have room for to the worker, in the caller's transaction."""
        if not candidates:
            return []
        servers, running = await self._servers(conn, sorted({job.model_id for job in candidates}))
        assignments = assign_servers(candidates, [_server(s) for s in servers.values()], running)
        if not assignments:
            return []
        ids = [job.generation_id for job, _ in assignments]
        server_ids = [server.id for _, server in assignments]
        async with pipelined(conn):
            leases_cur = await conn.execute(
                "UPDATE jobs SET state = 'running', server_id = a.server_id, worker_id = %s,"
                " attempts = attempts + 1, lease_expires_at = clock_timestamp() + %s,"
                " progress = NULL, step = NULL, steps = NULL"
                " FROM unnest(%s::text[], %s::text[]) AS a(generation_id, server_id)"
                " WHERE jobs.generation_id = a.generation_id"
                " RETURNING jobs.generation_id, jobs.attempts, jobs.deadline",
                (worker_id, _seconds(lease_seconds), ids, server_ids),
            )
            generations_cur = await conn.execute(
                "UPDATE generations g SET status = 'processing', server_id = a.server_id,"
                " updated_at = clock_timestamp(), started_at = clock_timestamp()"
                " FROM unnest(%s::text[], %s::text[]) AS a(generation_id, server_id)"
                " WHERE g.id = a.generation_id"
                f" RETURNING {qualified_columns('g')}",
                (ids, server_ids),
            )
            await notify_watchers(conn, ids)
        leases = {row["generation_id"]: row for row in await leases_cur.fetchall()}
        generations = {row["id"]: row for row in await generations_cur.fetchall()}
        await queue_deliveries(conn, generations.values(), "start")
        claimed = []
        for job, server in assignments:
            generation = generations[job.generation_id]
            generation["images"] = []
            lease = leases[job.generation_id]
            claimed.append(_lease_of(generation, servers[server.id], lease["attempts"], lease["deadline"]))
        return claimed

    async def summary(self, project_id: str | None) -> list[Row]:
        """Jobs pending and processing per project, model and priority; every project's with None."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT j.project_id, j.model_id, g.model_name AS model, g.priority,"
                " count(*) FILTER (WHERE j.state = 'queued') AS pending,"
                " count(*) FILTER (WHERE j.state = 'running') AS processing,"
                " min(j.enqueued_at) FILTER (WHERE j.state = 'queued') AS oldest_pending_at"
                " FROM jobs j JOIN generations g ON g.id = j.generation_id"
                " WHERE %(project)s::text IS NULL OR j.project_id = %(project)s"
                " GROUP BY j.project_id, j.model_id, g.model_name, g.priority"
                " ORDER BY j.project_id, g.model_name, array_position(%(priorities)s, g.priority)",
                {"project": project_id, "priorities": list(reversed(PRIORITIES))},
            )
            return await cur.fetchall()

    async def server_states(self) -> list[Row]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT s.id, m.name AS model, m.project_id, s.benched_until IS NOT NULL AS benched,"
                " s.consecutive_failures, coalesce(r.n, 0) AS running"
                " FROM model_servers s JOIN models m ON m.id = s.model_id"
                " LEFT JOIN (SELECT server_id, count(*) AS n FROM jobs WHERE state = 'running'"
                "   GROUP BY server_id) r ON r.server_id = s.id"
                " ORDER BY m.project_id, m.name, s.position"
            )
            return await cur.fetchall()

    async def backlogs(self) -> dict[str, int]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT (SELECT count(*) FROM webhook_deliveries WHERE state = 'pending') AS webhooks,"
                " (SELECT count(*) FROM arweave_archives WHERE state = 'pending') AS arweave"
            )
            return await cur.fetchone()

    async def renew(self, worker_id: str, generation_ids: list[str], lease_seconds: float) -> list[str]:
        """Answers the ids this worker no longer holds."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE jobs SET lease_expires_at = clock_timestamp() + %s"
                " WHERE generation_id = ANY(%s) AND worker_id = %s AND state = 'running'"
                " RETURNING generation_id",
                (_seconds(lease_seconds), generation_ids, worker_id),
            )
            held = {row["generation_id"] for row in await cur.fetchall()}
        return [generation_id for generation_id in generation_ids if generation_id not in held]

    async def report_progress(self, worker_id: str, reports: list[catalog_pb2.JobProgress]) -> None:
        """Records how far the worker's running jobs got and wakes their watchers; a job it no longer
        holds is left alone."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE jobs j SET progress = r.progress, step = nullif(r.step, 0),"
                " steps = nullif(r.steps, 0)"
                " FROM unnest(%s::text[], %s::real[], %s::int[], %s::int[]) AS r(generation_id, progress,"
                "   step, steps)"
                " WHERE j.generation_id = r.generation_id AND j.worker_id = %s AND j.state = 'running'"
                " RETURNING j.generation_id",
                (
                    [r.generation_id for r in reports],
                    [min(max(r.progress, 0.0), 1.0) for r in reports],
                    [max(r.step, 0) for r in reports],
                    [max(r.steps, 0) for r in reports],
                    worker_id,
                ),
            )
            held = {row["generation_id"] for row in await cur.fetchall()}
            previews = [r for r in reports if r.preview and r.generation_id in held]
            if previews:
                await conn.execute(
                    "INSERT INTO job_previews (generation_id, data, content_type)"
                    " SELECT * FROM unnest(%s::text[], %s::bytea[], %s::text[])"
                    " ON CONFLICT (generation_id) DO UPDATE SET data = EXCLUDED.data,"
                    "   content_type = EXCLUDED.content_type, updated_at = clock_timestamp()",
                    (
                        [r.generation_id for r in previews],
                        [r.preview for r in previews],
                        [r.preview_content_type for r in previews],
                    ),
                )
            if held:
                await notify_watchers(conn, sorted(held))
                await queue_progress_deliveries(conn, sorted(held))

    async def preview(self, generation_id: str) -> Row | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT data, content_type, updated_at FROM job_previews WHERE generation_id = %s",
                (generation_id,),
            )
            return await cur.fetchone()

    async def release(self, worker_id: str, generation_ids: list[str]) -> None:
        """Back to the queue without spending an attempt: the worker is stopping, not failing."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE jobs SET state = 'queued', worker_id = NULL, server_id = NULL,"
                " lease_expires_at = NULL, attempts = greatest(attempts - 1, 0)"
                " WHERE generation_id = ANY(%s) AND worker_id = %s AND state = 'running'"
                " RETURNING generation_id",
                (generation_ids, worker_id),
            )
            await self._back_to_pending(conn, [row["generation_id"] for row in await cur.fetchall()])

    async def _back_to_pending(self, conn: AsyncConnection, generation_ids: list[str]) -> None:
        if not generation_ids:
            return
        await conn.execute(
            "UPDATE generations SET status = 'pending', updated_at = clock_timestamp(), started_at = NULL"
            " WHERE id = ANY(%s) AND status = 'processing'",
            (generation_ids,),
        )
        await conn.execute(
            "UPDATE jobs SET progress = NULL, step = NULL, steps = NULL WHERE generation_id = ANY(%s)",
            (generation_ids,),
        )
        await conn.execute("DELETE FROM job_previews WHERE generation_id = ANY(%s)", (generation_ids,))
        await notify_watchers(conn, generation_ids)
        await notify(conn, "imagegen_jobs")

    # -- answers from workers ----------------------------------------------------------------------

    async def complete(self, completions: list[Outcome]) -> tuple[dict[str, Row], dict[str, str]]:
        """Records completed jobs in one transaction. Answers the rows recorded, and for the rest the
        status they already had ("" for a generation that does not exist)."""
        async with self.pool.connection() as conn, pipelined_transaction(conn):
            recorded = await self.repo.finish_many(conn, completions)
            servers = sorted(
                {c.server_id for c in completions if c.generation_id in recorded and c.server_id}
            )
            if servers:
                await conn.execute(
                    "UPDATE model_servers SET consecutive_failures = 0, last_error = ''"
                    " WHERE id = ANY(%s) AND consecutive_failures > 0",
                    (servers,),
                )
            refused = [c.generation_id for c in completions if c.generation_id not in recorded]
            statuses = {}
            if refused:
                cur = await conn.execute("SELECT id, status FROM generations WHERE id = ANY(%s)", (refused,))
                statuses = {row["id"]: row["status"] for row in await cur.fetchall()}
            return recorded, {generation_id: statuses.get(generation_id, "") for generation_id in refused}

    async def locked_job(self, conn: AsyncConnection, generation_id: str, worker_id: str) -> Row | None:
        cur = await conn.execute(
            "SELECT * FROM jobs WHERE generation_id = %s AND worker_id = %s AND state = 'running' FOR UPDATE",
            (generation_id, worker_id),
        )
        return await cur.fetchone()

    async def requeue(
        self, conn: AsyncConnection, job: Row, error: str, run_after_seconds: float, server_failed: bool
    ) -> None:
        await conn.execute(
            "UPDATE jobs SET state = 'queued', worker_id = NULL, server_id = NULL, lease_expires_at = NULL,"
            " last_server_id = %s, last_error = %s, run_after = clock_timestamp() + %s,"
            " server_failures = server_failures + %s"
            " WHERE generation_id = %s",
            (
                job["server_id"],
                error,
                _seconds(run_after_seconds),
                1 if server_failed else 0,
                job["generation_id"],
            ),
        )
        await self._back_to_pending(conn, [job["generation_id"]])

    async def server_failed(
        self, conn: AsyncConnection, server_id: str, error: str, bench_after: int, bench_seconds: float
    ) -> None:
        await conn.execute(
            "UPDATE model_servers SET consecutive_failures = consecutive_failures + 1, last_error = %s,"
            " benched_until = CASE WHEN consecutive_failures + 1 >= %s"
            "   THEN clock_timestamp() + %s ELSE benched_until END"
            " WHERE id = %s",
            (error, bench_after, _seconds(bench_seconds), server_id),
        )

    async def generation(self, generation_id: str) -> Row | None:
        async with self.pool.connection() as conn:
            return await self.repo.generation_by_id(conn, generation_id)

    # -- housekeeping ------------------------------------------------------------------------------

    async def refresh_statistics(self, min_changes: int = 500) -> bool:
        """ANALYZEs the jobs table when it changed a lot since it was last analyzed.

        Autovacuum looks at most once a minute. After a burst of enqueues in between, the planner still
        believes the queue nearly empty and sorts the whole backlog on every claim instead of reading
        the ready index in order; that costs a claim about 1.5 ms per few thousand queued jobs.
        """
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT n_mod_since_analyze AS changed, n_live_tup AS live FROM pg_stat_user_tables"
                " WHERE relid = 'jobs'::regclass"
            )
            stats = await cur.fetchone()
            if stats is None or stats["changed"] < max(min_changes, stats["live"] // 2):
                return False
            async with conn.transaction():
                # One catalog analyzes; the others skip rather than queue behind it.
                cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS mine", (_ANALYZE_LOCK,))
                if not (await cur.fetchone())["mine"]:
                    return False
                await conn.execute("ANALYZE jobs")
            return True

    async def expired_leases(self, conn: AsyncConnection) -> list[Row]:
        cur = await conn.execute(
            "SELECT * FROM jobs WHERE state = 'running' AND lease_expires_at < clock_timestamp()"
            " FOR UPDATE SKIP LOCKED"
        )
        return await cur.fetchall()

    async def abandoned(self, conn: AsyncConnection, queue_timeout_seconds: float) -> list[Row]:
        """Queued jobs whose sync caller's deadline passed, or that waited longer than the queue allows."""
        cur = await conn.execute(
            "SELECT *, deadline IS NOT NULL AND deadline < clock_timestamp() AS caller_gone FROM jobs"
            " WHERE state = 'queued'"
            "   AND (deadline < clock_timestamp() OR enqueued_at < clock_timestamp() - %s)"
            " FOR UPDATE SKIP LOCKED",
            (_seconds(queue_timeout_seconds),),
        )
        return await cur.fetchall()

    async def due_probes(self, cooldown_seconds: float, limit: int = 10) -> list[Row]:
        """Benched servers whose cool-down ended; claiming one pushes its bench out by another cool-down,
        so it is probed by one worker at a time and stays benched unless the probe succeeds."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE model_servers s SET benched_until = clock_timestamp() + %s FROM models m"
                " WHERE m.id = s.model_id AND s.id IN (SELECT id FROM model_servers"
                "   WHERE benched_until <= clock_timestamp() LIMIT %s FOR UPDATE SKIP LOCKED)"
                " RETURNING s.id, s.url, s.api_key, s.private_ok, m.provider, m.upstream_model",
                (_seconds(cooldown_seconds), limit),
            )
            return [{**row, "api_key": self.repo.sealer.open(row["api_key"])} for row in await cur.fetchall()]

    async def probe_result(self, server_id: str, ok: bool, error: str) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            if ok:
                await conn.execute(
                    "UPDATE model_servers SET benched_until = NULL, consecutive_failures = 0, last_error = ''"
                    " WHERE id = %s",
                    (server_id,),
                )
                await notify(conn, "imagegen_jobs")
            else:
                await conn.execute(
                    "UPDATE model_servers SET last_error = %s WHERE id = %s", (error, server_id)
                )
