"""The catalog over real gRPC and real Postgres: migrations, keys, generations, pages, deletes."""

from __future__ import annotations

import asyncio
import contextlib
import time

import grpc
import psycopg
import pytest
from imagegen.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from services.catalog.config import CatalogConfig
from services.catalog.db import MIGRATIONS, migrate
from services.catalog.domain import QueuePolicy
from services.catalog.sealing import Sealer
from services.catalog.server import create_server
from services.common import server as lifecycle
from tests.conftest import create_project

BOOTSTRAP_KEY = "sk_bootstrap_for_tests"


# One sealing key for every catalog a test starts, so a catalog started again reads what the last one
# sealed (as a deployment's IMAGEGEN_SECRETS_KEYS does).
TEST_SEALER = Sealer(["tests' secrets key"])


@contextlib.asynccontextmanager
async def catalog_channel(database_url: str, **config):
    """A catalog server on its own port, and an internal channel to it."""
    config.setdefault("sealer", TEST_SEALER)
    server, port = await create_server(
        CatalogConfig(
            database_url=database_url,
            port=0,
            pool_min=1,
            pool_max=8,
            bootstrap_api_key=BOOTSTRAP_KEY,
            **config,
        )
    )
    await lifecycle.start(server)
    channel = lifecycle.internal_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        await channel.close()
        await lifecycle.stop(server, 1)


@contextlib.asynccontextmanager
async def catalog(database_url: str, **config):
    async with catalog_channel(database_url, **config) as channel:
        yield (
            catalog_pb2_grpc.CatalogInternalServiceStub(channel),
            catalog_pb2_grpc.CatalogServiceStub(channel),
        )


def _create(project_id: str, user: str = "alice", model: str = "procedural", prompt: str = "lake", **more):
    """An enqueue request; `more` fills in spec fields and the request's own (idempotency_key, ...)."""
    spec_fields = catalog_pb2.GenerationSpec.DESCRIPTOR.fields_by_name
    spec = catalog_pb2.GenerationSpec(
        model=model, user=user, prompt=prompt, n=1, width=64, height=64, seed=1,
        **{name: value for name, value in more.items() if name in spec_fields},
    )  # fmt: skip
    own = {name: value for name, value in more.items() if name not in spec_fields}
    return catalog_pb2.EnqueueGenerationRequest(project_id=project_id, spec=spec, **own)


async def _claim(internal, worker: str = "wrk_test", max_jobs: int = 1, lease: float = 30.0):
    answer = await internal.ClaimJobs(
        catalog_pb2.ClaimJobsRequest(worker_id=worker, max_jobs=max_jobs, lease_seconds=lease)
    )
    return list(answer.jobs)


def _image(key: str, index: int = 0) -> catalog_pb2.ImageRecord:
    return catalog_pb2.ImageRecord(
        index=index,
        storage_key=key,
        sha256=key[:64],
        content_type="image/png",
        size_bytes=10,
        width=64,
        height=64,
    )


KEY_A = "a" * 64 + ".png"
KEY_B = "b" * 64 + ".png"
KEY_C = "c" * 64 + ".png"
KEY_D = "d" * 64 + ".png"


def test_migrations_apply_once_and_concurrent_starts_are_safe(pg):
    url = pg.create_database()

    async def scenario():
        results = await asyncio.gather(*(migrate(url) for _ in range(3)))
        assert sorted(len(r) for r in results) == [0, 0, len(list(MIGRATIONS.glob("*.sql")))]
        assert await migrate(url) == []

    asyncio.run(scenario())
    with psycopg.connect(url) as conn:
        applied = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
        assert applied == len(list(MIGRATIONS.glob("*.sql")))


def test_keys_are_stored_hashed_and_unknown_keys_are_unauthenticated(database_url):
    async def scenario():
        async with catalog(database_url) as (internal, _):
            principal = await internal.Authenticate(catalog_pb2.AuthenticateRequest(api_key=BOOTSTRAP_KEY))
            assert principal.project_id.startswith("pro_") and principal.admin
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await internal.Authenticate(catalog_pb2.AuthenticateRequest(api_key="sk_wrong"))
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED

    asyncio.run(scenario())
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT key_hash FROM api_keys").fetchall()
    assert len(stored) == 1 and BOOTSTRAP_KEY.encode() not in bytes(stored[0][0])


def test_a_generation_gets_exactly_one_set_of_images(database_url):
    project_id, _ = create_project(database_url)

    async def scenario():
        async with catalog(database_url) as (internal, _):
            created = await internal.EnqueueGeneration(_create(project_id))
            assert created.generation.status == "pending"
            assert created.generation.id.startswith("img_") and created.generation.model_id.startswith("mod_")
            # The first worker's lease runs out, so a second claims the job; both then answer.
            (first,) = await _claim(internal, "wrk_first", lease=0.2)
            assert first.attempt == 1 and first.generation.status == "processing"
            await asyncio.sleep(1.3)
            (second,) = await _claim(internal, "wrk_second")
            assert second.attempt == 2 and second.generation.id == created.generation.id
            assert second.server.id.startswith("srv_")
            done = await internal.CompleteJob(
                catalog_pb2.CompleteJobRequest(
                    worker_id="wrk_second",
                    generation_id=created.generation.id,
                    server_id=second.server.id,
                    images=[_image(KEY_A)],
                )
            )
            assert done.status == "completed" and done.images[0].id.startswith("ima_")
            assert done.server_id == second.server.id
            with pytest.raises(grpc.aio.AioRpcError) as again:
                await internal.CompleteJob(
                    catalog_pb2.CompleteJobRequest(
                        worker_id="wrk_first", generation_id=created.generation.id, images=[_image(KEY_B)]
                    )
                )
            assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            fetched = await internal.GetGeneration(
                catalog_pb2.GetGenerationRequest(project_id=project_id, id=created.generation.id)
            )
            assert [i.storage_key for i in fetched.images] == [KEY_A]

    asyncio.run(scenario())


def test_unknown_model_is_not_found_and_records_nothing(database_url):
    project_id, _ = create_project(database_url)

    async def scenario():
        async with catalog(database_url) as (internal, _):
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await internal.EnqueueGeneration(_create(project_id, model="dall-e-9"))
            assert error.value.code() == grpc.StatusCode.NOT_FOUND
            assert "procedural" in error.value.details()

    asyncio.run(scenario())
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM generations").fetchone()[0] == 0


def test_pages_walk_forward_and_back_newest_first_with_filters(database_url):
    project_id, _ = create_project(database_url)

    async def scenario():
        async with catalog(database_url) as (internal, _):
            ids = []
            for i in range(7):
                created = await internal.EnqueueGeneration(
                    _create(project_id, user="bob" if i % 2 else "alice")
                )
                ids.append(created.generation.id)
            newest_first = list(reversed(ids))

            def page(token="", size=3, **filters):
                return internal.ListGenerations(
                    catalog_pb2.ListGenerationsRequest(
                        project_id=project_id, page_size=size, page_token=token, **filters
                    )
                )

            first = await page()
            assert [g.id for g in first.generations] == newest_first[:3]
            assert first.previous_page_token == "" and first.next_page_token
            second = await page(first.next_page_token)
            assert [g.id for g in second.generations] == newest_first[3:6]
            third = await page(second.next_page_token)
            assert [g.id for g in third.generations] == newest_first[6:]
            assert third.next_page_token == ""
            back = await page(third.previous_page_token)
            assert [g.id for g in back.generations] == newest_first[3:6]
            back_again = await page(back.previous_page_token)
            assert [g.id for g in back_again.generations] == newest_first[:3]
            assert back_again.previous_page_token == ""

            bobs = await page(size=50, user="bob")
            assert [g.id for g in bobs.generations] == [i for i in newest_first if ids.index(i) % 2]
            one = await page(id=ids[2])
            assert [g.id for g in one.generations] == [ids[2]]
            assert len((await page(size=500)).generations) == 7, (
                "page sizes above 200 are capped, not refused"
            )
            for bad in ("garbage", "eyJkIjoibiJ9", "!!"):
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await page(bad)
                assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(scenario())


def test_projects_see_only_their_own_generations(database_url):
    mine, _ = create_project(database_url, "mine")
    theirs, _ = create_project(database_url, "theirs")

    async def scenario():
        async with catalog(database_url) as (internal, _):
            created = await internal.EnqueueGeneration(_create(theirs))
            for call in (
                internal.GetGeneration(
                    catalog_pb2.GetGenerationRequest(project_id=mine, id=created.generation.id)
                ),
                internal.DeleteGeneration(
                    catalog_pb2.DeleteGenerationRequest(project_id=mine, id=created.generation.id)
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await call
                assert error.value.code() == grpc.StatusCode.NOT_FOUND
            listed = await internal.ListGenerations(catalog_pb2.ListGenerationsRequest(project_id=mine))
            assert list(listed.generations) == []
            still = await internal.GetGeneration(
                catalog_pb2.GetGenerationRequest(project_id=theirs, id=created.generation.id)
            )
            assert still.id == created.generation.id

    asyncio.run(scenario())


def test_unused_blobs_are_swept_only_after_a_grace_period_without_use(database_url):
    project_id, _ = create_project(database_url)
    grace = 1.0

    async def scenario():
        async with catalog(database_url, queue=QueuePolicy(unused_blob_grace_seconds=grace)) as (internal, _):

            async def completed(keys):
                created = await internal.EnqueueGeneration(_create(project_id))
                await internal.CompleteJob(
                    catalog_pb2.CompleteJobRequest(
                        generation_id=created.generation.id,
                        images=[_image(k, i) for i, k in enumerate(keys)],
                    )
                )
                return created.generation.id

            shared = await completed([KEY_A])
            both = await completed([KEY_A, KEY_B])
            answer = await internal.DeleteGeneration(
                catalog_pb2.DeleteGenerationRequest(project_id=project_id, id=both)
            )
            assert list(answer.orphaned_keys) == [KEY_B]
            answer = await internal.DeleteGeneration(
                catalog_pb2.DeleteGenerationRequest(project_id=project_id, id=shared)
            )
            assert list(answer.orphaned_keys) == [KEY_A]
            # A discarded result's blob, and one that another job records again before the sweep.
            reported = time.time()
            await internal.ReportUnusedBlobs(catalog_pb2.ReportUnusedBlobsRequest(storage_keys=[KEY_C]))
            await internal.ReportUnusedBlobs(catalog_pb2.ReportUnusedBlobsRequest(storage_keys=[KEY_D]))
            await completed([KEY_D])

            def claim():
                return internal.ClaimUnusedBlobs(catalog_pb2.ClaimUnusedBlobsRequest(max_keys=10))

            assert dict((await claim()).unused_since) == {}, "nothing is swept within the grace period"
            await asyncio.sleep(grace + 0.1)
            swept = (await claim()).unused_since
            assert sorted(swept) == sorted([KEY_A, KEY_B, KEY_C])
            # Each with when it became unused (storage keeps bytes stored again since), not when claimed.
            assert abs(swept[KEY_C].ToNanoseconds() / 1e9 - reported) < 0.5
            assert dict((await claim()).unused_since) == {}, "a claimed blob is handed out once"

    asyncio.run(scenario())


def test_public_model_listing_needs_a_key_and_shows_the_builtin_model(database_url):
    _, key = create_project(database_url)

    async def scenario():
        async with catalog(database_url) as (_, public):
            models = await public.ListModels(
                catalog_pb2.ListModelsRequest(), metadata=(("authorization", f"Bearer {key}"),)
            )
            assert [m.name for m in models.models] == ["procedural"]
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await public.ListModels(catalog_pb2.ListModelsRequest())
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED

    asyncio.run(scenario())


def test_a_sync_job_is_leased_at_enqueue_to_the_asking_worker_only_when_a_server_is_free(database_url):
    project_id, _ = create_project(database_url)

    async def scenario():
        async with catalog(database_url) as (internal, _):
            ask = {"claim_for_worker": "wrk_here", "lease_seconds": 30.0}
            leased = await internal.EnqueueGeneration(_create(project_id, **ask))
            assert leased.HasField("job"), "the procedural model's server is free"
            assert leased.job.generation.id == leased.generation.id and leased.job.attempt == 1
            assert leased.generation.status == "processing" and leased.job.server.provider == "procedural"
            assert await _claim(internal, "wrk_elsewhere") == [], "leased already: no other worker gets it"
            queued = await internal.EnqueueGeneration(_create(project_id))
            assert not queued.HasField("job") and queued.generation.status == "pending"
            # A job of the model waits in the queue: the next sync one queues behind it, whoever asks.
            behind = await internal.EnqueueGeneration(_create(project_id, **ask))
            assert not behind.HasField("job") and behind.generation.status == "pending"
            claimed = await _claim(internal, "wrk_elsewhere", max_jobs=2)
            assert [job.generation.id for job in claimed] == [queued.generation.id, behind.generation.id]

    asyncio.run(scenario())


def test_secrets_are_sealed_at_rest_and_sealed_again_under_a_new_key(database_url):
    project_id, key = create_project(database_url)

    async def scenario():
        async with catalog(database_url, sealer=Sealer(["old key"])) as (_, public):
            await public.CreateModel(
                catalog_pb2.CreateModelRequest(
                    name="m", provider="openai",
                    servers=[catalog_pb2.ServerSpec(url="https://models.example/v1", api_key="sk-upstream")],
                ),
                metadata=(("authorization", f"Bearer {key}"),),
            )  # fmt: skip
        with psycopg.connect(database_url) as conn:
            (before,) = conn.execute("SELECT api_key FROM model_servers WHERE api_key <> ''").fetchone()
        # The new key first, the old one after it: the start seals everything again under the new one.
        async with catalog(database_url, sealer=Sealer(["new key", "old key"])) as (internal, _):
            with psycopg.connect(database_url) as conn:
                (after,) = conn.execute("SELECT api_key FROM model_servers WHERE api_key <> ''").fetchone()
            await internal.EnqueueGeneration(_create(project_id, model="m"))
            [job] = await _claim(internal)
        return before, after, job.server.api_key

    before, after, opened = asyncio.run(scenario())
    assert before.startswith("sealed:v1:") and "sk-upstream" not in before
    assert after.startswith("sealed:v1:") and after.split(":")[2] != before.split(":")[2]
    assert opened == "sk-upstream"
    with pytest.raises(Exception, match="lacks"):
        Sealer(["new key"]).open(before)
