"""Generation: validate, record, run the model, store every image, then record the images."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass

from imagegen.catalog.v1 import catalog_pb2

from services.common.errors import DomainError, InvalidArgument, NotFound, Unavailable
from services.common.ids import is_id

from .clients import CatalogClient, StorageClient
from .providers import PROVIDERS, ImageSpec, ModelError

log = logging.getLogger("imagegen.generator")

MAX_PROMPT_CHARS = 4000
MIN_SIDE, MAX_SIDE, SIDE_STEP = 64, 2048, 8
DEFAULT_SIDE = 512
MAX_IMAGES = 4
MAX_USER_CHARS = 256
STATUSES = ("pending", "processing", "completed", "failed")


@dataclass(frozen=True)
class GenerationInput:
    prompt: str
    negative_prompt: str
    model: str
    user: str
    n: int
    width: int
    height: int
    seed: int


@dataclass(frozen=True)
class Generated:
    """A catalog record plus the signed URL of each of its images, in image order."""

    record: catalog_pb2.GenerationRecord
    urls: list[str]


def _side(name: str, value: int) -> int:
    if value == 0:
        return DEFAULT_SIDE
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
) -> GenerationInput:
    if not prompt.strip():
        raise InvalidArgument("prompt is required: describe the image to generate", field="prompt")
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
    return GenerationInput(
        prompt=prompt,
        negative_prompt=negative_prompt,
        model=model or default_model,
        user=user,
        n=n,
        width=_side("width", width),
        height=_side("height", height),
        seed=secrets.randbelow(2**32) if seed is None else seed,
    )


class Generator:
    def __init__(self, catalog: CatalogClient, storage: StorageClient):
        self.catalog = catalog
        self.storage = storage

    async def create(self, project_id: str, spec: GenerationInput, timeout: float | None) -> Generated:
        created = await self.catalog.create_generation(
            catalog_pb2.CreateGenerationRequest(
                project_id=project_id,
                model=spec.model,
                user=spec.user,
                prompt=spec.prompt,
                negative_prompt=spec.negative_prompt,
                n=spec.n,
                width=spec.width,
                height=spec.height,
                seed=spec.seed,
            ),
            timeout,
        )
        generation, model = created.generation, created.model
        try:
            return await self._run(project_id, generation, model, spec, timeout)
        except ModelError as exc:
            log.info("model failed", extra={"fields": {"generation_id": generation.id, "error": str(exc)}})
            failed = await self.catalog.fail_generation(project_id, generation.id, str(exc))
            return Generated(failed, [])
        except BaseException as exc:
            # The client hears about the failure; the record must not stay `processing` forever.
            reason = exc.message if isinstance(exc, DomainError) else "generation was interrupted"
            await asyncio.shield(self._fail_quietly(project_id, generation.id, reason))
            raise

    async def _run(self, project_id, generation, model, spec: GenerationInput, timeout) -> Generated:
        provider = PROVIDERS.get(model.provider)
        if provider is None or not model.servers:
            raise ModelError(f"model {model.name!r} has no server that can run provider {model.provider!r}")
        server = model.servers[0]
        images = await provider.generate(
            server.url,
            model.upstream_model,
            ImageSpec(spec.prompt, spec.negative_prompt, spec.width, spec.height, spec.seed),
            spec.n,
        )
        # Every image is durable in storage before the catalog row pointing at it commits.
        stored = await asyncio.gather(*(self.storage.put(i.data, i.content_type, timeout) for i in images))
        completed = await self.catalog.complete_generation(
            catalog_pb2.CompleteGenerationRequest(
                project_id=project_id,
                generation_id=generation.id,
                server_id=server.id,
                images=[
                    catalog_pb2.ImageRecord(
                        index=index,
                        storage_key=put.key,
                        sha256=put.sha256,
                        content_type=put.content_type,
                        size_bytes=put.size_bytes,
                        width=image.width,
                        height=image.height,
                    )
                    for index, (image, put) in enumerate(zip(images, stored, strict=True))
                ],
            ),
            timeout,
        )
        return Generated(completed, [put.url for put in stored])

    async def _fail_quietly(self, project_id: str, generation_id: str, reason: str) -> None:
        try:
            await self.catalog.fail_generation(project_id, generation_id, reason)
        except Exception:
            log.exception(
                "could not record a failed generation", extra={"fields": {"generation_id": generation_id}}
            )

    async def get(self, project_id: str, generation_id: str, timeout: float | None) -> Generated:
        if not is_id("generation", generation_id):
            raise NotFound(f"generation {generation_id!r} not found")
        record = await self.catalog.get_generation(project_id, generation_id, timeout)
        return Generated(record, await self.storage.sign([i.storage_key for i in record.images], timeout))

    async def list(
        self, request: catalog_pb2.ListGenerationsRequest, timeout: float | None
    ) -> tuple[list[Generated], catalog_pb2.ListGenerationsResponse]:
        if request.status and request.status not in STATUSES:
            raise InvalidArgument(
                f"status must be one of {', '.join(STATUSES)}; got {request.status!r}", field="status"
            )
        page = await self.catalog.list_generations(request, timeout)
        keys = [image.storage_key for record in page.generations for image in record.images]
        urls = iter(await self.storage.sign(keys, timeout))
        generated = [Generated(record, [next(urls) for _ in record.images]) for record in page.generations]
        return generated, page

    async def delete(self, project_id: str, generation_id: str, timeout: float | None) -> None:
        if not is_id("generation", generation_id):
            raise NotFound(f"generation {generation_id!r} not found")
        orphaned = await self.catalog.delete_generation(project_id, generation_id, timeout)
        try:
            await self.storage.delete(orphaned)
        except Unavailable:
            # The rows are gone, so no URL to these blobs is ever signed again; a later sweep can remove them.
            log.warning("image blobs left behind", extra={"fields": {"keys": orphaned}})
