"""The public shape of a generation, as clients and webhook receivers see it."""

from __future__ import annotations

from imagegen.generator.v1 import generator_pb2

from .domain import Generated


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
        priority=record.priority,
        callback_url=record.callback_url,
    )
