"""Image inputs: read from a URL (through the guarded outbound client) or from the request itself,
checked, and stored under their content's key before the job is queued, so that every attempt on every
server sends the same bytes and no model server ever needs the app's own URL."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
from dataclasses import dataclass

from imagegen.catalog.v1 import catalog_pb2
from PIL import Image, UnidentifiedImageError

from services.common.errors import InvalidArgument
from services.common.outbound import OutboundClient, OutboundRefused
from services.common.vocabulary import storage_key

from .clients import CatalogClient, StorageClient

MAX_INPUT_BYTES = 20_000_000
MAX_INPUT_IMAGES = 16
MAX_INPUT_SIDE = 4096
FETCH_TIMEOUT_SECONDS = 15.0
_CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


@dataclass(frozen=True)
class Source:
    """An image a request names: a JSON pointer into its `input` (empty outside it), its role, and the
    URL, data URI or base64 text given."""

    pointer: str
    role: str
    text: str

    @property
    def described(self) -> str:
        if not self.pointer:
            return self.role if self.role == "mask" else "inputImages"
        parts = self.pointer.strip("/").split("/")
        path = "input"
        for part in parts:
            part = part.replace("~1", "/").replace("~0", "~")
            path += f"[{part}]" if part.isdigit() else f".{part}"
        return path


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    content_type: str
    width: int
    height: int
    sha256: str

    @property
    def key(self) -> str:
        return storage_key(self.sha256, self.content_type)


def is_url(text: str) -> bool:
    return text[:8].lower().startswith(("http://", "https://"))


def decode_inline(text: str, what: str) -> bytes:
    """The bytes of a data URI or bare base64."""
    if text[:5].lower() == "data:":
        header, comma, text = text.partition(",")
        if not comma or ";base64" not in header.lower():
            raise InvalidArgument(
                f"{what}: a data URI must be base64 (`data:image/png;base64,...`)", field=what
            )
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"{what} is not a URL, a data URI or valid base64", field=what) from None


def check_image(data: bytes, what: str, got: str = "") -> CheckedImage:
    """PNG, JPEG or WebP by content, at most MAX_INPUT_BYTES and MAX_INPUT_SIDE a side; the size is read
    from the header and refused before any pixel is decoded."""
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidArgument(f"{what} is {len(data)} bytes; the limit is {MAX_INPUT_BYTES}", field=what)
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format, image.size
            if kind not in _CONTENT_TYPES:
                raise InvalidArgument(f"{what} is a {kind} image; PNG, JPEG or WebP are accepted", field=what)
            if width > MAX_INPUT_SIDE or height > MAX_INPUT_SIDE:
                raise InvalidArgument(
                    f"{what} is {width}×{height} pixels; the limit is {MAX_INPUT_SIDE}×{MAX_INPUT_SIDE}",
                    field=what,
                )
            image.load()
    except Image.DecompressionBombError:
        raise InvalidArgument(
            f"{what} declares far more pixels than it may have;"
            f" the limit is {MAX_INPUT_SIDE}×{MAX_INPUT_SIDE}",
            field=what,
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        sent = f" (it sent {got})" if got else ""
        raise InvalidArgument(f"{what} is not a PNG, JPEG or WebP image{sent}", field=what) from None
    return CheckedImage(data, _CONTENT_TYPES[kind], width, height, hashlib.sha256(data).hexdigest())


class InputImages:
    def __init__(self, catalog: CatalogClient, storage: StorageClient, outbound: OutboundClient):
        self.catalog = catalog
        self.storage = storage
        self.outbound = outbound

    async def read(self, sources: list[Source]) -> list[CheckedImage]:
        """Every source's image, checked; the first bad one answers 400 and nothing is stored."""
        if len(sources) > MAX_INPUT_IMAGES:
            raise InvalidArgument(
                f"{len(sources)} input images; the limit is {MAX_INPUT_IMAGES}", field="inputImages"
            )
        images = list(await asyncio.gather(*(self._read(source) for source in sources)))
        firsts = [image for image, source in zip(images, sources, strict=True) if source.role == "image"]
        for image, source in zip(images, sources, strict=True):
            if (
                source.role == "mask"
                and firsts
                and (image.width, image.height) != (firsts[0].width, firsts[0].height)
            ):
                raise InvalidArgument(
                    f"{source.described} is {image.width}×{image.height}; a mask must be the size of its"
                    f" image ({firsts[0].width}×{firsts[0].height})",
                    field=source.described,
                )
            if source.role == "mask" and image.content_type != "image/png":
                raise InvalidArgument(f"{source.described} must be a PNG (its alpha marks what to change)")
        return images

    async def _read(self, source: Source) -> CheckedImage:
        what = source.described
        if not is_url(source.text):
            return check_image(decode_inline(source.text, what), what)
        try:
            fetched = await self.outbound.get(
                source.text,
                max_bytes=MAX_INPUT_BYTES,
                timeout=FETCH_TIMEOUT_SECONDS,
                accept=_CONTENT_TYPES.values(),
            )
        except OutboundRefused as exc:
            raise InvalidArgument(f"{what}: {exc}", field=what) from None
        return check_image(fetched.data, what, got=fetched.content_type or "no content type")

    async def store(
        self, images: list[CheckedImage], sources: list[Source]
    ) -> list[catalog_pb2.InputImageRecord]:
        """Stores the images and answers their records. They are noted as unused first: until a
        generation names them the sweep may take them, so a create that fails later leaks nothing."""
        unique = {image.key: image for image in images}
        await self.catalog.report_unused_blobs(list(unique))
        await asyncio.gather(*(self.storage.put(i.data, i.content_type, 60) for i in unique.values()))
        return [
            catalog_pb2.InputImageRecord(
                role=source.role,
                pointer=source.pointer,
                storage_key=image.key,
                sha256=image.sha256,
                content_type=image.content_type,
                size_bytes=len(image.data),
                width=image.width,
                height=image.height,
            )
            for image, source in zip(images, sources, strict=True)
        ]
