"""Generation requests: validate, queue, and (for sync callers) wait for the worker's answer."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
from google.protobuf import timestamp_pb2
from imagegen.catalog.v1 import catalog_pb2

from services.common.errors import DeadlineExceeded, DomainError, InvalidArgument, NotFound
from services.common.ids import is_id, new_id
from services.common.vocabulary import (
    DEFAULT_PRIORITY,
    PRIORITIES,
    STATUSES,
    TERMINAL_STATUSES,
    WEBHOOK_EVENTS,
    variant_key,
    variant_widths,
)

from .clients import CatalogClient, StorageClient
from .inputs import MAX_INPUT_BYTES, CheckedImage, InputImages
from .sweeper import record_around_sweeps

if TYPE_CHECKING:
    from .requests import CreateRequest
    from .worker import Worker

log = logging.getLogger("imagegen.generator")

MAX_PROMPT_CHARS = 4000
MIN_SIDE, MAX_SIDE, SIDE_STEP = 64, 2048, 8
DEFAULT_SIDE = 512
MAX_IMAGES = 4
MAX_USER_CHARS = 256
# `Prefer: wait=N` (as Replicate's): a sync create answers after at most N seconds and the job goes on.
# Plain `Prefer: wait` waits the most; a create's route in Envoy allows 120 s.
PREFER_WAIT_MAX_SECONDS = 60
# A bounded wait answers this long before the caller's own deadline, so the answer still reaches it.
_ANSWER_MARGIN_SECONDS = 0.5
MAX_CALLBACK_URL_CHARS = 2048
MAX_IDEMPOTENCY_KEY_CHARS = 255
_CALLBACK_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")


def request_hash(spec: catalog_pb2.GenerationSpec, inputs=()) -> bytes:
    """What makes two requests "the same" for an Idempotency-Key: the spec as the client gave it (no
    seed picked yet) and its input images' bytes, not how to answer."""
    digest = hashlib.sha256(spec.SerializeToString(deterministic=True))
    for image in inputs:
        digest.update(f"{image.role}:{image.pointer}:{image.sha256}".encode())
    return digest.digest()


@dataclass(frozen=True)
class Generated:
    """A catalog record plus the signed URL of each of its images, in image order."""

    record: catalog_pb2.GenerationRecord
    urls: list[str]
    # Who asked, when the catalog authenticated the key in the same call as the enqueue.
    principal: catalog_pb2.Principal | None = None
    # The signed URL of each input image, in input order.
    input_urls: list[str] = field(default_factory=list)
    # The signed URL of each variant, in `variant_keys(record)` order.
    variant_urls: list[str] = field(default_factory=list)
    # Images' bytes by storage key, when this process's worker just stored them.
    image_data: dict[str, bytes] = field(default_factory=dict)


def variant_keys(record: catalog_pb2.GenerationRecord) -> list[str]:
    """The keys of a generation's image variants: image by image, narrowest first."""
    return [
        variant_key(image.storage_key, width)
        for image in record.images
        if image.variants
        for width in variant_widths(image.width)
    ]


def _side(name: str, value: int, server_decides: bool) -> int:
    if value == 0:
        return 0 if server_decides else DEFAULT_SIDE
    if not MIN_SIDE <= value <= MAX_SIDE or value % SIDE_STEP:
        raise InvalidArgument(
            f"{name} must be a multiple of {SIDE_STEP} between {MIN_SIDE} and {MAX_SIDE}; got {value}",
            field=name,
        )
    return value


def validate(
    prompt: str,
    negative_prompt: str,
    model: str,
    user: str,
    n: int,
    width: int,
    height: int,
    seed: int | None,
    default_model: str,
    priority: str = "",
    callback_url: str = "",
    server_decides_size: bool = False,
    webhook_events_filter: Sequence[str] = (),
) -> catalog_pb2.GenerationSpec:
    """The spec of a create, checked. With `server_decides_size` (a model-native request), a size left
    out stays 0: the model server picks it."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidArgument(
            "prompt is required (at the top level or as input.prompt): describe the image to generate",
            field="prompt",
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidArgument(
            f"prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}", field="prompt"
        )
    if len(negative_prompt) > MAX_PROMPT_CHARS:
        raise InvalidArgument(
            f"negativePrompt is {len(negative_prompt)} characters; the limit is {MAX_PROMPT_CHARS}",
            field="negative_prompt",
        )
    if len(user) > MAX_USER_CHARS:
        raise InvalidArgument(f"user is longer than {MAX_USER_CHARS} characters", field="user")
    if len(model) > 128:
        raise InvalidArgument("model is longer than 128 characters", field="model")
    if n == 0:
        n = 1
    if not 1 <= n <= MAX_IMAGES:
        raise InvalidArgument(f"n must be between 1 and {MAX_IMAGES}; got {n}", field="n")
    priority = priority.strip().lower() or DEFAULT_PRIORITY
    if priority not in PRIORITIES:
        raise InvalidArgument(
            f"priority must be one of {', '.join(PRIORITIES)}; got {priority!r}", field="priority"
        )
    if callback_url and (len(callback_url) > MAX_CALLBACK_URL_CHARS or not _CALLBACK_URL.match(callback_url)):
        raise InvalidArgument(
            "callbackUrl must be an http:// or https:// URL of at most"
            f" {MAX_CALLBACK_URL_CHARS} characters; got {callback_url[:100]!r}",
            field="callback_url",
        )
    unknown = sorted(set(webhook_events_filter) - set(WEBHOOK_EVENTS))
    if unknown:
        raise InvalidArgument(
            f"webhookEventsFilter takes {', '.join(WEBHOOK_EVENTS)}; got {unknown[0][:40]!r}",
            field="webhook_events_filter",
        )
    if webhook_events_filter and not callback_url:
        raise InvalidArgument("webhookEventsFilter needs a callbackUrl to send them to", field="callback_url")
    spec = catalog_pb2.GenerationSpec(
        prompt=prompt,
        negative_prompt=negative_prompt,
        model=model or default_model,
        user=user,
        n=n,
        width=_side("width", width, server_decides_size),
        height=_side("height", height, server_decides_size),
        priority=priority,
        callback_url=callback_url,
        webhook_events_filter=[event for event in WEBHOOK_EVENTS if event in webhook_events_filter],
    )
    if seed is not None:
        spec.seed = seed
    return spec


def parse_prefer_wait(prefer: str) -> float | None:
    """Seconds from a `Prefer` header's `wait` or `wait=N` (RFC 7240); None when it asks no wait."""
    for preference in prefer.split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        value = value.strip().strip('"')
        if not value:
            return float(PREFER_WAIT_MAX_SECONDS)
        if not value.isdigit() or not 1 <= int(value) <= PREFER_WAIT_MAX_SECONDS:
            raise InvalidArgument(
                f"Prefer: wait=N takes whole seconds from 1 to {PREFER_WAIT_MAX_SECONDS}; got {value[:20]!r}",
                field="prefer",
            )
        return float(value)
    return None


def check_idempotency_key(key: str) -> str:
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not key.isprintable():
        raise InvalidArgument(
            f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY_CHARS} printable characters",
            field="idempotency_key",
        )
    return key


class Generator:
    def __init__(
        self,
        catalog: CatalogClient,
        storage: StorageClient,
        worker: Worker | None = None,
        inputs: InputImages | None = None,
    ):
        self.catalog = catalog
        self.storage = storage
        self.inputs = inputs
        # This process's worker: a sync job leased to it at enqueue is answered from here, without
        # a round through the queue's notifications.
        self.worker = worker

    async def create_from(
        self,
        api_key: str,
        request: CreateRequest,
        idempotency_key: str,
        timeout: float | None,
        wait_at_most: float | None = None,
    ) -> Generated:
        """A create as the app wrote it: its input images are read, checked and stored (after the key
        is authenticated: nothing is fetched for an unknown caller), then it is queued."""
        inputs: list[catalog_pb2.InputImageRecord] = []
        stored: list[CheckedImage] = []
        if request.images:
            if self.inputs is None:
                raise InvalidArgument("this generator takes no input images", field="inputImages")
            principal = await self.catalog.authenticate(api_key)
            inputs, stored = await self.inputs.records(principal.project_id, request.images)

        def create(inputs_stored_again: bool) -> Awaitable[Generated]:
            return self.create(
                api_key,
                request.spec,
                request.wait,
                idempotency_key,
                timeout,
                wait_at_most,
                inputs=inputs,
                request_body=request.request_body,
                inputs_stored_again=inputs_stored_again,
            )

        if not stored:
            return await create(False)
        # The enqueue names the inputs' keys (refused while a sweep holds one; see the helper).
        return await record_around_sweeps(
            self.catalog, [image.key for image in stored], create, lambda: self.inputs.store(stored)
        )

    async def create(
        self,
        api_key: str,
        spec: catalog_pb2.GenerationSpec,
        wait: bool,
        idempotency_key: str,
        timeout: float | None,
        wait_at_most: float | None = None,
        inputs: list[catalog_pb2.InputImageRecord] | tuple = (),
        request_body: bytes = b"",
        inputs_stored_again: bool = False,
    ) -> Generated:
        """Queues the generation; with `wait`, answers once it is finished (whatever way it finished).

        A sync caller who gives up (deadline, disconnect) cancels the generation, so no server keeps
        working for nobody. With `wait_at_most` (Prefer: wait=N) the wait is bounded instead: the
        answer is the generation as it stands by then, and the job goes on whatever the caller does.
        The catalog authenticates `api_key` in the enqueue itself; the answer carries its principal.
        """
        request = catalog_pb2.EnqueueGenerationRequest(
            # Picked here so that the enqueue is safe to send again to another catalog replica.
            generation_id=new_id("generation"),
            api_key=api_key,
            spec=spec,
            idempotency_key=idempotency_key,
            request_hash=request_hash(spec, inputs) if idempotency_key else b"",
            inputs=inputs,
            request_body=request_body,
            stored_again=inputs_stored_again,
        )
        if not spec.HasField("seed") and not spec.input:
            # A model-native request without a seed leaves it to the model server, as sent.
            request.spec.seed = secrets.randbelow(2**32)
        bounded = wait and wait_at_most is not None
        if wait and not bounded and timeout is not None:
            request.deadline.CopyFrom(_timestamp_in(timeout))
        reserved = wait and not bounded and self.worker is not None and self.worker.reserve_slot()
        if reserved:
            request.claim_for_worker = self.worker.id
            request.lease_seconds = self.worker.config.lease_seconds
        try:
            answer = await self.catalog.enqueue(request, timeout)
        except BaseException:
            if reserved:
                self.worker.release_slot()
            raise
        here = None
        if reserved:
            if answer.HasField("job"):
                here = self.worker.run_leased(answer.job)
            else:
                self.worker.release_slot()
        record = answer.generation
        project_id = record.project_id
        principal = answer.principal if answer.HasField("principal") else None
        if not wait or record.status in TERMINAL_STATUSES:
            return await self.signed(record, timeout, principal=principal)
        if bounded:
            limit = wait_at_most if timeout is None else min(wait_at_most, timeout - _ANSWER_MARGIN_SECONDS)
            record = await self._latest_within(project_id, record, max(limit, 0))
            return await self.signed(record, timeout, principal=principal)
        try:
            if here is not None:
                try:
                    finished = await asyncio.wait_for(asyncio.shield(here), timeout)
                except TimeoutError:
                    raise DeadlineExceeded("the caller's deadline passed") from None
                if finished is not None and finished.record.status in TERMINAL_STATUSES:
                    generated = await self.signed(
                        finished.record, timeout, just_stored=True, principal=principal
                    )
                    return dataclasses.replace(generated, image_data=finished.image_data)
            async for update in self.catalog.watch_generation(
                project_id, record.id, timeout, terminal_only=True
            ):
                record = update
            return await self.signed(record, timeout, just_stored=True, principal=principal)
        except BaseException as exc:
            if answer.replayed or not _caller_gave_up(exc):
                raise
            await asyncio.shield(self._abandon(project_id, record.id))
            if isinstance(exc, DomainError):
                raise DeadlineExceeded(
                    f"generation {record.id} did not finish in time and was cancelled; send"
                    ' `"async": true` and watch it instead for long jobs'
                ) from None
            raise

    async def upload(
        self, api_key: str, chunks: AsyncIterator[bytes]
    ) -> tuple[catalog_pb2.UploadRecord, str]:
        """Reads an uploaded image (after its key is authenticated; at most MAX_INPUT_BYTES of it),
        stores it and records it for the project's later creates. Answers it and a signed URL."""
        if self.inputs is None:
            raise InvalidArgument("this generator takes no input images", field="body")
        principal = await self.catalog.authenticate(api_key)
        data = bytearray()
        async for chunk in chunks:
            data += chunk
            if len(data) > MAX_INPUT_BYTES:
                raise InvalidArgument(f"the upload is larger than {MAX_INPUT_BYTES} bytes", field="body")
        if not data:
            raise InvalidArgument("send the image's bytes as the request body", field="body")
        return await self.inputs.upload(principal.project_id, bytes(data))

    async def _latest_within(
        self, project_id: str, record: catalog_pb2.GenerationRecord, seconds: float
    ) -> catalog_pb2.GenerationRecord:
        """The generation as its watch last showed it, after at most `seconds` (sooner once finished)."""
        try:
            async with asyncio.timeout(seconds):
                async for update in self.catalog.watch_generation(project_id, record.id, None):
                    record = update
        except TimeoutError:
            pass
        return record

    async def _abandon(self, project_id: str, generation_id: str) -> None:
        try:
            await self.catalog.cancel_generation(project_id, generation_id, "the caller stopped waiting")
        except DomainError as exc:
            log.info(
                "abandoned generation not cancelled",
                extra={"fields": {"id": generation_id, "why": exc.message}},
            )

    async def get(
        self, project_id: str, generation_id: str, timeout: float | None, only_user: str | None = None
    ) -> Generated:
        """With `only_user` (a publishable key's user), another user's generation is not found."""
        if not is_id("generation", generation_id):
            raise NotFound(f"generation {generation_id!r} not found")
        record = _readable(await self.catalog.get_generation(project_id, generation_id, timeout), only_user)
        return await self.signed(record, timeout)

    async def signed(
        self,
        record: catalog_pb2.GenerationRecord,
        timeout: float | None,
        just_stored: bool = False,
        principal: catalog_pb2.Principal | None = None,
    ) -> Generated:
        keys = [image.storage_key for image in record.images]
        inputs = [image.storage_key for image in record.inputs]
        variants = variant_keys(record)
        urls = await self.storage.sign(keys + inputs + variants, timeout, just_stored)
        kept = len(keys) + len(inputs)
        return Generated(record, urls[: len(keys)], principal, urls[len(keys) : kept], urls[kept:])

    async def cancel(self, project_id: str, generation_id: str, timeout: float | None) -> Generated:
        if not is_id("generation", generation_id):
            raise NotFound(f"generation {generation_id!r} not found")
        record = await self.catalog.cancel_generation(project_id, generation_id, "cancelled by the caller")
        return await self.signed(record, timeout)

    async def watch(
        self,
        project_id: str,
        generation_id: str,
        timeout: float | None,
        previews: bool = False,
        only_user: str | None = None,
    ) -> AsyncIterator[Generated]:
        if not is_id("generation", generation_id):
            raise NotFound(f"generation {generation_id!r} not found")
        signed_inputs: list[str] | None = None
        async for record in self.catalog.watch_generation(
            project_id, generation_id, timeout, previews=previews
        ):
            record = _readable(record, only_user)
            if record.status not in TERMINAL_STATUSES and signed_inputs is not None:
                # Progress comes several times a second: the input images' URLs signed once serve it.
                yield Generated(record, [], input_urls=signed_inputs)
                continue
            generated = await self.signed(record, timeout)
            signed_inputs = generated.input_urls
            yield generated

    async def list(
        self, request: catalog_pb2.ListGenerationsRequest, timeout: float | None
    ) -> tuple[list[Generated], catalog_pb2.ListGenerationsResponse]:
        if request.status and request.status not in STATUSES:
            raise InvalidArgument(
                f"status must be one of {', '.join(STATUSES)}; got {request.status!r}", field="status"
            )
        page = await self.catalog.list_generations(request, timeout)
        variants = [variant_keys(record) for record in page.generations]
        keys = [
            key
            for record, derived in zip(page.generations, variants, strict=True)
            for key in [
                *(image.storage_key for image in record.images),
                *(image.storage_key for image in record.inputs),
                *derived,
            ]
        ]
        urls = iter(await self.storage.sign(keys, timeout))
        generated = [
            Generated(
                record,
                [next(urls) for _ in record.images],
                input_urls=[next(urls) for _ in record.inputs],
                variant_urls=[next(urls) for _ in derived],
            )
            for record, derived in zip(page.generations, variants, strict=True)
        ]
        return generated, page

    async def delete(self, project_id: str, generation_id: str, timeout: float | None) -> None:
        if not is_id("generation", generation_id):
            raise NotFound(f"generation {generation_id!r} not found")
        # Blobs no other row uses are left to the sweep: another job may be storing the same bytes now.
        await self.catalog.delete_generation(project_id, generation_id, timeout)


def _readable(record: catalog_pb2.GenerationRecord, only_user: str | None) -> catalog_pb2.GenerationRecord:
    # Another user's generation answers as a missing one would: a key learns nothing of it.
    if only_user is not None and record.spec.user != only_user:
        raise NotFound(f"generation {record.id} not found")
    return record


def _timestamp_in(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int((time.time() + seconds) * 1e9))
    return stamp


def _caller_gave_up(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.CancelledError) or (
        isinstance(exc, DomainError) and exc.code == grpc.StatusCode.DEADLINE_EXCEEDED
    )
