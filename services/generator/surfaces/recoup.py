"""Recoup's `GET /api/image/generate?prompt=&account_id=`: one image for an account, answered in the shape
of the AI SDK's `generateImage` result, plus its permanent URL and provenance."""

from __future__ import annotations

import asyncio
import base64
import re
import time
import uuid

from google.protobuf import json_format, timestamp_pb2
from imagegen.catalog.v1 import catalog_pb2
from imagegen.generator.v1 import generator_pb2, generator_pb2_grpc

from services.common.auth import bearer_key
from services.common.errors import InvalidArgument

from ..clients import CatalogClient, StorageClient
from ..config import GeneratorConfig
from ..domain import Generator, validate
from ..images import Images
from ..inputs import Source
from ..requests import CreateRequest
from .common import make_images

MAX_PROMPT_CHARS = 1000
INCLUDABLE = ("uint8Array",)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# What `usage` counts as prompt tokens: words and punctuation marks, a tokenizer-free approximation.
_TOKEN = re.compile(r"\w+|[^\w\s]")


def check_request(prompt: str, account_id: str, include: list[str]) -> tuple[str, str, set[str]]:
    """The prompt, the account as a canonical UUID, and what to include."""
    if not prompt.strip():
        raise InvalidArgument("prompt is required: describe the image to generate", field="prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidArgument(
            f"prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}", field="prompt"
        )
    if not _UUID.match(account_id):
        raise InvalidArgument(
            f"account_id must be a UUID (8-4-4-4-12 hex digits); got {account_id[:64]!r}", field="account_id"
        )
    asked = {part.strip() for value in include for part in value.split(",") if part.strip()}
    unknown = asked - set(INCLUDABLE)
    if unknown:
        raise InvalidArgument(
            f"include takes {', '.join(INCLUDABLE)}; got {', '.join(sorted(unknown))}", field="include"
        )
    return prompt, str(uuid.UUID(account_id)), asked


def prompt_tokens(prompt: str) -> int:
    return len(_TOKEN.findall(prompt))


class RecoupServicer(generator_pb2_grpc.RecoupServiceServicer):
    def __init__(
        self,
        generator: Generator,
        images: Images,
        catalog: CatalogClient,
        storage: StorageClient,
        config: GeneratorConfig,
    ):
        self.generator = generator
        self.images = images
        self.catalog = catalog
        self.storage = storage
        self.config = config

    async def GenerateImage(self, request, context):
        metadata = context.invocation_metadata()
        api_key = bearer_key(metadata)
        prompt, account, include = check_request(request.prompt, request.account_id, list(request.include))
        spec = validate(
            prompt=prompt,
            negative_prompt="",
            model="",
            user=account,
            n=1,
            width=0,
            height=0,
            seed=None,
            default_model=self.config.default_model,
        )
        references = [Source("", "image", url) for url in parse_files(request.files)]
        generated, outputs = await make_images(
            self.generator,
            self.storage,
            api_key,
            CreateRequest(spec, wait=True, images=references, request_body=_recorded(request)),
            "",
            context.time_remaining(),
            self.config.public_url,
        )
        # Recoup answers one image: the first the model made.
        made = outputs[0]
        record = generated.record
        verification = await self.images.verify(made.data, made.record.content_type)
        tokens = prompt_tokens(prompt)
        answer = generator_pb2.RecoupGenerateImageResponse(
            images=[
                generator_pb2.RecoupImage(
                    base64=base64.b64encode(made.data).decode(),
                    media_type=made.record.content_type,
                    uint8_array=made.data if "uint8Array" in include else [],
                )
            ],
            responses=[
                generator_pb2.RecoupResponse(
                    finish_reason="stop", model_id=record.spec.model, timestamp=_now_or(record.updated_at)
                )
            ],
            provider_metadata=generator_pb2.RecoupProviderMetadata(
                model=record.spec.model, size=f"{record.spec.width}x{record.spec.height}"
            ),
            usage=generator_pb2.RecoupUsage(
                prompt_tokens=tokens, completion_tokens=len(record.images), total_tokens=tokens + 1
            ),
            image_url=made.url,
            provenance=generator_pb2.RecoupProvenance(
                sha256=verification.sha256,
                manifest_label=verification.manifest_label,
                signer=verification.signer_common_name,
                validation_state=verification.state,
            ),
        )
        if not made.permanent:
            answer.warnings.add(
                type="other",
                setting="permanentUrls",
                message="permanent URLs are off for this project, so imageUrl is a signed URL that expires",
            )
        elif self.config.arweave.enabled:
            budget = self.config.arweave.wait_seconds
            if context.time_remaining() is not None:
                budget = min(budget, context.time_remaining() - 1)
            archive = await self._posted_archive(record.project_id, record.id, made.record.index, budget)
            if archive.state in ("posted", "confirmed"):
                answer.image_url = archive.url
                json_format.Parse(archive.transaction_json, answer.arweave_result, ignore_unknown_fields=True)
            elif archive.state == "pending":
                answer.warnings.add(
                    type="other",
                    setting="arweave",
                    message=f"the image is not on Arweave yet ({archive.last_error or 'posting'}); it is "
                    f"retried, and outputImages[].arweave of generation {record.id} shows when it is there",
                )
            else:
                answer.warnings.add(
                    type="other", setting="arweave", message="the image was not queued for Arweave"
                )
        return answer

    async def _posted_archive(
        self, project_id: str, generation_id: str, index: int, budget: float
    ) -> catalog_pb2.ArweaveArchive:
        """The image's archive once it leaves `pending`, or as it is when the budget runs out."""
        deadline = time.monotonic() + budget
        delay = 0.05
        while True:
            record = await self.catalog.get_generation(project_id, generation_id, 10)
            archive = next(image.arweave for image in record.images if image.index == index)
            if archive.state != "pending" or time.monotonic() + delay > deadline:
                return archive
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)


def parse_files(files: str) -> list[str]:
    """Recoup's reference images, `url:mediaType` items separated by `|`: their URLs."""
    urls = []
    for item in filter(None, (part.strip() for part in files.split("|"))):
        url, colon, media_type = item.rpartition(":")
        if not colon or "/" not in media_type or not url.startswith(("http://", "https://")):
            raise InvalidArgument(
                f"files takes `url:mediaType` items separated by `|`; got {item[:100]!r}", field="files"
            )
        if not media_type.startswith("image/"):
            raise InvalidArgument(f"files: {media_type!r} is not an image type", field="files")
        urls.append(url)
    return urls


def _recorded(request: generator_pb2.RecoupGenerateImageRequest) -> bytes:
    return json_format.MessageToJson(request, indent=None).encode()


def _now_or(stamp: timestamp_pb2.Timestamp) -> timestamp_pb2.Timestamp:
    if stamp.seconds:
        return stamp
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    return now
