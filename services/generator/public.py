"""The public shape of a generation, as clients and webhook receivers see it."""

from __future__ import annotations

import base64
import json

from google.protobuf.message import Message
from imagegen.catalog.v1 import catalog_pb2
from imagegen.generator.v1 import generator_pb2

from services.common.vocabulary import VARIANT_TYPE, variant_widths

from .domain import Generated
from .variants import variant_height

PERMANENT_PATH = "/api/permanent/"


def permanent_url(base: str, permanent_key: str) -> str:
    return f"{base}{PERMANENT_PATH}{permanent_key}"


def arweave_transaction_id(archive: catalog_pb2.ArweaveArchive) -> str:
    return json.loads(archive.transaction_json)["id"] if archive.transaction_json else ""


def public_archive(image: catalog_pb2.ImageRecord) -> generator_pb2.ArweaveArchive | None:
    if not image.HasField("arweave"):
        return None
    archive = image.arweave
    posted = archive.state in ("posted", "confirmed")
    return generator_pb2.ArweaveArchive(
        state=archive.state,
        transaction_id=arweave_transaction_id(archive) if posted else "",
        url=archive.url if posted else "",
        last_error=archive.last_error,
    )


def to_public(generated: Generated, permanent_base: str) -> generator_pb2.Generation:
    """`permanent_base` is the gateway's public URL, or empty where the project has no permanent URLs."""
    record = generated.record
    variant_urls = iter(generated.variant_urls)
    public = generator_pb2.Generation(
        id=record.id,
        project_id=record.project_id,
        model_id=record.model_id,
        server_id=record.server_id,
        status=record.status,
        reason=record.reason,
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
                permanent_url=permanent_url(permanent_base, image.permanent_key) if permanent_base else None,
                manifest_label=image.manifest_label,
                arweave=public_archive(image),
                variants=[
                    generator_pb2.ImageVariant(
                        width=width,
                        height=variant_height(width, image.width, image.height),
                        url=next(variant_urls),
                        content_type=VARIANT_TYPE,
                    )
                    for width in (variant_widths(image.width) if image.variants else ())
                ],
            )
            for image, url in zip(record.images, generated.urls, strict=True)
        ],
        created_at=record.created_at,
        updated_at=record.updated_at,
        request_body=record.request_body,
        input_images=[
            generator_pb2.InputImage(role=image.role, pointer=image.pointer, url=url, **_described(image))
            for image, url in zip(record.inputs, generated.input_urls, strict=True)
        ],
    )
    copy_spec(record.spec, public)
    copy_job_state(record, public)
    return public


def copy_job_state(record: catalog_pb2.GenerationRecord, public: generator_pb2.Generation) -> None:
    """Where the generation stands, as far as the catalog knows: each field only when it applies."""
    for name in ("queue_position", "progress", "step", "steps", "started_at", "completed_at"):
        if record.HasField(name):
            _copy(public, record.DESCRIPTOR.fields_by_name[name], getattr(record, name))
    if record.preview:
        encoded = base64.b64encode(record.preview).decode()
        public.preview = f"data:{record.preview_content_type};base64,{encoded}"


def copy_spec(spec: catalog_pb2.GenerationSpec, public: Message) -> None:
    """The spec's fields onto a public message that carries them flat, by name (tests/test_contracts.py
    holds the public messages to every field of the spec)."""
    for field, value in spec.ListFields():
        _copy(public, field, value)


def _copy(public: Message, field, value) -> None:
    """One field's value onto the public message's field of the same name."""
    if isinstance(value, Message):
        getattr(public, field.name).CopyFrom(value)
    elif field.is_repeated:
        getattr(public, field.name).extend(value)
    else:
        setattr(public, field.name, value)


def upload_to_public(upload: catalog_pb2.UploadRecord, url: str) -> generator_pb2.Upload:
    return generator_pb2.Upload(
        id=upload.id,
        url=url,
        created_at=upload.created_at,
        expires_at=upload.expires_at,
        **_described(upload.image),
    )


def _described(image: catalog_pb2.InputImageRecord) -> dict:
    """What the public messages show of a stored input image, besides where it is."""
    return {
        "content_type": image.content_type,
        "sha256": image.sha256,
        "size_bytes": image.size_bytes,
        "width": image.width,
        "height": image.height,
    }
