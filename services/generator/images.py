"""Images as things of their own: served by permanent URL, and their Content Credentials verified."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from imagegen.catalog.v1 import catalog_pb2

from services.common.errors import DomainError, NotFound
from services.common.ids import is_id
from services.common.vocabulary import STORAGE_KEY

from .clients import CatalogClient, StorageClient
from .provenance import ContentCredentials, Verification

# A permanent URL's key is the storage key: the image's sha256 and its extension.
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# Content-addressed bytes never change under their URL.
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass
class PermanentRead:
    """What to answer for a permanent URL: status, headers, and the bytes (none for 304 and 416)."""

    status: int
    headers: list[tuple[str, str]]
    content_type: str = ""
    chunks: AsyncIterator[bytes] | None = None


@dataclass(frozen=True)
class ImageVerification:
    image: catalog_pb2.ImageRecord
    verification: Verification


@dataclass(frozen=True)
class ByteRange:
    start: int
    # Inclusive, as in Content-Range.
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str, size: int) -> ByteRange | None:
    """One `bytes=` range of RFC 9110; None (send everything) for no header, several ranges or a form this
    does not read, as a server may."""
    matched = _RANGE.match(header.strip()) if header else None
    if matched is None:
        return None
    first, last = matched.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    return ByteRange(start, end)


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison, as If-None-Match asks."""
    tags = [t.strip() for t in if_none_match.split(",")]
    return any(t == "*" or t.removeprefix("W/") == etag for t in tags if t)


class Images:
    def __init__(self, catalog: CatalogClient, storage: StorageClient, credentials: ContentCredentials):
        self.catalog = catalog
        self.storage = storage
        self.credentials = credentials

    async def permanent(self, key: str, range_header: str, if_none_match: str) -> PermanentRead:
        if not STORAGE_KEY.match(key):
            raise NotFound("no image has this permanent URL")
        image = await self.catalog.resolve_permanent_image(key)
        etag = f'"{image.sha256}"'
        headers = [("etag", etag), ("cache-control", IMMUTABLE), ("accept-ranges", "bytes")]
        if etag_matches(if_none_match, etag):
            return PermanentRead(304, headers)
        try:
            wanted = parse_range(range_header, image.size_bytes)
        except RangeNotSatisfiable:
            return PermanentRead(416, [*headers, ("content-range", f"bytes */{image.size_bytes}")])
        if wanted is None:
            return PermanentRead(200, headers, image.content_type, self.storage.read(image.storage_key))
        headers.append(("content-range", f"bytes {wanted.start}-{wanted.end}/{image.size_bytes}"))
        chunks = self.storage.read(image.storage_key, wanted.start, wanted.length)
        return PermanentRead(206, headers, image.content_type, chunks)

    async def generation_provenance(
        self, project_id: str, generation_id: str, timeout: float | None
    ) -> list[ImageVerification]:
        if not is_id("generation", generation_id):
            raise NotFound(f"generation {generation_id!r} not found")
        record = await self.catalog.get_generation(project_id, generation_id, timeout)
        return list(await asyncio.gather(*(self._verified(image) for image in record.images)))

    async def _verified(self, image: catalog_pb2.ImageRecord) -> ImageVerification:
        try:
            data = await self.storage.read_all(image.storage_key)
        except DomainError as exc:
            raise DomainError(f"image {image.id} could not be read: {exc.message}") from exc
        return ImageVerification(image, await self.verify(data, image.content_type))

    async def verify(self, data: bytes, content_type: str) -> Verification:
        return await asyncio.to_thread(self.credentials.verify, data, content_type)
