"""What both compatibility surfaces do: make images synchronously, then hand back their bytes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from imagegen.catalog.v1 import catalog_pb2

from services.common.errors import DomainError, FailedPrecondition, Unavailable

from ..clients import StorageClient
from ..domain import Generated, Generator
from ..public import permanent_url
from ..requests import CreateRequest


@dataclass(frozen=True)
class MadeImage:
    record: catalog_pb2.ImageRecord
    data: bytes
    # Where a client can fetch it: the permanent URL, or the expiring signed one where those are off.
    url: str
    permanent: bool


async def make_images(
    generator: Generator,
    storage: StorageClient,
    api_key: str,
    request: CreateRequest,
    idempotency_key: str,
    timeout: float | None,
    public_url: str,
    with_data: bool = True,
) -> tuple[Generated, list[MadeImage]]:
    """The key is authenticated in the enqueue itself (a publishable key held to its user there), and
    images get permanent URLs where the key's project has them on. With `with_data`, each image's
    bytes too (b"" without): as this process's worker just stored them, or read back from storage."""
    generated = await generator.create_from(api_key, request, idempotency_key, timeout)
    permanent_base = public_url if generated.principal.permanent_urls else ""
    record = generated.record
    if record.status == "cancelled":
        raise FailedPrecondition(f"generation {record.id} was cancelled: {record.reason}")
    if record.status != "completed":
        raise Unavailable(f"generation {record.id} failed: {record.reason or 'no reason given'}")

    async def read(key: str) -> bytes:
        if not with_data:
            return b""
        held = generated.image_data.get(key)
        return held if held is not None else await storage.read_all(key)

    try:
        data = await asyncio.gather(*(read(image.storage_key) for image in record.images))
    except DomainError as exc:
        raise Unavailable(f"generation {record.id}'s images could not be read: {exc.message}") from exc
    made = [
        MadeImage(
            image,
            content,
            permanent_url(permanent_base, image.permanent_key) if permanent_base else signed,
            bool(permanent_base),
        )
        for image, content, signed in zip(record.images, data, generated.urls, strict=True)
    ]
    return generated, made
