"""Adapters for the catalog and storage services, as the generator sees them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import grpc
from google.protobuf import timestamp_pb2
from imagegen.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from imagegen.storage.v1 import storage_pb2, storage_pb2_grpc

from services.common.errors import DomainError, Unavailable, error_for, upstream
from services.common.logs import outgoing_metadata

log = logging.getLogger("imagegen.generator.clients")
CHUNK_BYTES = 1024 * 1024
# Times in a row a watch opens again after its catalog went away, before the failure is the caller's.
WATCH_REOPENS = 5


class CatalogClient:
    def __init__(self, channel: grpc.aio.Channel):
        self.stub = catalog_pb2_grpc.CatalogInternalServiceStub(channel)

    async def authenticate(self, api_key: str) -> catalog_pb2.Principal:
        """Asked on every request, never cached: each takes a token of the key's rate, and a revoked key
        is refused from its next request."""
        async with upstream("catalog"):
            return await self.stub.Authenticate(
                catalog_pb2.AuthenticateRequest(api_key=api_key), metadata=outgoing_metadata(), timeout=5
            )

    async def _call(self, method: str, request, timeout: float | None = 10):
        async with upstream("catalog"):
            return await getattr(self.stub, method)(request, metadata=outgoing_metadata(), timeout=timeout)

    async def enqueue(self, request: catalog_pb2.EnqueueGenerationRequest, timeout: float | None):
        return await self._call("EnqueueGeneration", request, timeout)

    async def claim_jobs(self, worker_id: str, max_jobs: int, lease_seconds: float, wait_seconds: float):
        return await self._call(
            "ClaimJobs",
            catalog_pb2.ClaimJobsRequest(
                worker_id=worker_id, max_jobs=max_jobs, lease_seconds=lease_seconds, wait_seconds=wait_seconds
            ),
            timeout=wait_seconds + 10,
        )

    async def renew_leases(
        self, worker_id: str, generation_ids: list[str], lease_seconds: float
    ) -> list[str]:
        answer = await self._call(
            "RenewLeases",
            catalog_pb2.RenewLeasesRequest(
                worker_id=worker_id, generation_ids=generation_ids, lease_seconds=lease_seconds
            ),
        )
        return list(answer.lost_generation_ids)

    async def report_progress(self, worker_id: str, jobs: list[catalog_pb2.JobProgress]) -> None:
        await self._call("ReportProgress", catalog_pb2.ReportProgressRequest(worker_id=worker_id, jobs=jobs))

    async def complete_jobs(
        self, requests: list[catalog_pb2.CompleteJobRequest]
    ) -> list[catalog_pb2.GenerationRecord | DomainError]:
        answer = await self._call("CompleteJobs", catalog_pb2.CompleteJobsRequest(jobs=requests), timeout=30)
        return [
            error_for(result.code, result.message) if result.code else result.generation
            for result in answer.results
        ]

    async def fail_job(self, request: catalog_pb2.FailJobRequest):
        return await self._call("FailJob", request)

    async def release_jobs(self, worker_id: str, generation_ids: list[str]) -> None:
        await self._call(
            "ReleaseJobs", catalog_pb2.ReleaseJobsRequest(worker_id=worker_id, generation_ids=generation_ids)
        )

    async def report_probe(self, server_id: str, ok: bool, error: str) -> None:
        await self._call(
            "ReportProbe", catalog_pb2.ReportProbeRequest(server_id=server_id, ok=ok, error=error)
        )

    async def cancel_generation(self, project_id: str, generation_id: str, reason: str):
        return await self._call(
            "CancelGeneration",
            catalog_pb2.CancelGenerationRequest(project_id=project_id, id=generation_id, reason=reason),
        )

    async def claim_deliveries(self, max_deliveries: int, lease_seconds: float, wait_seconds: float):
        answer = await self._call(
            "ClaimWebhookDeliveries",
            catalog_pb2.ClaimWebhookDeliveriesRequest(
                max_deliveries=max_deliveries, lease_seconds=lease_seconds, wait_seconds=wait_seconds
            ),
            timeout=wait_seconds + 10,
        )
        return list(answer.deliveries)

    async def report_delivery(self, delivery_id: str, delivered: bool, status_code: int, error: str) -> None:
        await self._call(
            "ReportWebhookDelivery",
            catalog_pb2.ReportWebhookDeliveryRequest(
                id=delivery_id, delivered=delivered, status_code=status_code, error=error
            ),
        )

    async def claim_arweave_archives(self, max_archives: int, lease_seconds: float, wait_seconds: float):
        answer = await self._call(
            "ClaimArweaveArchives",
            catalog_pb2.ClaimArweaveArchivesRequest(
                max_archives=max_archives, lease_seconds=lease_seconds, wait_seconds=wait_seconds
            ),
            timeout=wait_seconds + 10,
        )
        return list(answer.archives)

    async def report_arweave_archive(self, request: catalog_pb2.ReportArweaveArchiveRequest) -> None:
        await self._call("ReportArweaveArchive", request)

    async def get_generation(self, project_id: str, generation_id: str, timeout: float | None):
        async with upstream("catalog"):
            return await self.stub.GetGeneration(
                catalog_pb2.GetGenerationRequest(project_id=project_id, id=generation_id),
                metadata=outgoing_metadata(),
                timeout=timeout,
            )

    async def watch_generation(
        self,
        project_id: str,
        generation_id: str,
        timeout: float | None,
        terminal_only: bool = False,
        previews: bool = False,
    ) -> AsyncIterator[catalog_pb2.GenerationRecord]:
        """The generation as it changes. A catalog replica that goes away mid-watch leaves it to
        another: the watch opens again there (the channel picks a live replica), which starts with the
        generation as it stands, and what this watch already gave is not given twice."""
        deadline = None if timeout is None else time.monotonic() + timeout
        request = catalog_pb2.WatchGenerationRequest(
            project_id=project_id, id=generation_id, terminal_only=terminal_only, previews=previews
        )
        last = None
        failed_in_a_row = 0
        while True:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
            try:
                async with upstream("catalog"):
                    call = self.stub.WatchGeneration(request, metadata=outgoing_metadata(), timeout=remaining)
                    async for record in call:
                        failed_in_a_row = 0
                        if record != last:
                            last = record
                            yield record
                return
            except Unavailable:
                failed_in_a_row += 1
                if failed_in_a_row > WATCH_REOPENS or (deadline is not None and time.monotonic() >= deadline):
                    raise
                log.info("watch reopened: its catalog went away", extra={"fields": {"id": generation_id}})
                await asyncio.sleep(0.1 * failed_in_a_row)

    async def list_generations(self, request: catalog_pb2.ListGenerationsRequest, timeout: float | None):
        async with upstream("catalog"):
            return await self.stub.ListGenerations(request, metadata=outgoing_metadata(), timeout=timeout)

    async def delete_generation(
        self, project_id: str, generation_id: str, timeout: float | None
    ) -> list[str]:
        async with upstream("catalog"):
            answer = await self.stub.DeleteGeneration(
                catalog_pb2.DeleteGenerationRequest(project_id=project_id, id=generation_id),
                metadata=outgoing_metadata(),
                timeout=timeout,
            )
        return list(answer.orphaned_keys)

    async def report_unused_blobs(self, keys: list[str], at_once: bool = False) -> None:
        async with upstream("catalog"):
            await self.stub.ReportUnusedBlobs(
                catalog_pb2.ReportUnusedBlobsRequest(storage_keys=keys, at_once=at_once),
                metadata=outgoing_metadata(),
                timeout=10,
            )

    async def resolve_permanent_image(self, permanent_key: str) -> catalog_pb2.ImageRecord:
        return await self._call(
            "ResolvePermanentImage", catalog_pb2.ResolvePermanentImageRequest(permanent_key=permanent_key)
        )

    async def adopt_orphan_blobs(self, keys: list[str]) -> list[str]:
        answer = await self._call("AdoptOrphanBlobs", catalog_pb2.AdoptOrphanBlobsRequest(storage_keys=keys))
        return list(answer.storage_keys)

    async def record_upload(
        self, project_id: str, image: catalog_pb2.InputImageRecord, ttl_seconds: float, stored_again: bool
    ) -> catalog_pb2.UploadRecord:
        return await self._call(
            "RecordUpload",
            catalog_pb2.RecordUploadRequest(
                project_id=project_id, image=image, ttl_seconds=ttl_seconds, stored_again=stored_again
            ),
        )

    async def get_uploads(self, project_id: str, ids: list[str]) -> list[catalog_pb2.UploadRecord]:
        answer = await self._call("GetUploads", catalog_pb2.GetUploadsRequest(project_id=project_id, ids=ids))
        return list(answer.uploads)

    async def end_blob_sweep(self, deleted: dict[str, timestamp_pb2.Timestamp], kept: list[str]) -> None:
        await self._call("EndBlobSweep", catalog_pb2.EndBlobSweepRequest(deleted=deleted, kept_keys=kept))

    async def blobs_being_swept(self, keys: list[str]) -> list[str]:
        answer = await self._call("BlobsBeingSwept", catalog_pb2.BlobsBeingSweptRequest(storage_keys=keys))
        return list(answer.storage_keys)

    async def claim_unused_blobs(self, max_keys: int) -> catalog_pb2.ClaimUnusedBlobsResponse:
        async with upstream("catalog"):
            return await self.stub.ClaimUnusedBlobs(
                catalog_pb2.ClaimUnusedBlobsRequest(max_keys=max_keys),
                metadata=outgoing_metadata(),
                timeout=10,
            )


class _FreshUrls:
    """The signed URLs storage answered puts with, for the next few seconds: a sync caller waiting in
    this process asks for the URLs of the images its worker just stored, and gets them without another
    SignUrls call. Seconds, so any URL lifetime a deployment sets leaves them nearly their whole life."""

    MAX_AGE_SECONDS = 5.0
    MAX_ENTRIES = 4096

    def __init__(self) -> None:
        self._urls: dict[str, tuple[str, float]] = {}

    def remember(self, answers: list[storage_pb2.PutObjectResponse]) -> None:
        now = time.monotonic()
        for answer in answers:
            if answer.url:
                self._urls[answer.key] = (answer.url, now)
        while len(self._urls) > self.MAX_ENTRIES:
            del self._urls[next(iter(self._urls))]  # oldest first: dicts keep insertion order

    def get(self, keys: list[str]) -> list[str] | None:
        oldest = time.monotonic() - self.MAX_AGE_SECONDS
        found = [self._urls.get(key) for key in keys]
        if all(entry is not None and entry[1] >= oldest for entry in found):
            return [entry[0] for entry in found]  # type: ignore[index]
        return None


class StorageClient:
    def __init__(self, channel: grpc.aio.Channel):
        self.stub = storage_pb2_grpc.StorageInternalServiceStub(channel)
        self._fresh = _FreshUrls()

    async def put_small(self, objects: list[tuple[bytes, str, str]]) -> list[storage_pb2.PutObjectResponse]:
        """Objects of at most SMALL_OBJECT_BYTES each, SMALL_BATCH_BYTES in all, in one call; each
        (data, content type, a variant's key or "")."""
        async with upstream("storage"):
            answer = await self.stub.PutSmallObjects(
                storage_pb2.PutSmallObjectsRequest(
                    objects=[
                        storage_pb2.SmallObject(
                            info=storage_pb2.ObjectInfo(content_type=ctype), data=data, key=key
                        )
                        for data, ctype, key in objects
                    ]
                ),
                metadata=outgoing_metadata(),
                timeout=60,
            )
        self._fresh.remember(list(answer.objects))
        return list(answer.objects)

    async def put(
        self, data: bytes, content_type: str, timeout: float | None
    ) -> storage_pb2.PutObjectResponse:
        def messages():
            yield storage_pb2.PutObjectRequest(info=storage_pb2.ObjectInfo(content_type=content_type))
            for offset in range(0, len(data), CHUNK_BYTES):
                yield storage_pb2.PutObjectRequest(chunk=data[offset : offset + CHUNK_BYTES])

        async with upstream("storage"):
            answer = await self.stub.PutObject(messages(), metadata=outgoing_metadata(), timeout=timeout)
        self._fresh.remember([answer])
        return answer

    async def read(
        self, key: str, offset: int = 0, length: int = 0, timeout: float | None = 60
    ) -> AsyncIterator[bytes]:
        """The object's bytes (or `length` of them from `offset`), in chunks."""
        async with upstream("storage"):
            call = self.stub.GetObject(
                storage_pb2.GetObjectRequest(key=key, offset=offset, length=length),
                metadata=outgoing_metadata(),
                timeout=timeout,
            )
            async for message in call:
                if message.HasField("chunk"):
                    yield message.chunk

    async def read_all(self, key: str, timeout: float | None = 60) -> bytes:
        return b"".join([chunk async for chunk in self.read(key, timeout=timeout)])

    async def sign(self, keys: list[str], timeout: float | None, just_stored: bool = False) -> list[str]:
        """Signed URLs for the keys; with `just_stored`, the ones storage answered this process's puts
        with in the last seconds will do (reads sign afresh every time)."""
        if not keys:
            return []
        fresh = self._fresh.get(keys) if just_stored else None
        if fresh is not None:
            return fresh
        async with upstream("storage"):
            answer = await self.stub.SignUrls(
                storage_pb2.SignUrlsRequest(keys=keys), metadata=outgoing_metadata(), timeout=timeout
            )
        return list(answer.urls)

    async def list(self, start_after: str, page_size: int) -> storage_pb2.ListObjectsResponse:
        async with upstream("storage"):
            return await self.stub.ListObjects(
                storage_pb2.ListObjectsRequest(start_after=start_after, page_size=page_size),
                metadata=outgoing_metadata(),
                timeout=60,
            )

    async def delete(
        self, keys: list[str], unless_written_since: dict[str, timestamp_pb2.Timestamp] | None = None
    ) -> list[str]:
        """Deletes `keys`, and those of `unless_written_since` not written since the time given;
        answers the keys kept."""
        if not keys and not unless_written_since:
            return []
        async with upstream("storage"):
            answer = await self.stub.DeleteObjects(
                storage_pb2.DeleteObjectsRequest(keys=keys, unless_written_since=unless_written_since),
                metadata=outgoing_metadata(),
                timeout=30,
            )
        return list(answer.kept)


async def close_channels(*channels: grpc.aio.Channel) -> None:
    await asyncio.gather(*(channel.close() for channel in channels))
