"""Adapters for the catalog and storage services, as the generator sees them."""

from __future__ import annotations

import asyncio
import time

import grpc
from imagegen.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from imagegen.storage.v1 import storage_pb2, storage_pb2_grpc

from services.common.errors import DomainError, upstream
from services.common.logs import outgoing_metadata

CHUNK_BYTES = 1024 * 1024


class CatalogClient:
    def __init__(self, channel: grpc.aio.Channel, auth_cache_seconds: float):
        self.stub = catalog_pb2_grpc.CatalogInternalServiceStub(channel)
        self._auth_ttl = auth_cache_seconds
        self._auth_cache: dict[str, tuple[float, catalog_pb2.Principal | DomainError]] = {}

    async def authenticate(self, api_key: str) -> catalog_pb2.Principal:
        now = time.monotonic()
        cached = self._auth_cache.get(api_key)
        if cached is None or cached[0] < now:
            try:
                async with upstream("catalog"):
                    answer = await self.stub.Authenticate(
                        catalog_pb2.AuthenticateRequest(api_key=api_key),
                        metadata=outgoing_metadata(),
                        timeout=5,
                    )
            except DomainError as exc:
                if exc.code != grpc.StatusCode.UNAUTHENTICATED:
                    raise
                answer = exc
            if len(self._auth_cache) > 10_000:
                self._auth_cache.clear()
            cached = self._auth_cache[api_key] = (now + self._auth_ttl, answer)
        if isinstance(cached[1], DomainError):
            raise cached[1]
        return cached[1]

    async def create_generation(self, request: catalog_pb2.CreateGenerationRequest, timeout: float | None):
        async with upstream("catalog"):
            return await self.stub.CreateGeneration(request, metadata=outgoing_metadata(), timeout=timeout)

    async def complete_generation(
        self, request: catalog_pb2.CompleteGenerationRequest, timeout: float | None
    ):
        async with upstream("catalog"):
            return await self.stub.CompleteGeneration(request, metadata=outgoing_metadata(), timeout=timeout)

    async def fail_generation(self, project_id: str, generation_id: str, reason: str):
        async with upstream("catalog"):
            return await self.stub.FailGeneration(
                catalog_pb2.FailGenerationRequest(
                    project_id=project_id, generation_id=generation_id, reason=reason
                ),
                metadata=outgoing_metadata(),
                timeout=10,
            )

    async def get_generation(self, project_id: str, generation_id: str, timeout: float | None):
        async with upstream("catalog"):
            return await self.stub.GetGeneration(
                catalog_pb2.GetGenerationRequest(project_id=project_id, id=generation_id),
                metadata=outgoing_metadata(),
                timeout=timeout,
            )

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


class StorageClient:
    def __init__(self, channel: grpc.aio.Channel):
        self.stub = storage_pb2_grpc.StorageInternalServiceStub(channel)

    async def put(
        self, data: bytes, content_type: str, timeout: float | None
    ) -> storage_pb2.PutObjectResponse:
        def messages():
            yield storage_pb2.PutObjectRequest(info=storage_pb2.ObjectInfo(content_type=content_type))
            for offset in range(0, len(data), CHUNK_BYTES):
                yield storage_pb2.PutObjectRequest(chunk=data[offset : offset + CHUNK_BYTES])

        async with upstream("storage"):
            return await self.stub.PutObject(messages(), metadata=outgoing_metadata(), timeout=timeout)

    async def sign(self, keys: list[str], timeout: float | None) -> list[str]:
        if not keys:
            return []
        async with upstream("storage"):
            answer = await self.stub.SignUrls(
                storage_pb2.SignUrlsRequest(keys=keys), metadata=outgoing_metadata(), timeout=timeout
            )
        return list(answer.urls)

    async def delete(self, keys: list[str]) -> None:
        if keys:
            async with upstream("storage"):
                await self.stub.DeleteObjects(
                    storage_pb2.DeleteObjectsRequest(keys=keys), metadata=outgoing_metadata(), timeout=30
                )


async def close_channels(*channels: grpc.aio.Channel) -> None:
    await asyncio.gather(*(channel.close() for channel in channels))
