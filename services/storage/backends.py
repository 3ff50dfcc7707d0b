"""Where object bytes live: a local folder (the embedded default) or any S3 API (MinIO, R2, AWS)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import pathlib
import secrets
import tempfile
from collections.abc import AsyncIterator

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from .domain import CHUNK_BYTES, StoredObject, UrlSigner, key_for

# Objects up to this size are hashed in memory before upload; larger ones spill to a temp file.
SPOOL_BYTES = 8 * 1024 * 1024


class LocalFolderBackend:
    def __init__(self, root: pathlib.Path, signer: UrlSigner):
        self.root = root
        self.incoming = root / ".incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.signer = signer

    def _path(self, key: str) -> pathlib.Path:
        return self.root / key[:2] / key

    async def put(self, chunks: AsyncIterator[bytes], content_type: str) -> StoredObject:
        digest = hashlib.sha256()
        size = 0
        tmp = self.incoming / secrets.token_hex(16)
        try:
            # Chunks land in the page cache; only the fsync blocks, and that runs in a thread.
            with open(tmp, "wb") as out:  # noqa: ASYNC230
                async for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                key = key_for(digest.hexdigest(), content_type)
                await asyncio.to_thread(self._commit, out, tmp, self._path(key))
        finally:
            tmp.unlink(missing_ok=True)
        return StoredObject(key=key, sha256=digest.hexdigest(), size_bytes=size, content_type=content_type)

    @staticmethod
    def _commit(out, tmp: pathlib.Path, final: pathlib.Path) -> None:
        # Durable before the catalog row pointing at it can commit: data, then the directory entry.
        out.flush()
        os.fsync(out.fileno())
        final.parent.mkdir(exist_ok=True)
        try:
            os.link(tmp, final)
        except FileExistsError:
            return  # the same bytes are already stored
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def open(self, key: str) -> AsyncIterator[bytes]:
        with open(self._path(key), "rb") as source:  # noqa: ASYNC230  (local reads of one chunk)
            while chunk := source.read(CHUNK_BYTES):
                yield chunk

    async def delete(self, keys: list[str]) -> int:
        deleted = 0
        for key in keys:
            try:
                self._path(key).unlink()
                deleted += 1
            except FileNotFoundError:
                pass
        return deleted

    def sign(self, key: str) -> str:
        return self.signer.sign(key)


class S3Backend:
    def __init__(
        self,
        endpoint: str,
        public_endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        region: str,
        secure: bool,
        url_ttl_seconds: int,
    ):
        http = urllib3.PoolManager(
            maxsize=16,
            timeout=urllib3.Timeout(connect=5, read=60),
            retries=urllib3.Retry(total=3, backoff_factor=0.2),
        )
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        # URLs are signed for the address clients reach (`localhost:9000`), not the one this service
        # uses inside compose (`minio:9000`); with the region given, signing needs no network call.
        self.public_client = Minio(
            public_endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region
        )
        self.bucket = bucket
        self.ttl = dt.timedelta(seconds=url_ttl_seconds)

    async def ensure_bucket(self) -> None:
        def _ensure() -> None:
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise

        await asyncio.to_thread(_ensure)

    async def put(self, chunks: AsyncIterator[bytes], content_type: str) -> StoredObject:
        digest = hashlib.sha256()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                spool.write(chunk)
            key = key_for(digest.hexdigest(), content_type)
            spool.seek(0)
            await asyncio.to_thread(self._upload, key, spool, size, content_type)
        return StoredObject(key=key, sha256=digest.hexdigest(), size_bytes=size, content_type=content_type)

    def _upload(self, key: str, data, size: int, content_type: str) -> None:
        if self._exists(key):
            return
        self.client.put_object(self.bucket, key, data, size, content_type=content_type)

    def _exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, key)
            return True
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return False
            raise

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._exists, key)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        response = await asyncio.to_thread(self.client.get_object, self.bucket, key)
        try:
            stream = response.stream(CHUNK_BYTES)
            while chunk := await asyncio.to_thread(next, stream, b""):
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def delete(self, keys: list[str]) -> int:
        def _delete() -> int:
            errors = list(self.client.remove_objects(self.bucket, [DeleteObject(k) for k in keys]))
            if errors:
                raise RuntimeError(f"S3 refused to delete {len(errors)} objects: {errors[0]}")
            return len(keys)

        return await asyncio.to_thread(_delete) if keys else 0

    def sign(self, key: str) -> str:
        return self.public_client.presigned_get_object(self.bucket, key, expires=self.ttl)
