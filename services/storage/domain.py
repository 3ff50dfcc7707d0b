"""Object rules: content-addressed keys, accepted media types, and signed URLs."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from services.common import metrics
from services.common.errors import InvalidArgument, NotFound, PermissionDenied
from services.common.vocabulary import EXTENSIONS, STORAGE_KEY, VARIANT_TYPE, original_key

CHUNK_BYTES = 1024 * 1024
# Signed URLs are the same for every read within a window of this many seconds (their expiry rounded up
# to it), so a browser caches an image across page loads; each stays valid at least the TTL.
URL_STABLE_SECONDS = 600
CONTENT_TYPES = {ext: ctype for ctype, ext in EXTENSIONS.items()}
MAX_LIST_PAGE = 1000


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    size_bytes: int
    content_type: str


def check_key(key: str) -> str:
    """Keys are only ever ones this service made; anything else (paths, `..`) is rejected."""
    if not STORAGE_KEY.match(key):
        raise InvalidArgument(
            f"{key!r} is not an object key (sha256 hex and an image extension)", field="key"
        )
    return key


def content_type_of(key: str) -> str:
    return CONTENT_TYPES[key.rsplit(".", 1)[1]]


def check_content_type(content_type: str) -> str:
    if content_type not in EXTENSIONS:
        raise InvalidArgument(
            f"content type {content_type!r} is not stored; use one of {', '.join(EXTENSIONS)}",
            field="content_type",
        )
    return content_type


class Backend(Protocol):
    async def put(self, chunks: AsyncIterator[bytes], content_type: str) -> StoredObject: ...
    async def put_small(self, objects: list[tuple[bytes, str, str]]) -> list[StoredObject]: ...
    async def open(self, key: str, offset: int = 0, length: int = 0) -> AsyncIterator[bytes]: ...
    async def exists(self, key: str) -> bool: ...
    async def delete(self, keys: list[str], unless_written_since: dict[str, float]) -> tuple[int, list[str]]:
        """Deletes `keys`, and each key of `unless_written_since` whose object was last written before
        the Unix time given (to the backend's grain: kept when in doubt); answers how many went and the
        keys kept."""
        ...

    def sign(self, key: str) -> str: ...
    async def list(self, start_after: str, page_size: int) -> list[tuple[str, float]]: ...


def url_window(now: float | None = None) -> int:
    """The start of the URL_STABLE_SECONDS window `now` falls in: what every signature in it shares."""
    now = now if now is not None else time.time()
    return int(now // URL_STABLE_SECONDS) * URL_STABLE_SECONDS


class UrlSigner:
    """Expiring HMAC-SHA256 URLs for objects served through the gateway (`/api/files/{key}`)."""

    def __init__(self, secret: str, public_url: str, ttl_seconds: int):
        self._secret = secret.encode()
        self._base = public_url.rstrip("/")
        self.ttl_seconds = ttl_seconds

    def _signature(self, key: str, expires: int) -> str:
        return hmac.new(self._secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def sign(self, key: str, now: float | None = None) -> str:
        expires = url_window(now) + URL_STABLE_SECONDS + self.ttl_seconds
        return f"{self._base}/api/files/{key}?expires={expires}&signature={self._signature(key, expires)}"

    def cache_control(self, expires: int, now: float | None = None) -> str:
        """How long a browser may keep what a signed URL served: until the URL expires."""
        left = max(0, expires - int(now if now is not None else time.time()))
        return f"private, max-age={left}, immutable"

    def verify(self, key: str, expires: int, signature: str, now: float | None = None) -> None:
        expected = self._signature(key, expires)
        if not hmac.compare_digest(expected, signature):
            raise PermissionDenied("the URL's signature is not valid; ask the API for a fresh URL")
        if expires < (now if now is not None else time.time()):
            raise PermissionDenied("the URL has expired; ask the API for a fresh URL")


def _count_written(stored: list[StoredObject]) -> None:
    if metrics.enabled:
        metrics.OBJECTS_WRITTEN.inc(len(stored))
        metrics.BYTES_WRITTEN.inc(sum(s.size_bytes for s in stored))


class Storage:
    def __init__(self, backend: Backend, signer: UrlSigner):
        self.backend = backend
        self.signer = signer

    async def put(self, chunks: AsyncIterator[bytes], content_type: str) -> StoredObject:
        stored = await self.backend.put(chunks, check_content_type(content_type))
        _count_written([stored])
        return stored

    async def put_small(self, objects: list[tuple[bytes, str, str]]) -> list[StoredObject]:
        """Stores objects held in memory, each under its content's key or the variant key given; all are
        durable when it returns."""
        for _, content_type, key in objects:
            check_content_type(content_type)
            if key and not (check_key(key) and original_key(key) != key and content_type == VARIANT_TYPE):
                raise InvalidArgument(
                    f"{key!r} is not a variant's key; only variants are stored under a key given", field="key"
                )
        stored = await self.backend.put_small(objects) if objects else []
        _count_written(stored)
        return stored

    async def open(self, key: str, offset: int = 0, length: int = 0) -> AsyncIterator[bytes]:
        check_key(key)
        if offset < 0 or length < 0:
            raise InvalidArgument("offset and length must not be negative", field="offset")
        if not await self.backend.exists(key):
            raise NotFound(f"object {key} not found")
        return self.backend.open(key, offset, length)

    def sign(self, key: str) -> str:
        return self.backend.sign(check_key(key))

    async def delete(
        self, keys: list[str], unless_written_since: dict[str, float] | None = None
    ) -> tuple[int, list[str]]:
        """Deletes `keys`, and those of `unless_written_since` last written before the time given: a
        put of bytes already stored writes them again, so an object written since belongs to a job about
        to record it, and is kept. Answers how many went and the keys kept."""
        since = {check_key(key): at for key, at in (unless_written_since or {}).items()}
        return await self.backend.delete([check_key(k) for k in keys], since)

    async def list(self, start_after: str, page_size: int) -> list[tuple[str, float]]:
        """(key, written at, Unix seconds) of up to `page_size` objects after `start_after`, in key order."""
        if not 1 <= page_size <= MAX_LIST_PAGE:
            raise InvalidArgument(f"pageSize must be between 1 and {MAX_LIST_PAGE}", field="page_size")
        return await self.backend.list(start_after, page_size)

    async def open_signed(self, key: str, expires: int, signature: str) -> AsyncIterator[bytes]:
        check_key(key)
        self.signer.verify(key, expires, signature)
        return await self.open(key)
