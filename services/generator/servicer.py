"""Maps the public GeneratorService protos to domain calls and back."""

from __future__ import annotations

from google.api import httpbody_pb2
from google.protobuf import empty_pb2
from imagegen.catalog.v1 import catalog_pb2
from imagegen.generator.v1 import generator_pb2, generator_pb2_grpc

from services.common.auth import PUBLISHABLE_ONLY, bearer_key
from services.common.errors import HTTP_STATUS_KEY, InvalidArgument, PermissionDenied

from .clients import CatalogClient
from .config import GeneratorConfig
from .console import ConsoleFiles
from .domain import Generator, check_idempotency_key, parse_prefer_wait
from .images import Images
from .provenance import Verification
from .public import to_public, upload_to_public
from .requests import CreateRequest, from_json_body, from_typed


def _metadata(context) -> dict[str, str]:
    return {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    def __init__(self, generator: Generator, catalog: CatalogClient, config: GeneratorConfig):
        self.generator = generator
        self.catalog = catalog
        self.config = config

    async def _principal(self, metadata: dict[str, str]) -> catalog_pb2.Principal:
        return await self.catalog.authenticate(bearer_key(metadata.items()))

    async def _secret(self, metadata: dict[str, str]) -> catalog_pb2.Principal:
        """A secret key's principal; a publishable key may only create and list generations."""
        principal = await self._principal(metadata)
        if principal.kind == "publishable":
            raise PermissionDenied(PUBLISHABLE_ONLY)
        return principal

    async def _reader(self, metadata: dict[str, str]) -> tuple[catalog_pb2.Principal, str | None]:
        """Who reads, and the only user whose generations they may read (None: any in the project)."""
        principal = await self._principal(metadata)
        return principal, principal.user if principal.kind == "publishable" else None

    def _public(self, principal: catalog_pb2.Principal, generated) -> generator_pb2.Generation:
        return to_public(generated, self.config.public_url if principal.permanent_urls else "")

    async def CreateGeneration(self, request, context):
        metadata = _metadata(context)
        created = from_typed(request, metadata, self.config.default_model)
        return await self._create(created, metadata, context)

    async def CreateGenerationFromBody(self, request, context):
        metadata = _metadata(context)
        created = from_json_body(request.data, request.content_type, metadata, self.config.default_model)
        return await self._create(created, metadata, context)

    async def _create(self, created: CreateRequest, metadata: dict[str, str], context):
        # The catalog authenticates the key in the enqueue itself (and holds a publishable key to its
        # user); a request without a key is refused before anything else.
        api_key = bearer_key(metadata.items())
        generated = await self.generator.create_from(
            api_key,
            created,
            check_idempotency_key(metadata.get("idempotency-key", "")),
            context.time_remaining(),
            parse_prefer_wait(metadata.get("prefer", "")),
        )
        return self._public(generated.principal, generated)

    async def UploadInputImage(self, request_iterator, context):
        async def chunks():
            async for body in request_iterator:
                yield body.data

        upload, url = await self.generator.upload(bearer_key(_metadata(context).items()), chunks())
        return upload_to_public(upload, url)

    async def CancelGeneration(self, request, context):
        principal = await self._secret(_metadata(context))
        generated = await self.generator.cancel(principal.project_id, request.id, context.time_remaining())
        return self._public(principal, generated)

    async def WatchGeneration(self, request, context):
        principal, only_user = await self._reader(_metadata(context))
        async for generated in self.generator.watch(
            principal.project_id, request.id, context.time_remaining(), request.previews, only_user
        ):
            yield self._public(principal, generated)

    async def GetGeneration(self, request, context):
        principal, only_user = await self._reader(_metadata(context))
        generated = await self.generator.get(
            principal.project_id, request.id, context.time_remaining(), only_user
        )
        return self._public(principal, generated)

    async def ListGenerations(self, request, context):
        metadata = _metadata(context)
        principal = await self._principal(metadata)
        model = (
            request.model or request.cluster or metadata.get("x-model", "") or metadata.get("x-cluster", "")
        )
        if request.model and request.cluster and request.model != request.cluster:
            raise InvalidArgument("model and cluster name different models; give one", field="cluster")
        user = request.user
        if principal.kind == "publishable":
            if user and user != principal.user:
                raise PermissionDenied(PUBLISHABLE_ONLY)
            user = principal.user
        generated, page = await self.generator.list(
            catalog_pb2.ListGenerationsRequest(
                project_id=principal.project_id,
                user=user,
                model=model,
                status=request.status,
                id=request.id,
                page_size=request.page_size,
                page_token=request.page_token,
            ),
            context.time_remaining(),
        )
        return generator_pb2.ListGenerationsResponse(
            results=[self._public(principal, g) for g in generated],
            pagination=generator_pb2.Pagination(
                page_size=page.page_size,
                next_page_token=page.next_page_token,
                previous_page_token=page.previous_page_token,
            ),
        )

    async def DeleteGeneration(self, request, context):
        principal = await self._secret(_metadata(context))
        await self.generator.delete(principal.project_id, request.id, context.time_remaining())
        return empty_pb2.Empty()


def provenance_to_proto(verification: Verification, image_id: str = "") -> generator_pb2.ImageProvenance:
    answer = generator_pb2.ImageProvenance(
        image_id=image_id,
        sha256=verification.sha256,
        validation_state=verification.state,
        message=verification.message,
        manifest_label=verification.manifest_label,
        failures=verification.failures,
    )
    if verification.manifest_label:
        answer.signer.CopyFrom(
            generator_pb2.ManifestSigner(
                issuer=verification.signer_issuer,
                common_name=verification.signer_common_name,
                alg=verification.signer_alg,
            )
        )
        answer.manifest_store.update(verification.manifest_store)
    return answer


class ImageServicer(generator_pb2_grpc.ImageServiceServicer):
    def __init__(self, images: Images, catalog: CatalogClient):
        self.images = images
        self.catalog = catalog

    async def GetPermanentImage(self, request, context):
        metadata = _metadata(context)
        read = await self.images.permanent(
            request.key, metadata.get("range", ""), metadata.get("if-none-match", "")
        )
        await context.send_initial_metadata([*read.headers, (HTTP_STATUS_KEY, str(read.status))])
        if read.chunks is not None:
            async for chunk in read.chunks:
                yield httpbody_pb2.HttpBody(content_type=read.content_type, data=chunk)

    async def GetGenerationProvenance(self, request, context):
        principal = await self.catalog.authenticate(bearer_key(_metadata(context).items()))
        if principal.kind == "publishable":
            raise PermissionDenied(PUBLISHABLE_ONLY)
        verified = await self.images.generation_provenance(
            principal.project_id, request.id, context.time_remaining()
        )
        return generator_pb2.GenerationProvenance(
            id=request.id, images=[provenance_to_proto(v.verification, v.image.id) for v in verified]
        )

    async def VerifyImage(self, request, context):
        await self.catalog.authenticate(bearer_key(_metadata(context).items()))
        if not request.data:
            raise InvalidArgument("send the image's bytes as the request body", field="data")
        return provenance_to_proto(await self.images.verify(request.data, request.content_type))


class ConsoleServicer(generator_pb2_grpc.ConsoleServiceServicer):
    def __init__(self, files: ConsoleFiles):
        self.files = files

    async def GetConsoleFile(self, request, context):
        found = self.files.get(request.path)
        await context.send_initial_metadata(found.headers)
        return httpbody_pb2.HttpBody(content_type=found.content_type, data=found.data)
