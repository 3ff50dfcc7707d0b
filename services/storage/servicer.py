"""Maps storage protos to domain calls; bytes move in chunks of at most 1 MiB."""

from __future__ import annotations

from google.api import httpbody_pb2
from imagegen.storage.v1 import storage_pb2, storage_pb2_grpc

from services.common.errors import InvalidArgument
from services.common.vocabulary import SMALL_BATCH_BYTES, SMALL_OBJECT_BYTES

from .domain import Storage, StoredObject, content_type_of


class StorageServicer(storage_pb2_grpc.StorageServiceServicer):
    def __init__(self, storage: Storage):
        self.storage = storage

    async def GetFile(self, request, context):
        chunks = await self.storage.open_signed(request.key, request.expires, request.signature)
        # Keys are content (or an original's variant, made once): the bytes never change under a URL.
        await context.send_initial_metadata(
            [("cache-control", self.storage.signer.cache_control(request.expires))]
        )
        content_type = content_type_of(request.key)
        async for chunk in chunks:
            yield httpbody_pb2.HttpBody(content_type=content_type, data=chunk)


class StorageInternalServicer(storage_pb2_grpc.StorageInternalServiceServicer):
    def __init__(self, storage: Storage):
        self.storage = storage

    async def PutObject(self, request_iterator, context):
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.HasField("info"):
            raise InvalidArgument("the first PutObject message must carry `info`", field="info")

        async def chunks():
            async for message in request_iterator:
                if not message.HasField("chunk"):
                    raise InvalidArgument("only the first PutObject message may carry `info`", field="info")
                yield message.chunk

        return await self._stored(chunks(), first.info.content_type)

    async def PutSmallObjects(self, request, context):
        sizes = [len(o.data) for o in request.objects]
        if any(size > SMALL_OBJECT_BYTES for size in sizes) or sum(sizes) > SMALL_BATCH_BYTES:
            raise InvalidArgument(
                f"PutSmallObjects takes objects of at most {SMALL_OBJECT_BYTES} bytes, at most"
                f" {SMALL_BATCH_BYTES} bytes in all; stream larger objects with PutObject",
                field="objects",
            )
        stored = await self.storage.put_small([(o.data, o.info.content_type, o.key) for o in request.objects])
        return storage_pb2.PutSmallObjectsResponse(objects=[self._answer(s) for s in stored])

    async def _stored(self, chunks, content_type: str) -> storage_pb2.PutObjectResponse:
        return self._answer(await self.storage.put(chunks, content_type))

    def _answer(self, stored: StoredObject) -> storage_pb2.PutObjectResponse:
        return storage_pb2.PutObjectResponse(
            key=stored.key,
            sha256=stored.sha256,
            size_bytes=stored.size_bytes,
            content_type=stored.content_type,
            url=self.storage.sign(stored.key),
        )

    async def GetObject(self, request, context):
        chunks = await self.storage.open(request.key, request.offset, request.length)
        yield storage_pb2.GetObjectResponse(
            info=storage_pb2.ObjectInfo(content_type=content_type_of(request.key))
        )
        async for chunk in chunks:
            yield storage_pb2.GetObjectResponse(chunk=chunk)

    async def SignUrls(self, request, context):
        return storage_pb2.SignUrlsResponse(urls=[self.storage.sign(key) for key in request.keys])

    async def DeleteObjects(self, request, context):
        deleted, kept = await self.storage.delete(
            list(request.keys),
            {key: since.ToNanoseconds() / 1e9 for key, since in request.unless_written_since.items()},
        )
        return storage_pb2.DeleteObjectsResponse(deleted=deleted, kept=kept)

    async def ListObjects(self, request, context):
        listed = await self.storage.list(request.start_after, request.page_size)
        answer = storage_pb2.ListObjectsResponse(
            next_start_after=listed[-1][0] if len(listed) == request.page_size else ""
        )
        for key, written in listed:
            item = answer.objects.add(key=key)
            item.written_at.FromNanoseconds(int(written * 1e9))
        return answer
