"""Stable Diffusion WebUI's API (`POST {url}/sdapi/v1/txt2img`), served by AUTOMATIC1111, Forge and
SD.Next. The server's API key, if any, is its `--api-auth` `user:password`."""

from __future__ import annotations

import base64

from .base import Http, ImageSpec, RenderedImage, ServerTarget, decode_base64_image, raise_for_status, require


class Automatic1111Provider:
    def __init__(self, http: Http):
        self.http = http

    @staticmethod
    def _headers(server: ServerTarget) -> dict[str, str]:
        if not server.api_key:
            return {}
        return {"Authorization": "Basic " + base64.b64encode(server.api_key.encode()).decode()}

    async def generate(
        self, server: ServerTarget, spec: ImageSpec, n: int, timeout: float
    ) -> list[RenderedImage]:
        body: dict = {
            "prompt": spec.prompt,
            "negative_prompt": spec.negative_prompt,
            "width": spec.width,
            "height": spec.height,
            "seed": spec.seed,
            "batch_size": n,
            "n_iter": 1,
        }
        if server.upstream_model:
            body["override_settings"] = {"sd_model_checkpoint": server.upstream_model}
        describe = f"txt2img at {server.url}"
        status, parsed, raw = await self.http.request(
            "POST",
            f"{server.url}/sdapi/v1/txt2img",
            headers=self._headers(server),
            json_body=body,
            timeout=timeout,
            describe=describe,
        )
        raise_for_status(status, parsed, raw, describe)
        images = parsed.get("images") if isinstance(parsed, dict) else None
        require(isinstance(images, list) and len(images) >= n, describe, f"fewer than {n} images")
        # With a batch, some builds put the grid first; the individual images are the last n.
        return [decode_base64_image(image) for image in images[-n:]]

    async def probe(self, server: ServerTarget, timeout: float) -> None:
        describe = f"sd-models at {server.url}"
        status, parsed, raw = await self.http.request(
            "GET",
            f"{server.url}/sdapi/v1/sd-models",
            headers=self._headers(server),
            timeout=timeout,
            describe=describe,
        )
        raise_for_status(status, parsed, raw, describe)
