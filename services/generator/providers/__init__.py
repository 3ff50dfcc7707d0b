"""Model servers the generator can run a job on, by the model's `provider`."""

from __future__ import annotations

import asyncio
import secrets

from ..domain import DEFAULT_SIDE, MAX_SIDE, MIN_SIDE
from . import procedural
from .automatic1111 import Automatic1111Provider
from .base import (
    Http,
    ImageSpec,
    InputFile,
    ModelError,
    Progress,
    Provider,
    RenderedImage,
    ServerFailure,
    ServerTarget,
)
from .comfyui import ComfyUIProvider
from .openai import OpenAIProvider
from .replicate import ReplicateProvider

__all__ = [
    "Http",
    "InputFile",
    "ImageSpec",
    "ModelError",
    "Progress",
    "Provider",
    "RenderedImage",
    "ServerFailure",
    "ServerTarget",
    "build_providers",
]

# Larger renders leave the event loop free for other requests while NumPy and zlib work.
_INLINE_PIXELS = 128 * 128


class ProceduralProvider:
    """The built-in renderer; image i of a generation uses seed + i, so each image differs. With an
    input image it repaints it (procedural.py says how)."""

    @staticmethod
    def _render_one(spec: ImageSpec, seed: int, index: int) -> RenderedImage:
        images, masks = [i for i in spec.inputs if i.role == "image"], spec.images("mask")
        width, height = spec.width, spec.height
        if not (width and height):
            width, height = (images[0].width, images[0].height) if images else (DEFAULT_SIDE, DEFAULT_SIDE)
            width, height = (min(max(side, MIN_SIDE), MAX_SIDE) for side in (width, height))
        pixels = procedural.render(spec.prompt, (seed + index) % 2**32, width, height, spec.negative_prompt)
        if images:
            pixels = procedural.repaint(pixels, images[0].data, masks[0].data if masks else None)
        return RenderedImage(procedural.encode_png(pixels), "image/png", width, height)

    async def generate(
        self, server: ServerTarget, spec: ImageSpec, n: int, timeout: float, progress: Progress
    ) -> list[RenderedImage]:
        # A model-native request without a seed leaves it to the server: this one picks at random.
        seed = spec.seed if spec.seed is not None else secrets.randbelow(2**32)
        if spec.width * spec.height <= _INLINE_PIXELS and not spec.inputs and spec.width:
            return [self._render_one(spec, seed, i) for i in range(n)]
        renders = (asyncio.to_thread(self._render_one, spec, seed, i) for i in range(n))
        return list(await asyncio.gather(*renders))

    async def probe(self, server: ServerTarget, timeout: float) -> None:
        return None


def build_providers(http: Http) -> dict[str, Provider]:
    return {
        "procedural": ProceduralProvider(),
        "openai": OpenAIProvider(http),
        "automatic1111": Automatic1111Provider(http),
        "replicate": ReplicateProvider(http),
        "comfyui": ComfyUIProvider(http),
    }
