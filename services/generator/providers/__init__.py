"""Model servers the generator can run a generation on, by the model's `provider`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from . import procedural

# Larger renders leave the event loop free for other requests while NumPy and zlib work.
_INLINE_PIXELS = 128 * 128


@dataclass(frozen=True)
class ImageSpec:
    prompt: str
    negative_prompt: str
    width: int
    height: int
    seed: int


@dataclass(frozen=True)
class RenderedImage:
    data: bytes
    content_type: str
    width: int
    height: int


class ModelError(Exception):
    """The model server could not produce the image; the message is shown as the generation's reason."""


class Provider(Protocol):
    async def generate(
        self, server_url: str, upstream_model: str, spec: ImageSpec, n: int
    ) -> list[RenderedImage]: ...


class ProceduralProvider:
    """The built-in renderer; image i of a generation uses seed + i, so each image differs."""

    @staticmethod
    def _render_one(spec: ImageSpec, index: int) -> RenderedImage:
        pixels = procedural.render(
            spec.prompt, (spec.seed + index) % 2**32, spec.width, spec.height, spec.negative_prompt
        )
        return RenderedImage(procedural.encode_png(pixels), "image/png", spec.width, spec.height)

    async def generate(
        self, server_url: str, upstream_model: str, spec: ImageSpec, n: int
    ) -> list[RenderedImage]:
        if spec.width * spec.height <= _INLINE_PIXELS:
            return [self._render_one(spec, i) for i in range(n)]
        return list(await asyncio.gather(*(asyncio.to_thread(self._render_one, spec, i) for i in range(n))))


PROVIDERS: dict[str, Provider] = {"procedural": ProceduralProvider()}
