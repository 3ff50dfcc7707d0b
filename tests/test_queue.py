"""The job queue over real gRPC and real Postgres: score order, leases, exact server concurrency,
failover and the bench, cancel, watch, idempotency and the webhook outbox."""

from __future__ import annotations

import asyncio
import collections
import time

import grpc
import psycopg
import pytest
from imagegen.catalog.v1 import catalog_pb2

from services.catalog.domain import QueuePolicy
from services.catalog.queue import RECENT_REQUESTS
from services.common.ids import new_id
from tests.conftest import create_project
from tests.test_catalog import KEY_A, KEY_B, _claim, _create, _image, catalog

_STATUS = {status.value[0]: status for status in grpc.StatusCode}


def _auth(key: str):
    return (("authorization", f"Bearer {key}"),)


async def _model(
    public, key: str, name: str, servers: list[tuple[str, int]], provider: str = "automatic1111"
):
    return await public.CreateModel(
        catalog_pb2.CreateModelRequest(
            name=name,
            provider=provider,
            servers=[catalog_pb2.ServerSpec(url=u, max_concurrency=c, api_key="secret") for u, c in servers],
        ),
        metadata=_auth(key),
    )


def _fail(worker: str, job, kind=catalog_pb2.FAILURE_KIND_SERVER, reason="HTTP 502"):
    return catalog_pb2.FailJobRequest(
        worker_id=worker, generation_id=job.generation.id, server_id=job.server.id, reason=reason, kind=kind
    )


def test_a_thousand_mixed_jobs_drain_in_score_order_and_lows_never_starve_a_high(database_url):
    project_id, key = create_project(database_url)
    policy = QueuePolicy(priorities=QueuePolicy().priorities)

    async def scenario():
        async with catalog(database_url, queue=policy) as (internal, public):
            await _model(public, key, "wide", [("http://gpu-a:9", 1000)])
            expected = {}
            # Users "heavy-*" pass the daily thresholds early, so their later medium and low jobs score lower.
            for i in range(1000):
                priority = ("low", "medium", "high")[(i * 7) % 3]
                user = f"heavy-{i % 3}" if i % 5 else f"light-{i}"
                created = await internal.EnqueueGeneration(
                    _create(project_id, model="wide", user=user, priority=priority)
                )
                expected[created.generation.id] = (priority, user, i)
            order = []
            while len(order) < 1000:
                jobs = await _claim(internal, max_jobs=10)
                assert jobs, "a job was left behind"
                order += [job.generation.id for job in jobs]
            assert sorted(order) == sorted(expected)

        with psycopg.connect(database_url) as conn:
            # The queue keeps each job's score only while it waits; recompute it from the rules.
            counts = collections.Counter()
            scores = {}
            for generation_id, (priority, user, _) in sorted(expected.items(), key=lambda kv: kv[1][2]):
                scores[generation_id] = policy.priorities.score(priority, counts[user])
                counts[user] += 1
            assert conn.execute("SELECT count(*) FROM jobs WHERE state = 'running'").fetchone()[0] == 1000
        ranked = [(scores[g], expected[g][2]) for g in order]
        assert ranked == sorted(ranked, key=lambda r: (-r[0], r[1])), "claimed out of score order"
        assert {s for s, _ in ranked} == {100, 80, 50, 20, 1}
        first_low = next(i for i, (s, _) in enumerate(ranked) if s in (20, 1))
        assert all(s in (20, 1) for s, _ in ranked[first_low:]), "a low job ran before a high or medium one"

    asyncio.run(scenario())


def test_a_late_high_job_overtakes_a_backlog_of_lows(database_url):
    project_id, key = create_project(database_url)

    async def scenario():
        async with catalog(database_url) as (internal, public):
            await _model(public, key, "one-slot", [("http://gpu-a:9", 1)])
            for _ in range(50):
                await internal.EnqueueGeneration(_create(project_id, model="one-slot", priority="low"))
            (running,) = await _claim(internal, max_jobs=5)
            high = await internal.EnqueueGeneration(_create(project_id, model="one-slot", priority="high"))
            assert await _claim(internal, max_jobs=5) == [], "the server has no free slot"
            await internal.CompleteJob(
                catalog_pb2.CompleteJobRequest(
                    generation_id=running.generation.id, server_id=running.server.id, images=[_image(KEY_A)]
                )
            )
            (nxt,) = await _claim(internal, max_jobs=5)
            assert nxt.generation.id == high.generation.id

    asyncio.run(scenario())


def test_max_concurrency_holds_across_concurrent_claimers_and_load_goes_to_the_least_busy(database_url):
    project_id, key = create_project(database_url)

    async def scenario():
        async with catalog(database_url) as (internal, public):
            model = await _model(public, key, "pair", [("http://gpu-a:9", 2), ("http://gpu-b:10", 3)])
            for _ in range(30):
                await internal.EnqueueGeneration(_create(project_id, model="pair"))
            claims = await asyncio.gather(*(_claim(internal, f"wrk_{i}", max_jobs=4) for i in range(8)))
            jobs = [job for claim in claims for job in claim]
            per_server = collections.Counter(job.server.id for job in jobs)
            limits = {s.id: s.max_concurrency for s in model.servers}
            assert per_server == limits, "each server runs exactly up to its maxConcurrency, never more"
            assert all(job.server.api_key == "secret" for job in jobs)
            listed = await public.GetModel(catalog_pb2.GetModelRequest(name="pair"), metadata=_auth(key))
            assert [s.outstanding for s in listed.servers] == [2, 3]
            # One finishes: exactly one more job can start, on the server that freed up.
            done = jobs[0]
            await internal.CompleteJob(
                catalog_pb2.CompleteJobRequest(
                    generation_id=done.generation.id, server_id=done.server.id, images=[_image(KEY_A)]
                )
            )
            more = await _claim(internal, max_jobs=10)
            assert [job.server.id for job in more] == [done.server.id]

    asyncio.run(scenario())


def test_server_failures_retry_elsewhere_then_bench_the_server_until_a_probe_succeeds(database_url):
    project_id, key = create_project(database_url)
    policy = QueuePolicy(retry_base_seconds=0.01, bench_after_failures=2, bench_seconds=0.5)

    async def scenario():
        async with catalog(database_url, queue=policy) as (internal, public):
            model = await _model(public, key, "pair", [("http://gpu-a:9", 5), ("http://gpu-b:10", 5)])
            bad, good = model.servers
            for _ in range(2):
                await internal.EnqueueGeneration(_create(project_id, model="pair"))
            jobs = await _claim(internal, max_jobs=2)
            assert sorted(job.server.id for job in jobs) == sorted([bad.id, good.id]), "least outstanding"
            failing = next(job for job in jobs if job.server.id == bad.id)
            retried = await internal.FailJob(_fail("wrk_test", failing))
            assert retried.status == "pending", "a server failure costs the job only time"
            await asyncio.sleep(0.05)
            (again,) = await _claim(internal)
            assert again.server.id == good.id, "the retry avoids the server that just failed"
            # A second failure in a row benches the bad server: new jobs go to the good one only.
            await internal.FailJob(_fail("wrk_test", again, reason="connection refused"))
            listed = await public.GetModel(catalog_pb2.GetModelRequest(name="pair"), metadata=_auth(key))
            assert [s.status for s in listed.servers] == ["healthy", "healthy"], "one failure per server"
            await asyncio.sleep(0.05)
            (third,) = await _claim(internal)
            await internal.FailJob(_fail("wrk_test", third))
            listed = await public.GetModel(catalog_pb2.GetModelRequest(name="pair"), metadata=_auth(key))
            benched = {s.id: s.status for s in listed.servers}
            assert "benched" in benched.values()
            benched_id = next(i for i, status in benched.items() if status == "benched")
            await asyncio.sleep(1.1)  # the cool-down, and the catalog looks for due probes once a second
            answer = await internal.ClaimJobs(
                catalog_pb2.ClaimJobsRequest(worker_id="wrk_test", max_jobs=5, lease_seconds=30)
            )
            assert [p.id for p in answer.probes] == [benched_id]
            assert all(job.server.id != benched_id for job in answer.jobs)
            await internal.ReportProbe(catalog_pb2.ReportProbeRequest(server_id=benched_id, ok=True))
            listed = await public.GetModel(catalog_pb2.GetModelRequest(name="pair"), metadata=_auth(key))
            assert [s.status for s in listed.servers] == ["healthy", "healthy"]

    asyncio.run(scenario())


def test_a_job_fails_with_a_reason_after_too_many_server_failures_or_lost_workers(database_url):
    project_id, key = create_project(database_url)
    policy = QueuePolicy(
        retry_base_seconds=0.01, max_server_failures=2, max_attempts=2, bench_after_failures=99
    )

    async def scenario():
        async with catalog(database_url, queue=policy) as (internal, public):
            await _model(public, key, "solo", [("http://gpu-a:9", 5)])
            created = await internal.EnqueueGeneration(_create(project_id, model="solo"))
            (job,) = await _claim(internal)
            await internal.FailJob(_fail("wrk_test", job))
            await asyncio.sleep(0.05)
            (job,) = await _claim(internal)
            failed = await internal.FailJob(_fail("wrk_test", job, reason="HTTP 503: overloaded"))
            assert failed.status == "failed" and "HTTP 503: overloaded" in failed.reason

            lost = await internal.EnqueueGeneration(_create(project_id, model="solo"))
            for attempt in (1, 2):
                # Each claim first requeues jobs whose lease ran out (at most once a second).
                (job,) = await _claim(internal, lease=0.1)
                assert (job.generation.id, job.attempt) == (lost.generation.id, attempt)
                await asyncio.sleep(1.2)
            assert await _claim(internal) == []
            record = await internal.GetGeneration(
                catalog_pb2.GetGenerationRequest(project_id=project_id, id=lost.generation.id)
            )
            assert record.status == "failed" and "stopped answering 2 times" in record.reason
            # A refusal by the model fails at once.
            refused = await internal.EnqueueGeneration(_create(project_id, model="solo"))
            (job,) = await _claim(internal)
            done = await internal.FailJob(
                _fail("wrk_test", job, catalog_pb2.FAILURE_KIND_MODEL, "prompt rejected by the safety system")
            )
            assert done.status == "failed" and done.reason == "prompt rejected by the safety system"
            assert created.generation.id != refused.generation.id

    asyncio.run(scenario())


def test_cancel_watch_and_renew(database_url):
    project_id, _ = create_project(database_url)

    async def scenario():
        async with catalog(database_url) as (internal, _):
            created = await internal.EnqueueGeneration(_create(project_id))
            generation_id = created.generation.id
            statuses, finished_only = [], []

            async def watch(terminal_only: bool, seen: list[str]):
                call = internal.WatchGeneration(
                    catalog_pb2.WatchGenerationRequest(
                        project_id=project_id, id=generation_id, terminal_only=terminal_only
                    )
                )
                async for record in call:
                    seen.append(record.status)

            watcher = asyncio.create_task(watch(False, statuses))
            terminal_watcher = asyncio.create_task(watch(True, finished_only))
            await asyncio.sleep(0.2)
            (job,) = await _claim(internal, "wrk_a")
            lost = await internal.RenewLeases(
                catalog_pb2.RenewLeasesRequest(
                    worker_id="wrk_a", generation_ids=[generation_id], lease_seconds=30
                )
            )
            assert list(lost.lost_generation_ids) == []
            cancelled = await internal.CancelGeneration(
                catalog_pb2.CancelGenerationRequest(
                    project_id=project_id, id=generation_id, reason="user left"
                )
            )
            assert cancelled.status == "cancelled" and cancelled.reason == "user left"
            await asyncio.wait_for(watcher, 5)
            await asyncio.wait_for(terminal_watcher, 5)
            assert statuses == ["pending", "processing", "cancelled"]
            assert finished_only == ["cancelled"], "a sync waiter is sent the end only"
            lost = await internal.RenewLeases(
                catalog_pb2.RenewLeasesRequest(
                    worker_id="wrk_a", generation_ids=[generation_id], lease_seconds=30
                )
            )
            assert list(lost.lost_generation_ids) == [generation_id], "the worker hears it must stop"
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await internal.CancelGeneration(
                    catalog_pb2.CancelGenerationRequest(project_id=project_id, id=generation_id)
                )
            assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await internal.CompleteJob(
                    catalog_pb2.CompleteJobRequest(generation_id=generation_id, images=[_image(KEY_A)])
                )
            assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    asyncio.run(scenario())


def test_an_enqueue_sent_again_with_its_id_answers_the_first_and_leases_at_enqueue_only_in_line(database_url):
    """A caller that lost the answer sends the same enqueue again: it gets what the first committed, and
    the lease the first took for its worker goes back to the queue. A lease at enqueue is taken only
    while no other job of the model waits."""
    project_id, _ = create_project(database_url)

    async def scenario():
        async with catalog(database_url) as (internal, _):
            lease = {"claim_for_worker": "wrk_sync", "lease_seconds": 30.0}
            generation_id = new_id("generation")
            again_request = _create(project_id, generation_id=generation_id, **lease)
            first = await internal.EnqueueGeneration(again_request)
            assert first.HasField("job") and first.generation.status == "processing"
            again = await internal.EnqueueGeneration(again_request)
            assert again.replayed and again.generation.id == first.generation.id
            assert not again.HasField("job")
            # The first lease went back: another worker claims the job.
            (claimed,) = await _claim(internal, worker="wrk_other")
            assert claimed.generation.id == generation_id
            # A job waiting in the queue comes first: the next sync enqueue is not leased past it.
            waiting = await internal.EnqueueGeneration(_create(project_id))
            assert not waiting.HasField("job")
            behind = await internal.EnqueueGeneration(_create(project_id, **lease))
            assert not behind.HasField("job") and behind.generation.status == "pending"
            (next_claimed,) = await _claim(internal, worker="wrk_other")
            assert next_claimed.generation.id == waiting.generation.id

    asyncio.run(scenario())
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM generations").fetchone()[0] == 3


def test_a_finished_job_wakes_claimers_only_when_a_job_waits(database_url):
    """Every idle worker's claim wakes on `imagegen_jobs`: a completion that frees a slot nobody is
    waiting for must not wake them all for nothing, and one that a queued job waits for must."""
    project_id, _ = create_project(database_url)

    def notified(listener: psycopg.Connection) -> int:
        return sum(1 for _ in listener.notifies(timeout=0.5, stop_after=1))

    async def scenario(listener: psycopg.Connection):
        async with catalog(database_url) as (internal, _):

            async def run_one():
                enqueued = await internal.EnqueueGeneration(_create(project_id))
                notified(listener)  # the enqueue's own wake-up
                (job,) = await _claim(internal)
                assert job.generation.id == enqueued.generation.id
                return job

            job = await run_one()
            await internal.CompleteJob(
                catalog_pb2.CompleteJobRequest(generation_id=job.generation.id, images=[_image(KEY_A)])
            )
            assert notified(listener) == 0, "a completion woke the claimers with nothing queued"
            job = await run_one()
            await internal.EnqueueGeneration(_create(project_id))
            notified(listener)
            await internal.CompleteJob(
                catalog_pb2.CompleteJobRequest(generation_id=job.generation.id, images=[_image(KEY_B)])
            )
            assert notified(listener) == 1, "a completion left a queued job's claimers asleep"

    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN imagegen_jobs")
        asyncio.run(scenario(listener))


def _notifications(listener: psycopg.Connection) -> int:
    """How many notifications the listener heard within half a second."""
    return sum(1 for _ in listener.notifies(timeout=0.5))


async def _complete(internal, generation_id: str, key: str) -> None:
    await internal.CompleteJob(
        catalog_pb2.CompleteJobRequest(generation_id=generation_id, images=[_image(key)])
    )


async def _enqueue_leased(internal, project_id: str):
    """A sync create's enqueue: its job leased at once to the worker that will answer it."""
    return await internal.EnqueueGeneration(
        _create(project_id, claim_for_worker="wrk_sync", lease_seconds=30)
    )


def test_queue_watchers_hear_only_of_changes_that_move_a_queue_position(database_url):
    """A pending generation's watcher follows its model's queue (`imagegen_queue`), where positions count
    queued jobs only: a job leased as it is created, and a running job that finishes, move none and
    must not wake every catalog's watchers (nor take Postgres's notify lock at their commit)."""
    project_id, _ = create_project(database_url)

    async def scenario(listener: psycopg.Connection):
        async with catalog(database_url) as (internal, _):
            leased = await _enqueue_leased(internal, project_id)
            assert leased.HasField("job") and _notifications(listener) == 0, (
                "a job leased at once moved no one"
            )
            await _complete(internal, leased.generation.id, KEY_A)
            assert _notifications(listener) == 0, "a running job that finished moved no one"

            await internal.EnqueueGeneration(_create(project_id))
            assert _notifications(listener) == 1, "a queued job moves those behind it"
            (claimed,) = await _claim(internal)
            assert _notifications(listener) == 1, "so does one leaving the queue"
            await _complete(internal, claimed.generation.id, KEY_B)
            assert _notifications(listener) == 0

    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN imagegen_queue")
        asyncio.run(scenario(listener))


def test_a_generation_s_changes_notify_only_while_someone_watches_it(database_url):
    """Every catalog's listener wakes at each `imagegen_generation` notification: a sync create's job,
    which its own worker answers, must not send one, and a watched generation's changes must reach
    its watcher at once (not at its periodic re-read)."""
    project_id, _ = create_project(database_url)

    def watches() -> int:
        with psycopg.connect(database_url) as conn:
            return conn.execute("SELECT count(*) FROM generation_watches").fetchone()[0]

    async def scenario(listener: psycopg.Connection):
        async with catalog(database_url) as (internal, _):
            leased = await _enqueue_leased(internal, project_id)
            await _complete(internal, leased.generation.id, KEY_A)
            assert _notifications(listener) == 0, "a generation nobody watched notified every catalog"

            queued = await internal.EnqueueGeneration(_create(project_id))
            watch = internal.WatchGeneration(
                catalog_pb2.WatchGenerationRequest(project_id=project_id, id=queued.generation.id)
            )
            seen = [(await watch.read()).status]
            assert watches() == 1
            (job,) = await _claim(internal)
            started = time.monotonic()
            seen.append((await watch.read()).status)
            await _complete(internal, job.generation.id, KEY_B)
            seen.append((await watch.read()).status)
            assert time.monotonic() - started < 1.5, "the watcher waited for its re-read"
            assert seen == ["pending", "processing", "completed"]
            assert _notifications(listener) == 2
            assert await watch.read() == grpc.aio.EOF
            assert watches() == 0, "a watch that ended is no longer marked"

    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN imagegen_generation")
        asyncio.run(scenario(listener))


def test_a_watch_its_catalog_never_ended_is_forgotten_after_a_day(database_url):
    """A catalog that dies mid-watch leaves its mark, which would keep the generation notifying."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO generation_watches (generation_id, watch_id, since) VALUES"
            " ('img_left', 'w1', clock_timestamp() - interval '25 hours'),"
            " ('img_live', 'w2', clock_timestamp() - interval '23 hours')"
        )

    async def scenario():
        async with catalog(database_url) as (internal, _):
            await _claim(internal)  # a claim runs the catalog's housekeeping

    asyncio.run(scenario())
    with psycopg.connect(database_url) as conn:
        left = [row[0] for row in conn.execute("SELECT generation_id FROM generation_watches")]
    assert left == ["img_live"]


def test_a_busy_users_recent_requests_are_counted_only_as_far_as_a_score_tells_apart(database_url):
    """Scores need a user's requests of the last 24 hours only up to the thresholds: an enqueue for a
    user with thousands reads a handful of index entries, not thousands (8 ms per enqueue at 50,000)."""
    project_id, _ = create_project(database_url)
    policy = QueuePolicy()
    limit = policy.priorities.counted_up_to
    assert limit > max(policy.priorities.medium_daily_threshold, policy.priorities.low_daily_threshold)

    async def enqueue(internal, priority: str):
        return await internal.EnqueueGeneration(_create(project_id, user="busy", priority=priority))

    async def scenario():
        async with catalog(database_url) as (internal, _):
            await enqueue(internal, "low")
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(
                    "INSERT INTO generations SELECT (jsonb_populate_record(g,"
                    "   jsonb_build_object('id', g.id || '_' || i))).* FROM generations g,"
                    "   generate_series(1, 3000) i WHERE g.end_user = 'busy'"
                )
                (plan,) = conn.execute(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) {RECENT_REQUESTS}", (project_id, "busy", limit)
                ).fetchone()
                (counted,) = conn.execute(RECENT_REQUESTS, (project_id, "busy", limit)).fetchone()

            def rows_read(node) -> list[int]:
                below = (n for child in node.get("Plans", []) for n in rows_read(child))
                return [node["Actual Rows"], *below]

            assert max(rows_read(plan[0]["Plan"])) <= limit, "every recent request was read"
            assert counted == limit
            return [await enqueue(internal, priority) for priority in ("low", "medium", "high")]

    answers = asyncio.run(scenario())
    with psycopg.connect(database_url) as conn:
        scores = dict(
            conn.execute(
                "SELECT generation_id, score FROM jobs WHERE generation_id = ANY(%s)",
                ([a.generation.id for a in answers],),
            ).fetchall()
        )
    # Past both thresholds: low and medium drop to their lower scores.
    assert [scores[a.generation.id] for a in answers] == [1, 50, 100]


def test_idempotency_keys_replay_the_first_generation_and_refuse_a_different_body(database_url):
    project_id, _ = create_project(database_url)

    async def scenario():
        async with catalog(database_url) as (internal, _):
            same = [
                internal.EnqueueGeneration(_create(project_id, idempotency_key="k1", request_hash=b"h1"))
                for _ in range(6)
            ]
            answers = await asyncio.gather(*same)
            assert len({a.generation.id for a in answers}) == 1
            assert sorted(a.replayed for a in answers) == [False] + [True] * 5
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await internal.EnqueueGeneration(
                    _create(project_id, idempotency_key="k1", request_hash=b"h2")
                )
            assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
            other = await internal.EnqueueGeneration(
                _create(project_id, idempotency_key="k2", request_hash=b"h1")
            )
            assert other.generation.id != answers[0].generation.id

    asyncio.run(scenario())
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM generations").fetchone()[0] == 2
        conn.execute("UPDATE idempotency_keys SET created_at = created_at - interval '25 hours'")

    async def after_a_day():
        async with catalog(database_url) as (internal, _):
            fresh = await internal.EnqueueGeneration(
                _create(project_id, idempotency_key="k1", request_hash=b"h2")
            )
            assert not fresh.replayed

    asyncio.run(after_a_day())


def test_webhook_deliveries_are_written_with_the_result_and_retried_with_backoff(database_url):
    project_id, key = create_project(database_url)
    policy = QueuePolicy(webhook_retry_unit_seconds=0.2)

    async def scenario():
        async with catalog(database_url, queue=policy) as (internal, public):
            created = await internal.EnqueueGeneration(
                _create(project_id, callback_url="http://127.0.0.1:9/hook")
            )
            claim = catalog_pb2.ClaimWebhookDeliveriesRequest(max_deliveries=5, lease_seconds=30)
            assert list((await internal.ClaimWebhookDeliveries(claim)).deliveries) == []
            await internal.CompleteJob(
                catalog_pb2.CompleteJobRequest(generation_id=created.generation.id, images=[_image(KEY_A)])
            )
            (delivery,) = (await internal.ClaimWebhookDeliveries(claim)).deliveries
            secret = await public.GetWebhookSecret(catalog_pb2.GetWebhookSecretRequest(), metadata=_auth(key))
            assert delivery.secret == secret.key and secret.key.startswith("whsec_")
            assert delivery.id.startswith("msg_") and delivery.attempt == 1
            assert delivery.generation.status == "completed" and delivery.url == "http://127.0.0.1:9/hook"
            await internal.ReportWebhookDelivery(
                catalog_pb2.ReportWebhookDeliveryRequest(id=delivery.id, status_code=500, error="boom")
            )
            assert list((await internal.ClaimWebhookDeliveries(claim)).deliveries) == [], "not before 1 unit"
            return delivery.id

    delivery_id = asyncio.run(scenario())

    async def after_restart():
        # A new catalog process picks the delivery up again: the outbox is in Postgres.
        async with catalog(database_url, queue=policy) as (internal, _):
            claim = catalog_pb2.ClaimWebhookDeliveriesRequest(
                max_deliveries=5, lease_seconds=30, wait_seconds=3
            )
            (delivery,) = (await internal.ClaimWebhookDeliveries(claim)).deliveries
            assert delivery.id == delivery_id and delivery.attempt == 2
            await internal.ReportWebhookDelivery(
                catalog_pb2.ReportWebhookDeliveryRequest(id=delivery.id, delivered=True, status_code=204)
            )

    asyncio.run(after_restart())
    with psycopg.connect(database_url) as conn:
        state, attempts = conn.execute("SELECT state, attempts FROM webhook_deliveries").fetchone()
        assert (state, attempts) == ("delivered", 2)


def test_models_are_managed_per_project_with_clear_errors(database_url):
    _, key = create_project(database_url)
    _, other_key = create_project(database_url, "other")

    async def scenario():
        async with catalog(database_url) as (_, public):
            created = await _model(public, key, "sdxl", [("http://sd-1:7860/", 2)])
            assert created.id.startswith("mod_") and created.servers[0].id.startswith("srv_")
            assert created.servers[0].url == "http://sd-1:7860"
            bad_requests = [
                catalog_pb2.CreateModelRequest(
                    name="sdxl", provider="automatic1111", servers=[catalog_pb2.ServerSpec(url="http://x")]
                ),
                catalog_pb2.CreateModelRequest(
                    name="a/b", provider="automatic1111", servers=[catalog_pb2.ServerSpec(url="http://x")]
                ),
                catalog_pb2.CreateModelRequest(
                    name="m", provider="midjourney", servers=[catalog_pb2.ServerSpec(url="http://x")]
                ),
                catalog_pb2.CreateModelRequest(name="m", provider="openai", servers=[]),
                catalog_pb2.CreateModelRequest(
                    name="m", provider="openai", servers=[catalog_pb2.ServerSpec(url="ftp://x")]
                ),
                catalog_pb2.CreateModelRequest(
                    name="m",
                    provider="openai",
                    servers=[catalog_pb2.ServerSpec(url="http://x", max_concurrency=5000)],
                ),
            ]
            codes = []
            for request in bad_requests:
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await public.CreateModel(request, metadata=_auth(key))
                codes.append(error.value.code())
            assert codes == [grpc.StatusCode.ALREADY_EXISTS] + [grpc.StatusCode.INVALID_ARGUMENT] * 5
            replaced = await public.ReplaceModelServers(
                catalog_pb2.ReplaceModelServersRequest(
                    name="sdxl", servers=[catalog_pb2.ServerSpec(url="http://sd-2:7860", max_concurrency=4)]
                ),
                metadata=_auth(key),
            )
            assert [(s.url, s.max_concurrency) for s in replaced.servers] == [("http://sd-2:7860", 4)]
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await public.GetModel(catalog_pb2.GetModelRequest(name="sdxl"), metadata=_auth(other_key))
            assert error.value.code() == grpc.StatusCode.NOT_FOUND
            await public.DeleteModel(catalog_pb2.DeleteModelRequest(name="sdxl"), metadata=_auth(key))
            names = await public.ListModels(catalog_pb2.ListModelsRequest(), metadata=_auth(key))
            assert [m.name for m in names.models] == ["procedural"]

    asyncio.run(scenario())


def test_a_batch_of_completions_records_each_job_on_its_own(database_url):
    """CompleteJobs: the jobs still open are recorded with their images, webhooks and server; one that
    was cancelled or never existed is refused on its own line and holds back none of the others."""
    project_id, _ = create_project(database_url)

    async def scenario():
        async with catalog(database_url) as (internal, _):
            hooked = await internal.EnqueueGeneration(
                _create(project_id, callback_url="http://127.0.0.1:9/h")
            )
            plain = await internal.EnqueueGeneration(_create(project_id, prompt="lake 2"))
            cancelled = await internal.EnqueueGeneration(_create(project_id, prompt="lake 3"))
            jobs = {job.generation.id: job for job in await _claim(internal, max_jobs=3)}
            assert set(jobs) == {hooked.generation.id, plain.generation.id, cancelled.generation.id}
            await internal.CancelGeneration(
                catalog_pb2.CancelGenerationRequest(project_id=project_id, id=cancelled.generation.id)
            )

            def done(generation_id, *keys):
                return catalog_pb2.CompleteJobRequest(
                    worker_id="wrk_test",
                    generation_id=generation_id,
                    server_id=jobs[generation_id].server.id if generation_id in jobs else "",
                    images=[_image(k, i) for i, k in enumerate(keys)],
                )

            answer = await internal.CompleteJobs(
                catalog_pb2.CompleteJobsRequest(
                    jobs=[
                        done(hooked.generation.id, KEY_A, KEY_B),
                        done(cancelled.generation.id, KEY_A),
                        done("gen_doesnotexist"),
                        done(plain.generation.id, KEY_B),
                    ]
                )
            )
            codes = [_STATUS[r.code] if r.code else None for r in answer.results]
            assert [r.generation_id for r in answer.results] == [
                hooked.generation.id, cancelled.generation.id, "gen_doesnotexist", plain.generation.id,
            ]  # fmt: skip
            assert codes == [None, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND, None]
            assert "already cancelled" in answer.results[1].message
            first, last = answer.results[0].generation, answer.results[3].generation
            assert first.status == last.status == "completed"
            assert [i.storage_key for i in first.images] == [KEY_A, KEY_B]
            assert first.server_id == jobs[hooked.generation.id].server.id

            stored = await internal.GetGeneration(
                catalog_pb2.GetGenerationRequest(project_id=project_id, id=cancelled.generation.id)
            )
            assert stored.status == "cancelled" and list(stored.images) == [], "a refused job records nothing"
            again = await internal.CompleteJobs(
                catalog_pb2.CompleteJobsRequest(jobs=[done(plain.generation.id, KEY_A)])
            )
            assert _STATUS[again.results[0].code] == grpc.StatusCode.FAILED_PRECONDITION
            claim = catalog_pb2.ClaimWebhookDeliveriesRequest(max_deliveries=5, lease_seconds=30)
            deliveries = (await internal.ClaimWebhookDeliveries(claim)).deliveries
            assert [d.generation.id for d in deliveries] == [hooked.generation.id]

            with pytest.raises(grpc.aio.AioRpcError) as error:
                await internal.CompleteJobs(
                    catalog_pb2.CompleteJobsRequest(
                        jobs=[done(plain.generation.id), done(plain.generation.id)]
                    )
                )
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(scenario())

    with psycopg.connect(database_url) as conn:
        (images,) = conn.execute("SELECT count(*) FROM output_images").fetchone()
        (jobs_left,) = conn.execute("SELECT count(*) FROM jobs").fetchone()
    assert images == 3 and jobs_left == 0


def test_the_queue_table_is_analyzed_after_a_burst_so_claims_read_the_ready_index_in_order(database_url):
    """Autovacuum looks once a minute; until it does, the planner takes a fresh backlog for an empty
    queue and sorts all of it on every claim."""
    project_id, _ = create_project(database_url)
    # Autovacuum (which visits each of the suite's many databases in turn) would otherwise race the
    # catalog to analyze the table, and then the catalog rightly has nothing left to do.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")

    async def scenario():
        async with catalog(database_url) as (internal, _):
            for first in range(0, 1200, 40):
                await asyncio.gather(
                    *(
                        internal.EnqueueGeneration(_create(project_id, prompt=f"lake {i}"))
                        for i in range(first, first + 40)
                    )
                )
            # Statistics reach pg_stat_user_tables within a second; housekeeping runs once a second.
            deadline = asyncio.get_running_loop().time() + 15
            while asyncio.get_running_loop().time() < deadline:
                await _claim(internal, max_jobs=1)
                with psycopg.connect(database_url) as conn:
                    (analyzed,) = conn.execute(
                        "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'jobs'"
                    ).fetchone()
                if analyzed:
                    break
                await asyncio.sleep(0.3)
            assert analyzed, "the catalog analyzed the jobs table"
            with psycopg.connect(database_url) as conn:
                plan = "\n".join(
                    row[0]
                    for row in conn.execute(
                        "EXPLAIN SELECT generation_id FROM jobs WHERE state = 'queued'"
                        " ORDER BY score DESC, enqueued_at, generation_id LIMIT 8"
                    )
                )
            assert "using jobs_ready" in plan and "Sort" not in plan, plan

    asyncio.run(scenario())
