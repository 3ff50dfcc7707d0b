"""Model servers the generator can run a job on, by the model's `provider`."""

from __future__ import annotations

import asyncio

from . import procedural
from .automatic1111 import Automatic1111Provider
from .base import (
    Http,
    ImageSpec,
    ModelError,
    Provider,
    RenderedImage,
    ServerFailure,
    ServerTarget,
)
from .openai import OpenAIProvider
from .replicate import ReplicateProvider

__all__ = [
    "Http",
    "ImageSpec",
    "ModelError",
    "Provider",
    "RenderedImage",
    "ServerFailure",
    "ServerTarget",
    "build_providers",
]

# Larger renders leave the event loop free for other requests while NumPy and zlib work.
_INLINE_PIXELS = 128 * 128


class ProceduralProvider:
    """The built-in renderer; image i of a generation uses seed + i, so each image differs."""

    @staticmethod
    def _render_one(spec: ImageSpec, index: int) -> RenderedImage:
        pixels = procedural.render(
            spec.prompt, (spec.seed + index) % 2**32, spec.width, spec.height, spec.negative_prompt
        )
        return RenderedImage(procedural.encode_png(pixels), "image/png", spec.width, spec.height)

    async def generate(
        self, server: ServerTarget, spec: ImageSpec, n: int, timeout: float
    ) -> list[RenderedImage]:
        if spec.width * spec.height <= _INLINE_PIXELS:
            return [self._render_one(spec, i) for i in range(n)]
        return list(await asyncio.gather(*(asyncio.to_thread(self._render_one, spec, i) for i in range(n))))

    async def probe(self, server: ServerTarget, timeout: float) -> None:
        return None


def build_providers(http: Http) -> dict[str, Provider]:
    return {
        "procedural": ProceduralProvider(),
        "openai": OpenAIProvider(http),
        "automatic1111": Automatic1111Provider(http),
        "replicate": ReplicateProvider(http),
    }
