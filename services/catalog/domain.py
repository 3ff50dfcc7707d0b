"""The catalog's rules: who a key belongs to, what a generation may become, how pages are cursored."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import logging
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from imagegen.catalog.v1 import catalog_pb2

from services.common import comfy_workflow
from services.common.errors import (
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
)
from services.common.ids import is_id
from services.common.outbound import OutboundPolicy, OutboundRefused, numeric_address
from services.common.vocabulary import (
    DEFAULT_PRIORITY,
    PRIORITIES,
    PROVIDERS,
    STATUSES,
    STORAGE_KEY,
    TERMINAL_STATUSES,
)

from .accounts import MAX_CREDITS, check_limit, check_user, hash_key, period_resets
from .arweave_store import ArweaveArchives
from .db import retry_deadlocks
from .notifier import Notifier, forget_stale_watches, wait_for
from .queue import JobQueue
from .repository import UPLOAD_IMAGE_COLUMNS, Outcome, Repository, Row, SweepPolicy
from .scheduling import PriorityPolicy
from .webhook_outbox import WebhookOutbox

T = TypeVar("T")
log = logging.getLogger("imagegen.catalog")

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_SERVERS = 32
MAX_SERVER_CONCURRENCY = 1000
DEFAULT_PAGE_SIZE = 20
MAX_BLOB_BATCH = 1000
# An upload is for reuse within a working session, not a library: a week at most.
MAX_UPLOAD_TTL_SECONDS = 7 * 24 * 3600
MAX_PAGE_SIZE = 200
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_token: str
    previous_token: str
    page_size: int


def encode_page_token(row: Row, newer: bool) -> str:
    micros = (row["created_at"] - _EPOCH) // dt.timedelta(microseconds=1)
    raw = json.dumps({"d": "p" if newer else "n", "t": micros, "i": row["id"]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[tuple[dt.datetime, str], bool]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        cursor = (_EPOCH + dt.timedelta(microseconds=int(data["t"])), str(data["i"]))
        if data["d"] not in ("n", "p"):
            raise ValueError(data["d"])
        return cursor, data["d"] == "p"
    except (binascii.Error, ValueError, KeyError, TypeError, OverflowError):
        raise InvalidArgument(
            "pageToken is not one this API issued; pass nextPageToken or previousPageToken from an"
            " earlier answer unchanged, or leave it out for the first page",
            field="page_token",
        ) from None


def clamp_page_size(page_size: int) -> int:
    if page_size < 0:
        raise InvalidArgument(
            f"pageSize must be between 1 and {MAX_PAGE_SIZE}, got {page_size}", field="page_size"
        )
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


ARWEAVE_REPORTED_STATES = ("pending", "posted", "confirmed")
# A watch sends at most one event per this many seconds while a generation is unfinished.
WATCH_INTERVAL_SECONDS = 0.25
# What a watch sends an event for when it changes.
_WATCHED = ("status", "queue_position", "progress", "step", "steps")
# Previews are a few KB; a worker that sends more is cut off here rather than filling the table.
MAX_PREVIEW_BYTES = 64 * 1024


@dataclass(frozen=True)
class QueuePolicy:
    """How the queue treats lost workers, failing servers and waiting jobs."""

    # Claims whose worker vanished (lease ran out) before the generation fails.
    max_attempts: int = 3
    # Server failures (refused, 5xx, timeout) a job survives before it fails.
    max_server_failures: int = 6
    retry_base_seconds: float = 0.2
    retry_max_seconds: float = 10.0
    # Consecutive failures that bench a server, and for how long before it is probed.
    bench_after_failures: int = 3
    bench_seconds: float = 30.0
    # A queued job nobody could start within this long fails.
    queue_timeout_seconds: float = 3600.0
    # Webhook retry delays, multiplied by `webhook_retry_unit_seconds`: 5 s, 30 s, 2 min, 5 min,
    # 10 min, 30 min, 1 h, 2 h, 4 h with the default unit, so a receiver has over 8 hours to recover.
    webhook_retry_steps: tuple[int, ...] = (1, 6, 24, 60, 120, 360, 720, 1440, 2880)
    webhook_retry_unit_seconds: float = 5.0
    priorities: PriorityPolicy = PriorityPolicy()
    # How long a blob must stay unused before a sweep deletes it: longer than any job takes from
    # storing its images to recording them, since keys are content hashes shared between jobs.
    unused_blob_grace_seconds: float = 600.0
    sweeps: SweepPolicy = SweepPolicy()

    def retry_delay(self, failures: int) -> float:
        return min(self.retry_base_seconds * 2 ** max(failures - 1, 0), self.retry_max_seconds)


def _server_specs(servers: list[Row], provider: str) -> list[Row]:
    if not servers:
        raise InvalidArgument("servers must list at least one server", field="servers")
    if len(servers) > MAX_SERVERS:
        raise InvalidArgument(f"a model can have at most {MAX_SERVERS} servers", field="servers")
    checked = []
    for index, server in enumerate(servers):
        url = server["url"].strip().rstrip("/")
        field = f"servers[{index}]"
        if provider == "procedural":
            if url != "builtin://procedural":
                raise InvalidArgument(
                    f"{field}.url must be builtin://procedural for the procedural provider", field=field
                )
        elif not re.match(r"^https?://[^\s/]+", url):
            raise InvalidArgument(
                f"{field}.url must be an http:// or https:// base URL; got {server['url']!r}", field=field
            )
        concurrency = server["max_concurrency"] or 1
        if not 1 <= concurrency <= MAX_SERVER_CONCURRENCY:
            raise InvalidArgument(
                f"{field}.maxConcurrency must be between 1 and {MAX_SERVER_CONCURRENCY}; got {concurrency}",
                field=field,
            )
        checked.append({"url": url, "api_key": server["api_key"], "max_concurrency": concurrency})
    return checked


class Catalog:
    def __init__(
        self,
        repository: Repository,
        queue: JobQueue,
        notifier: Notifier,
        policy: QueuePolicy | None = None,
        archives: ArweaveArchives | None = None,
        outbound: OutboundPolicy | None = None,
    ):
        self.outbound = outbound or OutboundPolicy()
        self.repo = repository
        self.queue = queue
        self.notifier = notifier
        self.policy = policy or QueuePolicy()
        self.archives = archives or ArweaveArchives(repository.pool)
        self.webhooks = WebhookOutbox(repository.pool, repository)
        self._next_housekeeping = 0.0
        self._next_probe_check = 0.0
        self._next_watch_cleanup = 0.0

    async def bootstrap(self, api_key: str) -> None:
        """Makes sure the bootstrap admin key exists, creating its `default` project the first time."""
        if not api_key:
            return
        if await self.repo.find_key(hash_key(api_key)) is not None:
            return
        project_id = await self.repo.create_project_with_key(
            "default", hash_key(api_key), "bootstrap", admin=True
        )
        log.info("bootstrap project created", extra={"fields": {"project_id": project_id}})

    async def list_models(self, project_id: str) -> list[Row]:
        return await self.repo.list_models(project_id)

    async def get_model(self, project_id: str, name: str) -> Row:
        models = await self.repo.list_models(project_id, name)
        if not models:
            raise NotFound(f"model {name!r} not found in this project")
        return models[0]

    # -- models ------------------------------------------------------------------------------------

    async def create_model(self, project_id: str, model: Row, admin: bool = False) -> Row:
        name, provider = model["name"], model["provider"]
        if not MODEL_NAME.match(name):
            raise InvalidArgument(
                "name must be 1..64 letters, digits, '.', '_' or '-', starting with a letter or digit;"
                f" got {name!r}",
                field="name",
            )
        if provider not in PROVIDERS:
            raise InvalidArgument(
                f"provider must be one of {', '.join(PROVIDERS)}; got {provider!r}", field="provider"
            )
        if len(model["upstream_model"]) > 256:
            raise InvalidArgument("upstreamModel is longer than 256 characters", field="upstream_model")
        check_limit(model.get("daily_limit"), "userLimits.daily")
        check_limit(model.get("monthly_limit"), "userLimits.monthly")
        if not 0 <= model.get("price_per_image", 0) <= MAX_CREDITS:
            raise InvalidArgument(
                f"pricePerImage must be between 0 and {MAX_CREDITS}", field="price_per_image"
            )
        if (provider == "comfyui") != (model.get("comfyui") is not None):
            raise InvalidArgument(
                "a model of provider comfyui needs `comfyui` (its workflow and field places), and only it",
                field="comfyui",
            )
        if model.get("comfyui") is not None:
            comfy_workflow.check_model(model["comfyui"])
        servers = self._placed(_server_specs(model["servers"], provider), admin)
        created = await self.repo.create_model(project_id, {**model, "servers": servers})
        if created is None:
            raise AlreadyExists(
                f"model {name!r} already exists; change its servers with PUT /api/models/{name}/servers",
                field="name",
            )
        return created

    async def replace_servers(
        self, project_id: str, name: str, servers: list[Row], admin: bool = False
    ) -> Row:
        model = await self.get_model(project_id, name)
        servers = self._placed(_server_specs(servers, model["provider"]), admin)
        updated = await self.repo.replace_servers(project_id, name, servers)
        if updated is None:
            raise NotFound(f"model {name!r} not found in this project")
        return updated

    def _placed(self, servers: list[Row], admin: bool) -> list[Row]:
        """The servers, each marked with whether it may be on an allowed private network: only when an
        admin key attaches it. An address written as a number is judged now; a name is judged by the
        generator on the address it resolves to, at every connection."""
        for index, server in enumerate(servers):
            if server["url"] == "builtin://procedural":
                continue
            field = f"servers[{index}].url"
            try:
                self.outbound.check_url(server["url"])
            except OutboundRefused as exc:
                raise InvalidArgument(f"{field}: {exc}", field=field) from None
            address = numeric_address(urlsplit(server["url"]).hostname or "")
            if address is not None and self.outbound.is_private_allowed(address) and not admin:
                raise PermissionDenied(
                    f"{field} is on a private network this deployment allows; only an admin key attaches"
                    " model servers there",
                    field=field,
                )
            server["private_ok"] = admin
        return servers

    async def delete_model(self, project_id: str, name: str) -> None:
        if not await self.repo.delete_model(project_id, name, f"model {name!r} was deleted"):
            raise NotFound(f"model {name!r} not found in this project")

    async def webhook_secret(self, project_id: str) -> str:
        candidate = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        return await self.repo.webhook_secret(project_id, candidate)

    # -- the queue ---------------------------------------------------------------------------------

    async def enqueue(
        self,
        project_id: str,
        spec: catalog_pb2.GenerationSpec,
        idempotency_key: str,
        request_hash: bytes,
        deadline: dt.datetime | None,
        lease_to: tuple[str, float] | None = None,
        inputs: list[catalog_pb2.InputImageRecord] | tuple = (),
        request_body: bytes = b"",
        generation_id: str = "",
        inputs_stored_again: bool = False,
    ) -> tuple[Row, bool]:
        """The new `pending` generation (or already leased to `lease_to`'s worker: then its `job` is
        set), or the earlier one an idempotency key or a repeated `generation_id` points at (then
        True). `inputs_stored_again`: see `Repository.refused_blobs`."""
        if generation_id and not is_id("generation", generation_id):
            raise InvalidArgument(f"{generation_id!r} is not a generation id", field="generation_id")
        spec = _copy(spec)
        spec.priority = spec.priority or DEFAULT_PRIORITY
        if spec.priority not in PRIORITIES:
            raise InvalidArgument(
                f"priority must be one of {', '.join(PRIORITIES)}; got {spec.priority!r}", field="priority"
            )
        if not spec.HasField("seed") and not spec.input:
            raise InvalidArgument(
                "seed is required: the generator picks one when the client gives none (a model-native"
                " request without one leaves it to the model server)"
            )
        # Leasing at once locks the model's servers after the user's counters, the other order from a
        # failing job's: the rare crossing is retried.
        outcome, row = await retry_deadlocks(
            lambda: self.queue.enqueue(
                project_id,
                spec,
                self.policy.priorities,
                (idempotency_key, request_hash) if idempotency_key else None,
                deadline,
                lease_to if lease_to and lease_to[1] > 0 else None,
                inputs,
                request_body,
                generation_id,
                inputs_stored_again,
            )
        )
        if outcome == "being-swept":
            raise _being_swept(row["keys"])
        if outcome == "conflict":
            raise AlreadyExists(
                f"Idempotency-Key {idempotency_key!r} was used within 24 hours for a different request;"
                " use a new key for a new request"
            )
        if outcome == "native-refused":
            raise InvalidArgument(row["why"], field=row["field"])
        if outcome == "needs-user":
            what = "per-user limits" if row["limited"] else "a price per image"
            raise InvalidArgument(
                f"user is required: model {row['model']!r} has {what}, counted per user", field="user"
            )
        if outcome == "over-limit":
            daily_reset, monthly_reset = period_resets(row["day"])
            period, reset = ("daily", daily_reset) if row["period"] == "day" else ("monthly", monthly_reset)
            raise QuotaExceeded(
                f"user {spec.user!r} reached the {period} limit of {row['limit']} images for model"
                f" {row['model']!r}; it resets at {reset.isoformat().replace('+00:00', 'Z')}",
                subject=f"user:{spec.user}/model:{row['model']}/{period}",
            )
        if outcome == "unpaid":
            raise FailedPrecondition(
                f"user {spec.user!r} has too few credits: this generation costs {row['cost']}"
                f" (model {row['model']!r}); add credits with PUT /api/credits"
            )
        if outcome == "no-model":
            available = ", ".join(m["name"] for m in await self.repo.list_models(project_id))
            raise NotFound(f"model {spec.model!r} not found; this project has: {available}", field="model")
        if row is None:
            raise NotFound("the generation this Idempotency-Key created has been deleted")
        return row, outcome == "replayed"

    async def claim_jobs(
        self, worker_id: str, max_jobs: int, lease_seconds: float, wait_seconds: float
    ) -> tuple[list[Row], list[Row]]:
        """Jobs for the worker, waiting up to `wait_seconds` for one; and servers it should probe."""
        if max_jobs <= 0 or lease_seconds <= 0:
            raise InvalidArgument("max_jobs and lease_seconds must be positive")

        async def look() -> tuple[list[Row], list[Row]] | None:
            await self._housekeeping()
            probes = await self._due_probes()
            jobs = await self.queue.claim(worker_id, max_jobs, lease_seconds)
            return (jobs, probes) if jobs or probes else None

        return await self._wait_for_work("imagegen_jobs", wait_seconds, look) or ([], [])

    async def _wait_for_work(self, channel: str, wait_seconds: float, look: Callable[[], Awaitable[T]]) -> T:
        """What `look` finds (anything but None or empty), looking again when `channel` is notified, and
        at least every half second (backoff delays and lease expiries are not notified), for at most
        `wait_seconds`; then its last answer."""
        deadline = time.monotonic() + max(wait_seconds, 0)
        with self.notifier.subscribe(channel) as notified:
            while True:
                found = await look()
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    return found
                await wait_for(notified, min(remaining, 0.5))

    async def _due_probes(self) -> list[Row]:
        now = time.monotonic()
        if now < self._next_probe_check:
            return []
        self._next_probe_check = now + 1.0
        return await self.queue.due_probes(self.policy.bench_seconds)

    async def _housekeeping(self) -> None:
        """Requeues jobs whose worker vanished and drops queued jobs nobody waits for; at most once a
        second per catalog, and cheap when there is nothing to do."""
        now = time.monotonic()
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + 1.0
        await self.queue.refresh_statistics()
        async with self.queue.pool.connection() as conn, conn.transaction():
            if now >= self._next_watch_cleanup:
                self._next_watch_cleanup = now + 3600.0
                await forget_stale_watches(conn)
            for job in await self.queue.expired_leases(conn):
                if job["attempts"] >= self.policy.max_attempts:
                    await self.repo.finish(
                        conn,
                        job["generation_id"],
                        "failed",
                        None,
                        f"the worker running it stopped answering {job['attempts']} times",
                        [],
                    )
                else:
                    await self.queue.requeue(
                        conn, job, "the worker stopped answering", 0, server_failed=False
                    )
                log.warning(
                    "lease expired",
                    extra={"fields": {"generation_id": job["generation_id"], "worker": job["worker_id"]}},
                )
            for job in await self.queue.abandoned(conn, self.policy.queue_timeout_seconds):
                if job["caller_gone"]:
                    status, reason = "cancelled", "the caller stopped waiting before a server was free"
                else:
                    status = "failed"
                    reason = f"no server could take it within {self.policy.queue_timeout_seconds:.0f} s"
                    if job["last_error"]:
                        reason += f"; last error: {job['last_error']}"
                await self.repo.finish(conn, job["generation_id"], status, None, reason, [])

    async def renew_leases(
        self, worker_id: str, generation_ids: list[str], lease_seconds: float
    ) -> list[str]:
        if not generation_ids:
            return []
        return await self.queue.renew(worker_id, generation_ids, lease_seconds)

    async def release_jobs(self, worker_id: str, generation_ids: list[str]) -> None:
        if generation_ids:
            await self.queue.release(worker_id, generation_ids)

    async def complete_jobs(self, completions: list[Outcome]) -> list[Row | DomainError]:
        """Records each completed job, or answers why not, in the order given."""
        if len({c.generation_id for c in completions}) != len(completions):
            raise InvalidArgument("each generation may be completed only once per request")
        if not completions:
            return []
        recorded, refused = await self.queue.complete(
            [
                Outcome(
                    c.generation_id, "completed", c.server_id or None, "", c.images, c.archive, c.stored_again
                )
                for c in completions
            ]
        )
        answers: list[Row | DomainError] = []
        for completion in completions:
            generation_id = completion.generation_id
            if generation_id in recorded:
                answers.append(recorded[generation_id])
            elif refused[generation_id] and refused[generation_id] not in TERMINAL_STATUSES:
                # Left unfinished only when a sweep is deleting one of its images' blobs.
                answers.append(_being_swept([image["storage_key"] for image in completion.images]))
            elif refused[generation_id]:
                answers.append(
                    FailedPrecondition(f"generation {generation_id} is already {refused[generation_id]}")
                )
            else:
                answers.append(NotFound(f"generation {generation_id} not found"))
        return answers

    async def fail_job(
        self, worker_id: str, generation_id: str, server_id: str, reason: str, kind: str
    ) -> Row:
        """`kind` is "model" (fail now), "server" (retry elsewhere, bench the server) or "transient"
        (imagegen's own trouble, storage say: retried within the lost-worker budget, blaming no server)."""
        policy = self.policy
        async with self.queue.pool.connection() as conn, conn.transaction():
            job = await self.queue.locked_job(conn, generation_id, worker_id)
            if job is None:
                # Cancelled, finished, or claimed again after this worker's lease ran out: not its to fail.
                status = await self.repo.status_of(conn, generation_id)
                if status is None:
                    raise NotFound(f"generation {generation_id} not found")
                raise FailedPrecondition(f"generation {generation_id} is no longer held by {worker_id}")
            if kind == "transient":
                if job["attempts"] >= policy.max_attempts:
                    reason = f"gave up after {job['attempts']} attempts; last: {reason}"
                    return await self.repo.finish(conn, generation_id, "failed", None, reason, [])
                await self.queue.requeue(
                    conn, job, reason, policy.retry_delay(job["attempts"]), server_failed=False
                )
            else:
                if kind == "server":
                    await self.queue.server_failed(
                        conn, server_id, reason, policy.bench_after_failures, policy.bench_seconds
                    )
                retries = job["server_failures"] + 1
                if kind == "model" or retries >= policy.max_server_failures:
                    if kind != "model":
                        reason = (
                            f"gave up after {retries} failed attempts on the model's servers; last: {reason}"
                        )
                    return await self.repo.finish(
                        conn, generation_id, "failed", server_id or None, reason, []
                    )
                await self.queue.requeue(conn, job, reason, policy.retry_delay(retries), server_failed=True)
        return await self.queue.generation(generation_id)

    async def report_probe(self, server_id: str, ok: bool, error: str) -> None:
        await self.queue.probe_result(server_id, ok, error)

    async def cancel(self, project_id: str, generation_id: str, reason: str) -> Row:
        await retry_deadlocks(lambda: self._cancel(project_id, generation_id, reason))
        return await self.get_generation(project_id, generation_id)

    async def _cancel(self, project_id: str, generation_id: str, reason: str) -> None:
        async with self.queue.pool.connection() as conn, conn.transaction():
            status = await self.repo.lock_status(conn, project_id, generation_id)
            if status is None:
                raise NotFound(f"generation {generation_id} not found")
            if status in TERMINAL_STATUSES:
                raise FailedPrecondition(
                    f"generation {generation_id} is already {status}; only pending or processing"
                    " generations can be cancelled"
                )
            await self.repo.finish(
                conn, generation_id, "cancelled", None, reason or "cancelled by the caller", []
            )

    async def queue_summary(self, project_id: str | None) -> list[Row]:
        """The queue now, per project, model and priority (every project's with None): what the console
        shows and the queue gauges read."""
        return await self.queue.summary(project_id)

    async def server_states(self) -> list[Row]:
        """Every model server: its model, project, bench state, jobs running, failures in a row."""
        return await self.queue.server_states()

    async def backlogs(self) -> dict[str, int]:
        return await self.queue.backlogs()

    async def report_progress(self, worker_id: str, reports: list[catalog_pb2.JobProgress]) -> None:
        reports = [r for r in reports if math.isfinite(r.progress)]
        for report in reports:
            if len(report.preview) > MAX_PREVIEW_BYTES:
                # A preview is a courtesy: an oversized one is dropped, the progress kept.
                report.ClearField("preview")
        if reports:
            await self.queue.report_progress(worker_id, reports)

    async def watch(
        self, project_id: str, generation_id: str, terminal_only: bool = False, previews: bool = False
    ) -> AsyncIterator[Row]:
        """The generation now, then whenever its status, queue position or progress changes (at most
        every WATCH_INTERVAL_SECONDS), ending after a terminal status; with `terminal_only`, only that
        last one, and the generation is read whole only then. With `previews`, a running job's latest
        preview image rides on the first event after it changes."""
        async with (
            self.notifier.watching(self.repo.pool, generation_id) as changed,
            AsyncExitStack() as queues,
        ):
            row = await self.get_generation(project_id, generation_id)
            if terminal_only:
                while row["status"] not in TERMINAL_STATUSES:
                    # A notification lost to a reconnect costs at most this long.
                    await wait_for(changed, 2.0)
                    status = await self.repo.generation_status(project_id, generation_id)
                    if status is None or status in TERMINAL_STATUSES:
                        row = await self._still_there(project_id, generation_id)
                yield row
                return
            shown, preview_shown, sent_at = None, None, -1.0
            watched_queue = None
            while True:
                if row["status"] == "pending" and row["model_id"] != watched_queue:
                    # Jobs ahead of it start or leave under other generations' ids.
                    queues.enter_context(self.notifier.also(changed, "imagegen_queue", row["model_id"]))
                    watched_queue = row["model_id"]
                if previews and row["status"] == "processing":
                    preview = await self.queue.preview(generation_id)
                    if preview is not None and preview["updated_at"] != preview_shown:
                        preview_shown = preview["updated_at"]
                        row["preview"], row["preview_content_type"] = preview["data"], preview["content_type"]
                view = tuple(row.get(key) for key in _WATCHED) + (row.get("preview") is not None,)
                if view != shown:
                    shown, sent_at = view, time.monotonic()
                    yield row
                if row["status"] in TERMINAL_STATUSES:
                    return
                await wait_for(changed, 2.0)
                row = await self._still_there(project_id, generation_id)
                too_soon = sent_at + WATCH_INTERVAL_SECONDS - time.monotonic()
                if row["status"] == shown[0] and too_soon > 0:
                    # Every status is sent; positions and progress that change faster than a watcher
                    # can use are folded into the next event.
                    await asyncio.sleep(too_soon)
                    changed.clear()
                    row = await self._still_there(project_id, generation_id)

    async def _still_there(self, project_id: str, generation_id: str) -> Row:
        row = await self.repo.get_generation(project_id, generation_id)
        if row is None:
            raise NotFound(f"generation {generation_id} was deleted")
        return row

    # -- webhooks ----------------------------------------------------------------------------------

    async def claim_deliveries(
        self, max_deliveries: int, lease_seconds: float, wait_seconds: float
    ) -> list[Row]:

        async def look() -> list[Row]:
            ready = []
            for delivery in await self.webhooks.claim(max(max_deliveries, 1), lease_seconds):
                if delivery["generation"] is None:
                    await self.webhooks.record(delivery["id"], False, 0, "generation deleted", None)
                    continue
                if not delivery["webhook_secret"]:
                    delivery["webhook_secret"] = await self.webhook_secret(delivery["project_id"])
                ready.append(delivery)
            return ready

        return await self._wait_for_work("imagegen_webhooks", wait_seconds, look)

    async def report_delivery(self, delivery_id: str, delivered: bool, status_code: int, error: str) -> None:
        retry_in = None
        if not delivered:
            attempts, event = await self.webhooks.attempts(delivery_id)
            steps = self.policy.webhook_retry_steps
            if attempts <= len(steps) and event != "progress":
                retry_in = steps[attempts - 1] * self.policy.webhook_retry_unit_seconds
        await self.webhooks.record(delivery_id, delivered, status_code, error[:1000], retry_in)
        if not delivered:
            log.info(
                "webhook delivery failed",
                extra={"fields": {"delivery": delivery_id, "status": status_code, "retry_in": retry_in}},
            )

    # -- Arweave -----------------------------------------------------------------------------------

    async def claim_arweave_archives(
        self, max_archives: int, lease_seconds: float, wait_seconds: float
    ) -> list[Row]:

        async def look() -> list[Row]:
            ready = []
            for archive in await self.archives.claim(min(max(max_archives, 1), 64), lease_seconds):
                if archive["used"]:
                    ready.append(archive)
                else:
                    # Posting it now would publish, for ever, an image its owner deleted.
                    await self.archives.record(
                        archive["storage_key"],
                        "abandoned",
                        archive["transaction"],
                        archive["url"],
                        "no generation uses this image any more",
                        0,
                    )
            return ready

        return await self._wait_for_work("imagegen_arweave", wait_seconds, look)

    async def report_arweave_archive(
        self, storage_key: str, state: str, transaction: str, url: str, error: str, retry_in: float
    ) -> None:
        if state not in ARWEAVE_REPORTED_STATES:
            raise InvalidArgument(
                f"state must be one of {', '.join(ARWEAVE_REPORTED_STATES)}; got {state!r}", field="state"
            )
        if transaction:
            try:
                json.loads(transaction)
            except ValueError as exc:
                raise InvalidArgument(
                    f"transaction_json is not JSON: {exc}", field="transaction_json"
                ) from exc
        recorded = await self.archives.record(
            storage_key, state, transaction or None, url, error[:1000], min(max(retry_in, 0.0), 86400.0)
        )
        if not recorded:
            raise NotFound(f"no Arweave archive for {storage_key!r}")

    async def get_generation(self, project_id: str, generation_id: str) -> Row:
        row = await self.repo.get_generation(project_id, generation_id)
        if row is None:
            raise NotFound(f"generation {generation_id} not found")
        return row

    async def list_generations(
        self, project_id: str, filters: dict[str, str], page_size: int, page_token: str
    ) -> Page:
        if filters.get("status") and filters["status"] not in STATUSES:
            raise InvalidArgument(
                f"status must be one of {', '.join(STATUSES)}; got {filters['status']!r}", field="status"
            )
        size = clamp_page_size(page_size)
        cursor, newer = decode_page_token(page_token) if page_token else (None, False)
        rows = await self.repo.list_generations(project_id, filters, cursor, newer, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        if newer:
            rows.reverse()
            previous_token = encode_page_token(rows[0], newer=True) if more else ""
            next_token = encode_page_token(rows[-1], newer=False) if rows else ""
        else:
            next_token = encode_page_token(rows[-1], newer=False) if more else ""
            previous_token = encode_page_token(rows[0], newer=True) if rows and cursor is not None else ""
        return Page(rows=rows, next_token=next_token, previous_token=previous_token, page_size=size)

    async def delete_generation(self, project_id: str, generation_id: str) -> list[str]:
        orphaned = await retry_deadlocks(lambda: self.repo.delete_generation(project_id, generation_id))
        if orphaned is None:
            raise NotFound(f"generation {generation_id} not found")
        return orphaned

    async def erase_user(self, project_id: str, user: str) -> Row:
        check_user(user)
        return await retry_deadlocks(lambda: self.repo.erase_user(project_id, user))

    async def permanent_image(self, permanent_key: str) -> Row:
        row = await self.repo.permanent_image(permanent_key)
        if row is None:
            raise NotFound("no image has this permanent URL")
        return row

    async def note_unused_blobs(self, keys: list[str], at_once: bool = False) -> None:
        await self.repo.note_unused(_blob_batch(keys), at_once)

    async def adopt_orphan_blobs(self, keys: list[str]) -> list[str]:
        return await self.repo.adopt_orphans(_blob_batch(keys))

    async def record_upload(
        self, project_id: str, image: catalog_pb2.InputImageRecord, ttl_seconds: float, stored_again: bool
    ) -> Row:
        if not STORAGE_KEY.match(image.storage_key):
            raise InvalidArgument("an upload needs the storage key its bytes were stored under")
        if not 0 < ttl_seconds <= MAX_UPLOAD_TTL_SECONDS:
            raise InvalidArgument(f"an upload lives between 0 and {MAX_UPLOAD_TTL_SECONDS} seconds")
        row = await self.repo.record_upload(
            project_id,
            {column: getattr(image, column) for column in UPLOAD_IMAGE_COLUMNS},
            ttl_seconds,
            stored_again,
        )
        if row is None:
            raise _being_swept([image.storage_key])
        return row

    async def uploads(self, project_id: str, ids: list[str]) -> list[Row]:
        """The uploads, in the order asked; the first one that is not the project's (or has expired)
        answers NOT_FOUND by its id."""
        found = await self.repo.uploads(project_id, list(dict.fromkeys(ids)))
        for upload_id in ids:
            if upload_id not in found:
                raise NotFound(f"upload {upload_id[:40]!r} not found (uploads expire after a day)")
        return [found[upload_id] for upload_id in ids]

    async def claim_unused_blobs(self, max_keys: int) -> dict[str, Row]:
        return await self.repo.claim_unused(
            min(max(max_keys, 1), MAX_BLOB_BATCH),
            self.policy.unused_blob_grace_seconds,
            self.policy.sweeps,
        )

    async def end_blob_sweep(self, deleted: dict[str, dt.datetime], kept: list[str]) -> None:
        _blob_batch([*deleted, *kept], field="deleted")
        await self.repo.end_sweep(deleted, kept)

    async def blobs_being_swept(self, keys: list[str]) -> list[str]:
        return await self.repo.blobs_being_swept(_blob_batch(keys))


def _blob_batch(keys: list[str], field: str = "storage_keys") -> list[str]:
    if len(keys) > MAX_BLOB_BATCH:
        raise InvalidArgument(f"send at most {MAX_BLOB_BATCH} storage keys at a time", field=field)
    return keys


def _being_swept(keys: list[str]) -> Aborted:
    return Aborted(
        f"a sweep is deleting, or deleted, the stored bytes of {', '.join(sorted(set(keys)))}: once"
        " BlobsBeingSwept answers none of them, store them again and ask again with stored_again"
    )


def _copy(spec: catalog_pb2.GenerationSpec) -> catalog_pb2.GenerationSpec:
    copied = catalog_pb2.GenerationSpec()
    copied.CopyFrom(spec)
    return copied
