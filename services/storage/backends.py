"""Where object bytes live: a local folder (the embedded default) or any S3 API (MinIO, R2, AWS)."""

from __future__ import annotations

import asyncio
import ctypes
import datetime as dt
import hashlib
import io
import os
import pathlib
import secrets
import sys
import tempfile
import threading
from collections.abc import AsyncIterator

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from services.common.vocabulary import STORAGE_KEY, storage_key

from .domain import CHUNK_BYTES, URL_STABLE_SECONDS, StoredObject, UrlSigner, url_window

# A conditional delete keeps an object written this long before the time given too. The time comes from
# Postgres's clock and the write time from the file system's or S3's: ext4 stamps files from the kernel's
# coarse clock (a tick, up to 10 ms, behind), S3 keeps whole seconds, and hosts' clocks differ a little.
# An object kept by the slack is reported unused again and goes at a later sweep.
WRITTEN_SINCE_SLACK_SECONDS = 2.0

# The longest a presigned S3 URL may live (SigV4).
_S3_MAX_EXPIRY = dt.timedelta(days=7)

_NO_SUCH_OBJECT = ("NoSuchKey", "NoSuchObject", "ResourceNotFound")

# Objects up to this size are hashed in memory before upload; larger ones spill to a temp file.
SPOOL_BYTES = 8 * 1024 * 1024


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _load_syncfs():
    """Linux's syncfs(2): one journal commit makes a whole batch durable, where fsync per file and per
    directory costs one each. The os module has no binding for it, hence ctypes."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _load_syncfs()


def _make_durable(
    root: pathlib.Path, files: list[int] = (), directories: set[pathlib.Path] = frozenset()
) -> None:
    if not files and not directories:
        return
    if _SYNCFS is not None:
        fd = os.open(root, os.O_RDONLY)
        try:
            if _SYNCFS(fd) != 0:
                error = ctypes.get_errno()
                raise OSError(error, os.strerror(error), str(root))
        finally:
            os.close(fd)
        return
    for fd in files:
        os.fsync(fd)
    for directory in directories:
        _fsync_directory(directory)


def _fsync_directory(directory: pathlib.Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalFolderBackend:
    def __init__(self, root: pathlib.Path, signer: UrlSigner):
        self.root = root
        self.incoming = root / ".incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.signer = signer
        # Naming an object (or finding it named and writing its time again) and a conditional delete's
        # look-then-unlink exclude each other, so a delete never takes bytes a put has just answered for.
        self._names = threading.Lock()

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
                key = storage_key(digest.hexdigest(), content_type)
                await asyncio.to_thread(self._commit, out, tmp, self._path(key))
        finally:
            tmp.unlink(missing_ok=True)
        return StoredObject(key=key, sha256=digest.hexdigest(), size_bytes=size, content_type=content_type)

    def _commit(self, out, tmp: pathlib.Path, final: pathlib.Path) -> None:
        # Durable before the catalog row pointing at it can commit: data, then the directory entry.
        out.flush()
        os.fsync(out.fileno())
        if self._name(tmp, final):
            _fsync_directory(final.parent)

    def _name(self, tmp: pathlib.Path, final: pathlib.Path) -> bool:
        """Links the written bytes under their key; answers False when the same bytes were stored
        already, whose written time is then now (the unused-blob sweep keeps what was written since a
        blob became unused)."""
        final.parent.mkdir(exist_ok=True)
        with self._names:
            try:
                os.link(tmp, final)
                return True
            except FileExistsError:
                os.utime(final)
                return False

    async def put_small(self, objects: list[tuple[bytes, str, str]]) -> list[StoredObject]:
        return await asyncio.to_thread(self._put_small, objects)

    def _put_small(self, objects: list[tuple[bytes, str, str]]) -> list[StoredObject]:
        stored, pending = [], []
        try:
            for data, content_type, given_key in objects:
                sha256 = hashlib.sha256(data).hexdigest()
                key = given_key or storage_key(sha256, content_type)
                stored.append(
                    StoredObject(key=key, sha256=sha256, size_bytes=len(data), content_type=content_type)
                )
                tmp = self.incoming / secrets.token_hex(16)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                pending.append((tmp, self._path(key), fd))
                _write_all(fd, data)
            # The bytes first: a key must never name a file whose data is not on disk yet.
            _make_durable(self.root, files=[fd for _, _, fd in pending])
            directories = set()
            for tmp, final, _ in pending:
                if self._name(tmp, final):
                    directories.add(final.parent)
            # Then the names, before the caller hears of any object.
            _make_durable(self.root, directories=directories)
        finally:
            for tmp, _, fd in pending:
                os.close(fd)
                tmp.unlink(missing_ok=True)
        return stored

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def open(self, key: str, offset: int = 0, length: int = 0) -> AsyncIterator[bytes]:
        with open(self._path(key), "rb") as source:  # noqa: ASYNC230  (local reads of one chunk)
            source.seek(offset)
            left = length or None
            while chunk := source.read(CHUNK_BYTES if left is None else min(CHUNK_BYTES, left)):
                yield chunk
                if left is not None:
                    left -= len(chunk)

    async def delete(self, keys: list[str], unless_written_since: dict[str, float]) -> tuple[int, list[str]]:
        return await asyncio.to_thread(self._delete, keys, unless_written_since)

    def _delete(self, keys: list[str], unless_written_since: dict[str, float]) -> tuple[int, list[str]]:
        deleted, kept = 0, []
        for key in [*keys, *unless_written_since]:
            path, since = self._path(key), unless_written_since.get(key)
            with self._names:
                try:
                    if since is not None and path.stat().st_mtime >= since - WRITTEN_SINCE_SLACK_SECONDS:
                        kept.append(key)
                        continue
                    path.unlink()
                    deleted += 1
                except FileNotFoundError:
                    pass
        return deleted, kept

    def sign(self, key: str) -> str:
        return self.signer.sign(key)

    async def list(self, start_after: str, page_size: int) -> list[tuple[str, float]]:
        return await asyncio.to_thread(self._list, start_after, page_size)

    def _list(self, start_after: str, page_size: int) -> list[tuple[str, float]]:
        listed = []
        for shard in sorted(p for p in self.root.iterdir() if p.is_dir() and len(p.name) == 2):
            if shard.name < start_after[:2]:
                continue
            for path in sorted(shard.iterdir()):
                if path.name > start_after and STORAGE_KEY.match(path.name):
                    listed.append((path.name, path.stat().st_mtime))
                    if len(listed) == page_size:
                        return listed
        return listed


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
            key = storage_key(digest.hexdigest(), content_type)
            spool.seek(0)
            await asyncio.to_thread(self._upload, key, spool, size, content_type)
        return StoredObject(key=key, sha256=digest.hexdigest(), size_bytes=size, content_type=content_type)

    async def put_small(self, objects: list[tuple[bytes, str, str]]) -> list[StoredObject]:
        async def one(data: bytes, content_type: str, given_key: str) -> StoredObject:
            sha256 = hashlib.sha256(data).hexdigest()
            key = given_key or storage_key(sha256, content_type)
            if not (given_key and await self.exists(key)):
                await asyncio.to_thread(self._upload, key, io.BytesIO(data), len(data), content_type)
            return StoredObject(key=key, sha256=sha256, size_bytes=len(data), content_type=content_type)

        return list(await asyncio.gather(*(one(*o) for o in objects)))

    def _upload(self, key: str, data, size: int, content_type: str) -> None:
        # Under a content key, written even when the same bytes are stored: the object's time is then now,
        # and the unused-blob sweep keeps what was written since a blob became unused. (A variant, under
        # the key given, is made once: put_small keeps the first.)
        self.client.put_object(self.bucket, key, data, size, content_type=content_type)

    def _exists(self, key: str) -> bool:
        return self._written_at(key) is not None

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._exists, key)

    async def open(self, key: str, offset: int = 0, length: int = 0) -> AsyncIterator[bytes]:
        response = await asyncio.to_thread(self.client.get_object, self.bucket, key, offset, length)
        try:
            stream = response.stream(CHUNK_BYTES)
            while chunk := await asyncio.to_thread(next, stream, b""):
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def delete(self, keys: list[str], unless_written_since: dict[str, float]) -> tuple[int, list[str]]:
        def _delete() -> tuple[int, list[str]]:
            # S3 has no delete-if-unmodified-since: a put landing between the look and the delete is
            # lost, a window of one request instead of a job's whole put-to-record time.
            kept = [
                key
                for key, since in unless_written_since.items()
                if (written := self._written_at(key)) is not None
                and written >= since - WRITTEN_SINCE_SLACK_SECONDS
            ]
            doomed = [*keys, *(key for key in unless_written_since if key not in kept)]
            if doomed:
                errors = list(self.client.remove_objects(self.bucket, [DeleteObject(k) for k in doomed]))
                if errors:
                    raise RuntimeError(f"S3 refused to delete {len(errors)} objects: {errors[0]}")
            return len(doomed), kept

        return await asyncio.to_thread(_delete)

    def _written_at(self, key: str) -> float | None:
        try:
            return self.client.stat_object(self.bucket, key).last_modified.timestamp()
        except S3Error as exc:
            if exc.code in _NO_SUCH_OBJECT:
                return None
            raise

    async def list(self, start_after: str, page_size: int) -> list[tuple[str, float]]:
        def _list() -> list[tuple[str, float]]:
            listed = []
            for item in self.client.list_objects(
                self.bucket, recursive=True, start_after=start_after or None
            ):
                listed.append((item.object_name, item.last_modified.timestamp()))
                if len(listed) == page_size:
                    break
            return listed

        return await asyncio.to_thread(_list)

    def sign(self, key: str) -> str:
        # Signed as at the window's start, so every read within the window answers the same URL.
        issued = dt.datetime.fromtimestamp(url_window(), dt.UTC)
        expires = min(self.ttl + dt.timedelta(seconds=URL_STABLE_SECONDS), _S3_MAX_EXPIRY)
        return self.public_client.presigned_get_object(self.bucket, key, expires=expires, request_date=issued)
