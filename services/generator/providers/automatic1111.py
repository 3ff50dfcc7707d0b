"""Stable Diffusion WebUI's API (`POST {url}/sdapi/v1/txt2img`, or `img2img` when the request has
input images), served by AUTOMATIC1111, Forge and SD.Next. The server's API key, if any, is its
`--api-auth` `user:password`."""

from __future__ import annotations

import base64

from .base import (
    Http,
    ImageSpec,
    Progress,
    RenderedImage,
    ServerTarget,
    decode_base64_image,
    kept_outputs,
    raise_for_status,
    require,
)


class Automatic1111Provider:
    def __init__(self, http: Http):
        self.http = http

    @staticmethod
    def _headers(server: ServerTarget) -> dict[str, str]:
        if not server.api_key:
            return {}
        return {"Authorization": "Basic " + base64.b64encode(server.api_key.encode()).decode()}

    async def generate(
        self, server: ServerTarget, spec: ImageSpec, n: int, timeout: float, progress: Progress
    ) -> list[RenderedImage]:
        body = _body(spec, n)
        if server.upstream_model:
            # The model's checkpoint; a request may not set it (the catalog refuses override_settings).
            body["override_settings"] = {"sd_model_checkpoint": server.upstream_model}
        endpoint = "img2img" if body.get("init_images") else "txt2img"
        describe = f"{endpoint} at {server.url}"
        status, parsed, raw = await self.http.request(
            "POST",
            f"{server.url}/sdapi/v1/{endpoint}",
            headers=self._headers(server),
            json_body=body,
            server=server,
            timeout=timeout,
            describe=describe,
        )
        raise_for_status(status, parsed, raw, describe)
        images = parsed.get("images") if isinstance(parsed, dict) else None
        require(isinstance(images, list) and len(images) >= n, describe, f"fewer than {n} images")
        # A batch of several puts its grid first; extensions (ControlNet's detected maps) come last.
        batch = _int(body.get("batch_size", 1)) * _int(body.get("n_iter", 1))
        if batch > 1 and len(images) > batch:
            images = images[1:]
        return [decode_base64_image(image) for image in kept_outputs(images, n, spec)]

    async def probe(self, server: ServerTarget, timeout: float) -> None:
        describe = f"sd-models at {server.url}"
        status, parsed, raw = await self.http.request(
            "GET",
            f"{server.url}/sdapi/v1/sd-models",
            headers=self._headers(server),
            server=server,
            timeout=timeout,
            describe=describe,
        )
        raise_for_status(status, parsed, raw, describe)


def _body(spec: ImageSpec, n: int) -> dict:
    """txt2img or img2img fields: the app's own, images in base64 (as `init_images`, `mask` and
    ControlNet's `input_image` take them), or built from the common fields."""
    if spec.native is not None:
        body = spec.native_with(lambda image: image.base64())
        if n > 1 and "batch_size" not in body and "n_iter" not in body:
            body["batch_size"] = n
    else:
        body = {
            "prompt": spec.prompt,
            "negative_prompt": spec.negative_prompt,
            "seed": spec.seed,
            "batch_size": n,
            "n_iter": 1,
        }
        if spec.width and spec.height:
            body |= {"width": spec.width, "height": spec.height}
    images, masks = spec.images("image"), spec.images("mask")
    if images and "init_images" not in body:
        body["init_images"] = [image.base64() for image in images]
    if masks and "mask" not in body:
        body["mask"] = masks[0].base64()
    return body


def _int(value) -> int:
    return value if isinstance(value, int) and value > 0 else 1
