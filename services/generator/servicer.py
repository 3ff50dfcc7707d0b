"""Maps the public GeneratorService protos to domain calls and back."""

from __future__ import annotations

from google.protobuf import empty_pb2
from imagegen.catalog.v1 import catalog_pb2
from imagegen.generator.v1 import generator_pb2, generator_pb2_grpc

from services.common.auth import bearer_key

from .clients import CatalogClient
from .config import GeneratorConfig
from .domain import Generated, Generator, validate


def _metadata(context) -> dict[str, str]:
    return {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}


def to_public(generated: Generated) -> generator_pb2.Generation:
    record = generated.record
    return generator_pb2.Generation(
        id=record.id,
        project_id=record.project_id,
        model_id=record.model_id,
        model=record.model,
        server_id=record.server_id,
        status=record.status,
        user=record.user,
        reason=record.reason,
        prompt=record.prompt,
        negative_prompt=record.negative_prompt,
        n=record.n,
        width=record.width,
        height=record.height,
        seed=record.seed,
        output_images=[
            generator_pb2.OutputImage(
                id=image.id,
                project_id=record.project_id,
                image_generation_id=record.id,
                url=url,
                content_type=image.content_type,
                sha256=image.sha256,
                size_bytes=image.size_bytes,
                width=image.width,
                height=image.height,
            )
            for image, url in zip(record.images, generated.urls, strict=True)
        ],
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    def __init__(self, generator: Generator, catalog: CatalogClient, config: GeneratorConfig):
        self.generator = generator
        self.catalog = catalog
        self.config = config

    async def _project(self, metadata: dict[str, str]) -> str:
        principal = await self.catalog.authenticate(bearer_key(metadata.items()))
        return principal.project_id

    async def CreateGeneration(self, request, context):
        metadata = _metadata(context)
        project_id = await self._project(metadata)
        spec = validate(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            # Meteron's headers fill in what the body leaves out.
            model=request.model or metadata.get("x-model", ""),
            user=request.user or metadata.get("x-user", ""),
            n=request.n,
            width=request.width,
            height=request.height,
            seed=request.seed if request.HasField("seed") else None,
            default_model=self.config.default_model,
        )
        return to_public(await self.generator.create(project_id, spec, context.time_remaining()))

    async def GetGeneration(self, request, context):
        project_id = await self._project(_metadata(context))
        return to_public(await self.generator.get(project_id, request.id, context.time_remaining()))

    async def ListGenerations(self, request, context):
        project_id = await self._project(_metadata(context))
        generated, page = await self.generator.list(
            catalog_pb2.ListGenerationsRequest(
                project_id=project_id,
                user=request.user,
                model=request.model,
                status=request.status,
                id=request.id,
                page_size=request.page_size,
                page_token=request.page_token,
            ),
            context.time_remaining(),
        )
        return generator_pb2.ListGenerationsResponse(
            results=[to_public(g) for g in generated],
            pagination=generator_pb2.Pagination(
                page_size=page.page_size,
                next_page_token=page.next_page_token,
                previous_page_token=page.previous_page_token,
            ),
        )

    async def DeleteGeneration(self, request, context):
        project_id = await self._project(_metadata(context))
        await self.generator.delete(project_id, request.id, context.time_remaining())
        return empty_pb2.Empty()
