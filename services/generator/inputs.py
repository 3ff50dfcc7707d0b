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
from services.common.ids import is_id
from services.common.outbound import OutboundClient, OutboundRefused
from services.common.vocabulary import storage_key

from .clients import CatalogClient, StorageClient
from .sweeper import record_around_sweeps

MAX_INPUT_BYTES = 20_000_000
MAX_INPUT_IMAGES = 16
MAX_INPUT_SIDE = 4096
FETCH_TIMEOUT_SECONDS = 15.0
UPLOAD_TTL_SECONDS = 24 * 3600
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

    def record(self) -> catalog_pb2.InputImageRecord:
        """Its record as stored; the role and place are the create's to fill in."""
        return catalog_pb2.InputImageRecord(
            storage_key=self.key,
            sha256=self.sha256,
            content_type=self.content_type,
            size_bytes=len(self.data),
            width=self.width,
            height=self.height,
        )


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

    async def records(
        self, project_id: str, sources: list[Source]
    ) -> tuple[list[catalog_pb2.InputImageRecord], list[CheckedImage]]:
        """Every source as a stored input: uploads by id as they are, the rest read, checked and stored
        (answered too, for `store` to store again). The first bad source answers 400 (an unknown upload
        404) and nothing new is stored."""
        if len(sources) > MAX_INPUT_IMAGES:
            raise InvalidArgument(
                f"{len(sources)} input images; the limit is {MAX_INPUT_IMAGES}", field="inputImages"
            )
        named = [source.text for source in sources if is_id("upload", source.text)]
        uploads = iter(await self.catalog.get_uploads(project_id, named) if named else [])
        sent = [source for source in sources if not is_id("upload", source.text)]
        checked = iter(await asyncio.gather(*(self._read(source) for source in sent)))
        records = []
        for source in sources:
            if is_id("upload", source.text):
                record, image = catalog_pb2.InputImageRecord(), None
                record.CopyFrom(next(uploads).image)
            else:
                image = next(checked)
                record = image.record()
            record.role, record.pointer = source.role, source.pointer
            records.append((record, image))
        _check_masks([record for record, _ in records], sources)
        stored = [image for _, image in records if image is not None]
        await self.store(stored)
        return [record for record, _ in records], stored

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

    async def store(self, images: list[CheckedImage]) -> None:
        """Stores the images. They are noted as unused first: until a generation or an upload names
        them the sweep may take them, so a create that fails later leaks nothing."""
        unique = {image.key: image for image in images}
        if not unique:
            return
        await self.catalog.report_unused_blobs(list(unique))
        await asyncio.gather(*(self.storage.put(i.data, i.content_type, 60) for i in unique.values()))

    async def upload(self, project_id: str, data: bytes) -> tuple[catalog_pb2.UploadRecord, str]:
        """Stores an uploaded image and records it for later creates; answers it and a signed URL."""
        image = check_image(data, "the upload")
        await self.store([image])
        upload = await record_around_sweeps(
            self.catalog,
            [image.key],
            lambda again: self.catalog.record_upload(project_id, image.record(), UPLOAD_TTL_SECONDS, again),
            lambda: self.store([image]),
        )
        [url] = await self.storage.sign([image.key], 30, just_stored=True)
        return upload, url


def _check_masks(records: list[catalog_pb2.InputImageRecord], sources: list[Source]) -> None:
    images = [record for record in records if record.role == "image"]
    for record, source in zip(records, sources, strict=True):
        if record.role != "mask":
            continue
        if record.content_type != "image/png":
            raise InvalidArgument(
                f"{source.described} must be a PNG (its alpha marks what to change)", field=source.described
            )
        if images and (record.width, record.height) != (images[0].width, images[0].height):
            raise InvalidArgument(
                f"{source.described} is {record.width}×{record.height}; a mask must be the size of its"
                f" image ({images[0].width}×{images[0].height})",
                field=source.described,
            )
