"""Maps catalog protos to domain calls and back; no rules live here."""

from __future__ import annotations

from google.protobuf import timestamp_pb2
from imagegen.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from services.common.auth import bearer_key

from .domain import Catalog, Principal
from .repository import Row


def _timestamp(value) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def model_to_proto(row: Row) -> catalog_pb2.Model:
    return catalog_pb2.Model(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        provider=row["provider"],
        upstream_model=row["upstream_model"],
        servers=[
            catalog_pb2.ModelServer(id=s["id"], url=s["url"], max_concurrency=s["max_concurrency"])
            for s in row["servers"]
        ],
        created_at=_timestamp(row["created_at"]),
    )


def image_to_proto(row: Row) -> catalog_pb2.ImageRecord:
    return catalog_pb2.ImageRecord(
        id=row["id"],
        index=row["idx"],
        storage_key=row["storage_key"],
        sha256=row["sha256"],
        content_type=row["content_type"],
        size_bytes=row["size_bytes"],
        width=row["width"],
        height=row["height"],
    )


def generation_to_proto(row: Row) -> catalog_pb2.GenerationRecord:
    return catalog_pb2.GenerationRecord(
        id=row["id"],
        project_id=row["project_id"],
        model_id=row["model_id"],
        model=row["model_name"],
        server_id=row["server_id"],
        status=row["status"],
        user=row["end_user"],
        reason=row["reason"],
        prompt=row["prompt"],
        negative_prompt=row["negative_prompt"],
        n=row["n"],
        width=row["width"],
        height=row["height"],
        seed=row["seed"],
        images=[image_to_proto(image) for image in row.get("images", ())],
        created_at=_timestamp(row["created_at"]),
        updated_at=_timestamp(row["updated_at"]),
    )


def _image_fields(image: catalog_pb2.ImageRecord) -> Row:
    return {
        "id": image.id,
        "index": image.index,
        "storage_key": image.storage_key,
        "sha256": image.sha256,
        "content_type": image.content_type,
        "size_bytes": image.size_bytes,
        "width": image.width,
        "height": image.height,
    }


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    """Public: callers authenticate with their own key."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    async def _principal(self, context) -> Principal:
        return await self.catalog.authenticate(bearer_key(context.invocation_metadata()))

    async def ListModels(self, request, context):
        principal = await self._principal(context)
        models = await self.catalog.list_models(principal.project_id)
        return catalog_pb2.ListModelsResponse(models=[model_to_proto(m) for m in models])

    async def GetModel(self, request, context):
        principal = await self._principal(context)
        return model_to_proto(await self.catalog.get_model(principal.project_id, request.name))


class CatalogInternalServicer(catalog_pb2_grpc.CatalogInternalServiceServicer):
    """Internal: callers are other imagegen services that already authenticated the client."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    async def Authenticate(self, request, context):
        principal = await self.catalog.authenticate(request.api_key)
        return catalog_pb2.Principal(
            project_id=principal.project_id, key_id=principal.key_id, admin=principal.admin
        )

    async def CreateGeneration(self, request, context):
        generation, model = await self.catalog.create_generation(
            {
                "project_id": request.project_id,
                "model": request.model,
                "user": request.user,
                "prompt": request.prompt,
                "negative_prompt": request.negative_prompt,
                "n": request.n,
                "width": request.width,
                "height": request.height,
                "seed": request.seed,
            }
        )
        return catalog_pb2.CreateGenerationResponse(
            generation=generation_to_proto(generation), model=model_to_proto(model)
        )

    async def CompleteGeneration(self, request, context):
        row = await self.catalog.finish_generation(
            request.project_id,
            request.generation_id,
            "completed",
            request.server_id,
            "",
            [_image_fields(image) for image in request.images],
        )
        return generation_to_proto(row)

    async def FailGeneration(self, request, context):
        row = await self.catalog.finish_generation(
            request.project_id, request.generation_id, "failed", "", request.reason, []
        )
        return generation_to_proto(row)

    async def GetGeneration(self, request, context):
        return generation_to_proto(await self.catalog.get_generation(request.project_id, request.id))

    async def ListGenerations(self, request, context):
        page = await self.catalog.list_generations(
            request.project_id,
            {"user": request.user, "model": request.model, "status": request.status, "id": request.id},
            request.page_size,
            request.page_token,
        )
        return catalog_pb2.ListGenerationsResponse(
            generations=[generation_to_proto(row) for row in page.rows],
            next_page_token=page.next_token,
            previous_page_token=page.previous_token,
            page_size=page.page_size,
        )

    async def DeleteGeneration(self, request, context):
        orphaned = await self.catalog.delete_generation(request.project_id, request.id)
        return catalog_pb2.DeleteGenerationResponse(orphaned_keys=orphaned)
