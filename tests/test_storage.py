"""Storage over real gRPC, on a local folder and on a real S3 API: streaming, addressing, signing."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import time
import urllib.parse

import grpc
import pytest
import requests
from google.protobuf import timestamp_pb2
from imagegen.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from imagegen.storage.v1 import storage_pb2, storage_pb2_grpc

from services.catalog.domain import QueuePolicy
from services.common import server as lifecycle
from services.common.errors import Unavailable, upstream
from services.generator.clients import CatalogClient, StorageClient
from services.generator.sweeper import BlobSweeper, record_around_sweeps
from services.storage.backends import WRITTEN_SINCE_SLACK_SECONDS, LocalFolderBackend
from services.storage.config import StorageConfig
from services.storage.domain import UrlSigner
from services.storage.server import create_server
from tests.conftest import create_project
from tests.infra import S3_ACCESS_KEY, S3_SECRET_KEY
from tests.test_catalog import _create, _image, catalog_channel

FIFTY_MB = 50 * 1024 * 1024


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.starts_processes)])
def storage_config(request, tmp_path) -> StorageConfig:
    config = StorageConfig(port=0, url_signing_key="test-signing-key", local_root=tmp_path / "objects")
    if request.param == "local":
        return config
    s3 = request.getfixturevalue("s3")
    host, port = s3.endpoint.split(":")
    return dataclasses.replace(
        config,
        backend="s3",
        s3_endpoint=s3.endpoint,
        # Clients reach the server by another name than the service does, as with `minio:9000` in compose.
        s3_public_endpoint=f"localhost:{port}",
        s3_access_key=S3_ACCESS_KEY,
        s3_secret_key=S3_SECRET_KEY,
        s3_bucket=s3.new_bucket_name(),
    )


@contextlib.asynccontextmanager
async def storage_channel(config: StorageConfig):
    """A storage server on its own port, and an internal channel to it."""
    server, port = await create_server(config)
    await lifecycle.start(server)
    channel = lifecycle.internal_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        await channel.close()
        await lifecycle.stop(server, 1)


@contextlib.asynccontextmanager
async def storage(config: StorageConfig):
    async with storage_channel(config) as channel:
        yield (
            storage_pb2_grpc.StorageInternalServiceStub(channel),
            storage_pb2_grpc.StorageServiceStub(channel),
        )


async def _put(stub, data: bytes, content_type="image/png", chunk=1024 * 1024):
    def messages():
        yield storage_pb2.PutObjectRequest(info=storage_pb2.ObjectInfo(content_type=content_type))
        for offset in range(0, len(data), chunk):
            yield storage_pb2.PutObjectRequest(chunk=data[offset : offset + chunk])

    return await stub.PutObject(messages())


async def _get(stub, key: str) -> tuple[str, bytes, int]:
    content_type, parts = "", []
    async for message in stub.GetObject(storage_pb2.GetObjectRequest(key=key)):
        if message.HasField("info"):
            content_type = message.info.content_type
        else:
            parts.append(message.chunk)
    return content_type, b"".join(parts), max(len(p) for p in parts)


def test_a_50_mb_object_streams_in_and_out_in_chunks_under_its_sha256(storage_config):
    data = os.urandom(FIFTY_MB)

    async def scenario():
        async with storage(storage_config) as (internal, _):
            put = await _put(internal, data)
            assert put.sha256 == hashlib.sha256(data).hexdigest()
            assert put.key == f"{put.sha256}.png" and put.size_bytes == FIFTY_MB
            content_type, back, biggest_message = await _get(internal, put.key)
            assert content_type == "image/png" and back == data
            assert biggest_message <= 1024 * 1024, "bytes move in chunks, never as one message"

    asyncio.run(scenario())


def test_equal_bytes_share_one_object_and_deletes_are_idempotent(storage_config):
    async def scenario():
        async with storage(storage_config) as (internal, _):
            first = await _put(internal, b"\x89PNG same bytes")
            second = await _put(internal, b"\x89PNG same bytes", chunk=3)
            assert first.key == second.key
            deleted = await internal.DeleteObjects(storage_pb2.DeleteObjectsRequest(keys=[first.key]))
            assert deleted.deleted == 1
            await internal.DeleteObjects(storage_pb2.DeleteObjectsRequest(keys=[first.key]))
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await _get(internal, first.key)
            assert error.value.code() == grpc.StatusCode.NOT_FOUND

    asyncio.run(scenario())


def test_an_object_written_again_since_the_time_given_outlives_a_conditional_delete(storage_config):
    again, alone = b"\x89PNG stored again", b"\x89PNG left alone"

    async def scenario():
        async with storage(storage_config) as (internal, _):
            again_key = (await _put(internal, again)).key
            alone_key = (await _put(internal, alone)).key
            await asyncio.sleep(WRITTEN_SINCE_SLACK_SECONDS + 0.1)  # earlier than the slack
            since = timestamp_pb2.Timestamp()
            since.GetCurrentTime()
            await _put(internal, again)  # a job storing the same bytes: the object is written again
            answer = await internal.DeleteObjects(
                storage_pb2.DeleteObjectsRequest(unless_written_since={again_key: since, alone_key: since})
            )
            assert list(answer.kept) == [again_key] and answer.deleted == 1
            assert (await _get(internal, again_key))[1] == again
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await _get(internal, alone_key)
            assert error.value.code() == grpc.StatusCode.NOT_FOUND

    asyncio.run(scenario())


def test_a_file_stamped_a_clock_tick_before_the_time_given_counts_as_written_since(tmp_path):
    """ext4 stamps files from the kernel's coarse clock, up to a tick behind the fine clock Postgres
    reads: bytes stored again just after their blob became unused can carry an earlier time."""
    backend = LocalFolderBackend(tmp_path, UrlSigner("secret", "http://127.0.0.1:8080", 60))

    async def scenario():
        (stored,) = await backend.put_small([(b"\x89PNG a tick early", "image/png", "")])
        since = time.time()
        (path,) = tmp_path.rglob(stored.key)
        os.utime(path, (since - 0.004, since - 0.004))
        assert await backend.delete([], unless_written_since={stored.key: since}) == (0, [stored.key])
        assert path.exists()

    asyncio.run(scenario())


@contextlib.asynccontextmanager
async def _sweep_rig(storage_config: StorageConfig, database_url: str):
    """Storage, and a catalog whose unused blobs have no grace period, with the clients a generator
    holds (its sweeper's) and the catalog's internal stub."""
    async with (
        storage_channel(storage_config) as storage_to,
        catalog_channel(database_url, queue=QueuePolicy(unused_blob_grace_seconds=0)) as catalog_to,
    ):
        yield (
            StorageClient(storage_to),
            CatalogClient(catalog_to),
            catalog_pb2_grpc.CatalogInternalServiceStub(catalog_to),
        )


def test_bytes_stored_again_while_their_blob_is_unused_outlive_the_sweep_that_claims_it(
    storage_config, database_url
):
    """Keys are content hashes: a job may store the bytes of a blob a deleted generation left unused,
    and record them just after a sweep claimed that blob. The sweep keeps them; a blob nobody stored
    again goes."""
    project_id, _ = create_project(database_url)
    data = b"\x89PNG the same bytes twice"

    async def scenario():
        async with _sweep_rig(storage_config, database_url) as (blobs, records, internal):
            sweeper = BlobSweeper(records, blobs, interval_seconds=3600)

            async def store() -> str:
                (stored,) = await blobs.put_small([(data, "image/png", "")])
                return stored.key

            async def recorded(key: str) -> str:
                created = await internal.EnqueueGeneration(_create(project_id))
                await internal.CompleteJob(
                    catalog_pb2.CompleteJobRequest(generation_id=created.generation.id, images=[_image(key)])
                )
                return created.generation.id

            async def deleted(generation_id: str) -> None:
                # Stored longer before it becomes unused than the delete's slack for clocks.
                await asyncio.sleep(WRITTEN_SINCE_SLACK_SECONDS + 0.1)
                await internal.DeleteGeneration(
                    catalog_pb2.DeleteGenerationRequest(project_id=project_id, id=generation_id)
                )

            async def stored_keys() -> list[str]:
                return [o.key for o in (await blobs.list("", 10)).objects]

            key = await store()
            await deleted(await recorded(key))
            assert await store() == key, "a job stores the same bytes"
            assert await sweeper.sweep() == 1, "and the sweep claims the unused blob before it records them"
            second = await recorded(key)
            assert await stored_keys() == [key], "the bytes the job recorded are still there"
            await sweeper.sweep()
            assert await stored_keys() == [key], "and stay: noted again, they are in use now"

            await deleted(second)
            assert await sweeper.sweep() == 1
            assert await stored_keys() == [], "unused and not stored again: gone"

    asyncio.run(scenario())


class _HeldDeletes:
    """Storage whose sweep deletes wait for `release`: the moment between a sweep's claim and its
    delete, held open."""

    def __init__(self, storage: StorageClient):
        self.storage = storage
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def delete(self, keys, unless_written_since=None):
        self.reached.set()
        await self.release.wait()
        return await self.storage.delete(keys, unless_written_since=unless_written_since)


def test_a_job_recording_bytes_a_sweep_is_deleting_waits_for_it_and_stores_them_again(
    storage_config, database_url
):
    """A job stored its image, then stalled longer than the orphan age (storage or the catalog away):
    the reconcile walk adopted the bytes as an orphan and a sweep claimed them. Recording them then would
    point the generation at bytes the sweep is about to delete. The catalog refuses the completion
    until the sweep reports back; the job then stores the bytes again and records them."""
    project_id, _ = create_project(database_url)
    data = b"\x89PNG a stalled job's image"

    async def scenario():
        async with _sweep_rig(storage_config, database_url) as (blobs, records, internal):
            held = _HeldDeletes(blobs)
            sweeper = BlobSweeper(records, held, interval_seconds=3600)
            stores = []

            async def store() -> None:
                (stored,) = await blobs.put_small([(data, "image/png", "")])
                stores.append(stored.key)

            async def stored_keys() -> list[str]:
                return [o.key for o in (await blobs.list("", 10)).objects]

            generation = (await internal.EnqueueGeneration(_create(project_id))).generation
            await store()
            (key,) = stores
            await asyncio.sleep(WRITTEN_SINCE_SLACK_SECONDS + 0.1)
            assert await records.adopt_orphan_blobs([key]) == [key], "taken for an orphan"
            sweep = asyncio.create_task(sweeper.sweep())
            await asyncio.wait_for(held.reached.wait(), 10)
            assert await records.blobs_being_swept([key]) == [key]

            completion = catalog_pb2.CompleteJobRequest(generation_id=generation.id, images=[_image(key)])
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await internal.CompleteJob(completion)
            assert refused.value.code() == grpc.StatusCode.ABORTED, refused.value.details()
            assert "sweep" in refused.value.details()

            async def complete(stored_again: bool) -> catalog_pb2.GenerationRecord:
                completion.stored_again = stored_again
                async with upstream("catalog"):  # as the worker's client: ABORTED as a DomainError
                    return await internal.CompleteJob(completion)

            recording = asyncio.create_task(record_around_sweeps(records, [key], complete, store))
            await asyncio.sleep(0.5)
            assert not recording.done(), "the job waits while the sweep holds its bytes"
            unfinished = await internal.GetGeneration(
                catalog_pb2.GetGenerationRequest(project_id=project_id, id=generation.id)
            )
            assert unfinished.status == "pending" and not unfinished.images

            held.release.set()
            assert await sweep == 1
            recorded = await asyncio.wait_for(recording, 10)
            assert recorded.status == "completed" and [i.storage_key for i in recorded.images] == [key]
            assert len(stores) == 2, "stored again after the sweep"
            assert await stored_keys() == [key], "the recorded image's bytes are there"
            assert await sweeper.sweep() == 0 and await stored_keys() == [key], "and in use, they stay"

    asyncio.run(scenario())


def test_a_job_recording_bytes_a_sweep_already_deleted_stores_them_again_first(storage_config, database_url):
    """As above, but the sweep was over before the stalled job asked to record its image: the bytes it
    stored before the delete are gone, so it is refused and stores them again."""
    project_id, _ = create_project(database_url)
    data = b"\x89PNG a job stalled past a whole sweep"

    async def scenario():
        async with _sweep_rig(storage_config, database_url) as (blobs, records, internal):
            sweeper = BlobSweeper(records, blobs, interval_seconds=3600)
            stores = 0

            async def store() -> str:
                nonlocal stores
                (stored,) = await blobs.put_small([(data, "image/png", "")])
                stores += 1
                return stored.key

            generation = (await internal.EnqueueGeneration(_create(project_id))).generation
            key = await store()
            await asyncio.sleep(WRITTEN_SINCE_SLACK_SECONDS + 0.1)
            assert await records.adopt_orphan_blobs([key]) == [key]
            assert await sweeper.sweep() == 1
            assert (await blobs.list("", 10)).objects == [], "the sweep deleted the bytes"

            completion = catalog_pb2.CompleteJobRequest(generation_id=generation.id, images=[_image(key)])

            async def complete(stored_again: bool) -> catalog_pb2.GenerationRecord:
                completion.stored_again = stored_again
                async with upstream("catalog"):
                    return await internal.CompleteJob(completion)

            recorded = await record_around_sweeps(records, [key], complete, store)
            assert recorded.status == "completed"
            assert [o.key for o in (await blobs.list("", 10)).objects] == [key], "its bytes are there"
            assert stores == 2, "refused once, stored again"
            assert await sweeper.sweep() == 0, "in use now"

    asyncio.run(scenario())


class _CatalogAwayOnce:
    """The sweeper's catalog client, its database away for the first end of a sweep."""

    def __init__(self, records: CatalogClient):
        self.records = records
        self.ends_refused = 0

    def __getattr__(self, name):
        return getattr(self.records, name)

    async def end_blob_sweep(self, deleted, kept):
        if not self.ends_refused:
            self.ends_refused += 1
            raise Unavailable("the catalog's database is unavailable; try again shortly")
        await self.records.end_blob_sweep(deleted, kept)


def test_a_sweep_the_catalog_could_not_hear_end_is_ended_at_the_next_pass(storage_config, database_url):
    """Left to run out, its claim would hold off writers of the keys for minutes: the sweeper keeps
    the report and gives it at its next pass. A blob stored again after that sweep deleted it, and never
    recorded, is adopted as an orphan again."""
    data = b"\x89PNG swept while the catalog's database was away"

    async def scenario():
        async with _sweep_rig(storage_config, database_url) as (blobs, records, _):
            away = _CatalogAwayOnce(records)
            sweeper = BlobSweeper(away, blobs, interval_seconds=3600)
            (stored,) = await blobs.put_small([(data, "image/png", "")])
            await asyncio.sleep(WRITTEN_SINCE_SLACK_SECONDS + 0.1)
            assert await records.adopt_orphan_blobs([stored.key]) == [stored.key]
            with pytest.raises(Unavailable):
                await sweeper.sweep()
            assert (await blobs.list("", 10)).objects == [], "deleted"
            assert await records.blobs_being_swept([stored.key]) == [stored.key], "not yet reported"
            assert await sweeper.sweep() == 0
            assert await records.blobs_being_swept([stored.key]) == [], "reported at the next pass"

            await blobs.put_small([(data, "image/png", "")])  # a job that then died
            await asyncio.sleep(WRITTEN_SINCE_SLACK_SECONDS + 0.1)
            assert await records.adopt_orphan_blobs([stored.key]) == [stored.key], "an orphan again"
            assert await sweeper.sweep() == 1
            assert (await blobs.list("", 10)).objects == []

    asyncio.run(scenario())


def test_an_upload_or_an_input_a_sweep_is_deleting_is_refused_until_it_reports_back(
    storage_config, database_url
):
    """Uploads and a create's input images record stored keys too, under the same rule."""
    project_id, _ = create_project(database_url)
    data = b"\x89PNG a room photo sent twice"

    async def scenario():
        async with _sweep_rig(storage_config, database_url) as (blobs, records, internal):
            (stored,) = await blobs.put_small([(data, "image/png", "")])
            record = catalog_pb2.InputImageRecord(
                storage_key=stored.key, sha256=stored.sha256, content_type="image/png",
                size_bytes=len(data), width=1, height=1,
            )  # fmt: skip
            await records.report_unused_blobs([stored.key])
            claimed = await records.claim_unused_blobs(10)
            assert list(claimed.unused_since) == [stored.key]

            upload = catalog_pb2.RecordUploadRequest(project_id=project_id, image=record, ttl_seconds=60)
            with_input = _create(project_id)
            with_input.inputs.append(catalog_pb2.InputImageRecord(role="image"))
            with_input.inputs[0].MergeFrom(record)
            for refused_call in (internal.RecordUpload(upload), internal.EnqueueGeneration(with_input)):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await refused_call
                assert refused.value.code() == grpc.StatusCode.ABORTED
            listed = await internal.ListGenerations(catalog_pb2.ListGenerationsRequest(project_id=project_id))
            assert not listed.generations, "the refused create left nothing behind"

            await records.end_blob_sweep({}, [stored.key])
            assert await records.blobs_being_swept([stored.key]) == []
            assert (await internal.RecordUpload(upload)).image.storage_key == stored.key
            created = await internal.EnqueueGeneration(with_input)
            assert created.generation.inputs[0].storage_key == stored.key

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "key", ["../../etc/passwd", "a" * 64, "A" * 64 + ".png", "x/../" + "a" * 64 + ".png"]
)
def test_keys_are_only_ever_ones_storage_made(storage_config, key):
    async def scenario():
        async with storage(storage_config) as (internal, _):
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await _get(internal, key)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(scenario())


def test_unsupported_content_types_and_missing_info_are_refused(storage_config):
    async def scenario():
        async with storage(storage_config) as (internal, _):
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await _put(internal, b"<html>", content_type="text/html")
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await internal.PutObject(iter([storage_pb2.PutObjectRequest(chunk=b"x")]))
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(scenario())


def test_signed_urls_serve_the_object_and_tampered_or_expired_ones_are_refused(storage_config):
    async def scenario():
        async with storage(storage_config) as (internal, public):
            put = await _put(internal, b"\x89PNG signed")
            (url,) = (await internal.SignUrls(storage_pb2.SignUrlsRequest(keys=[put.key]))).urls
            assert urllib.parse.urlsplit(url).path == urllib.parse.urlsplit(put.url).path
            if storage_config.backend == "s3":
                # Signed for the address clients use, and it works from there.
                assert url.startswith(f"http://{storage_config.s3_public_endpoint}/")
                fetched = await asyncio.to_thread(requests.get, url, timeout=10)
                assert fetched.content == b"\x89PNG signed"
                return
            assert url.startswith("http://127.0.0.1:8080/api/files/")
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
            good = storage_pb2.GetFileRequest(
                key=put.key, expires=int(query["expires"]), signature=query["signature"]
            )
            chunks = [m async for m in public.GetFile(good)]
            assert (
                chunks[0].content_type == "image/png"
                and b"".join(c.data for c in chunks) == b"\x89PNG signed"
            )
            for bad in (
                storage_pb2.GetFileRequest(key=put.key, expires=good.expires + 1, signature=good.signature),
                storage_pb2.GetFileRequest(key=put.key, expires=good.expires, signature="0" * 64),
                storage_pb2.GetFileRequest(
                    key=put.key, expires=int(time.time()) - 1, signature=good.signature
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    _ = [m async for m in public.GetFile(bad)]
                assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED

    asyncio.run(scenario())


def test_small_objects_are_stored_together_in_order_and_a_bad_batch_stores_nothing(storage_config):
    images = [b"\x89PNG one", b"\x89PNG two", b"\x89PNG one", os.urandom(300_000)]

    def batch(objects):
        return storage_pb2.PutSmallObjectsRequest(
            objects=[
                storage_pb2.SmallObject(info=storage_pb2.ObjectInfo(content_type=ct), data=data)
                for data, ct in objects
            ]
        )

    async def scenario():
        async with storage(storage_config) as (internal, _):
            answer = await internal.PutSmallObjects(batch([(d, "image/png") for d in images]))
            assert [o.sha256 for o in answer.objects] == [hashlib.sha256(d).hexdigest() for d in images]
            assert answer.objects[0].key == answer.objects[2].key, "equal bytes, one object"
            for obj, data in zip(answer.objects, images, strict=True):
                assert (await _get(internal, obj.key))[1] == data and obj.size_bytes == len(data)

            refused = [
                [(b"\x89PNG fine", "image/png"), (b"<html>", "text/html")],
                [(b"\x89PNG fine", "image/png"), (os.urandom(1024 * 1024 + 1), "image/png")],
                [(os.urandom(1024 * 1024), "image/png") for _ in range(3)] + [(b"\x89PNG fine", "image/png")],
            ]
            for objects in refused:
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await internal.PutSmallObjects(batch(objects))
                assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            fine_key = hashlib.sha256(b"\x89PNG fine").hexdigest() + ".png"
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await _get(internal, fine_key)
            assert error.value.code() == grpc.StatusCode.NOT_FOUND, "nothing of a refused batch is kept"

    asyncio.run(scenario())


def test_urls_from_puts_are_reused_for_seconds_and_only_when_every_key_has_one(monkeypatch):
    from imagegen.storage.v1 import storage_pb2

    from services.generator import clients

    clock = [1000.0]
    monkeypatch.setattr(clients.time, "monotonic", lambda: clock[0])
    fresh = clients._FreshUrls()
    fresh.remember([storage_pb2.PutObjectResponse(key="a.png", url="https://s/a"),
                    storage_pb2.PutObjectResponse(key="b.png", url="https://s/b")])  # fmt: skip
    assert fresh.get(["b.png", "a.png"]) == ["https://s/b", "https://s/a"]
    assert fresh.get(["a.png", "c.png"]) is None, "one key without a URL: storage signs them all"
    clock[0] += fresh.MAX_AGE_SECONDS + 0.1
    assert fresh.get(["a.png"]) is None, "too old to hand out"


def test_variants_are_stored_under_their_originals_keys_once_and_urls_hold_for_a_window(storage_config):
    original = b"\x89PNG original"
    original_key = hashlib.sha256(original).hexdigest() + ".png"

    def variant(data: bytes, key: str) -> storage_pb2.PutSmallObjectsRequest:
        webp = storage_pb2.ObjectInfo(content_type="image/webp")
        return storage_pb2.PutSmallObjectsRequest(
            objects=[storage_pb2.SmallObject(info=webp, data=data, key=key)]
        )

    async def scenario():
        async with storage(storage_config) as (internal, _):
            await _put(internal, original)
            key = f"{original_key}.w256.webp"
            (stored,) = (await internal.PutSmallObjects(variant(b"RIFF first", key))).objects
            assert stored.key == key and stored.sha256 == hashlib.sha256(b"RIFF first").hexdigest()
            await internal.PutSmallObjects(variant(b"RIFF second", key))
            assert await _get(internal, key) == ("image/webp", b"RIFF first", 10), (
                "made once: the first stays"
            )
            for bad in (original_key, "../x.w256.webp", f"{original_key}.w256.png"):
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await internal.PutSmallObjects(variant(b"RIFF", bad))
                assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
            listed = await internal.ListObjects(storage_pb2.ListObjectsRequest(page_size=10))
            assert sorted(o.key for o in listed.objects) == [original_key, key]
            first = (await internal.SignUrls(storage_pb2.SignUrlsRequest(keys=[original_key, key]))).urls
            again = (await internal.SignUrls(storage_pb2.SignUrlsRequest(keys=[original_key, key]))).urls
            assert first == again, "the same URLs within the window, so browsers cache them"
            if storage_config.backend == "s3":
                fetched = await asyncio.to_thread(requests.get, first[1], timeout=10)
                assert fetched.content == b"RIFF first", "a URL signed as at the window's start works now"
            await internal.DeleteObjects(storage_pb2.DeleteObjectsRequest(keys=[original_key, key]))
            assert not (await internal.ListObjects(storage_pb2.ListObjectsRequest(page_size=10))).objects

    asyncio.run(scenario())


def test_a_signed_url_is_stable_within_its_window_and_valid_for_its_ttl():
    from services.storage.domain import URL_STABLE_SECONDS, UrlSigner

    signer = UrlSigner("k", "http://gw", ttl_seconds=3600)
    start = 1_800_000_000 - 1_800_000_000 % URL_STABLE_SECONDS
    urls = {signer.sign("a" * 64 + ".png", now=start + offset) for offset in (0, 1, URL_STABLE_SECONDS - 1)}
    assert len(urls) == 1
    assert signer.sign("a" * 64 + ".png", now=start + URL_STABLE_SECONDS) not in urls
    expires = int(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(urls.pop()).query))["expires"])
    assert expires - (start + URL_STABLE_SECONDS - 1) >= 3600, (
        "valid the whole TTL from the window's last read"
    )
