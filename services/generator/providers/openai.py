"""The OpenAI Images API (`POST {url}/images/generations`), as served by OpenAI, Azure OpenAI, LocalAI
and other compatible servers."""

from __future__ import annotations

import asyncio

from .base import (
    Http,
    ImageSpec,
    RenderedImage,
    ServerTarget,
    bearer,
    decode_base64_image,
    decode_image,
    raise_for_status,
    require,
)


class OpenAIProvider:
    def __init__(self, http: Http):
        self.http = http

    @staticmethod
    def _headers(server: ServerTarget) -> dict[str, str]:
        return bearer(server.api_key)

    async def generate(
        self, server: ServerTarget, spec: ImageSpec, n: int, timeout: float
    ) -> list[RenderedImage]:
        body: dict = {"prompt": spec.prompt, "n": n, "size": f"{spec.width}x{spec.height}"}
        if server.upstream_model:
            body["model"] = server.upstream_model
        # gpt-image models always answer base64 and reject the parameter.
        if not server.upstream_model.startswith("gpt-image"):
            body["response_format"] = "b64_json"
        describe = f"OpenAI images at {server.url}"
        status, parsed, raw = await self.http.request(
            "POST",
            f"{server.url}/images/generations",
            headers=self._headers(server),
            json_body=body,
            timeout=timeout,
            describe=describe,
        )
        raise_for_status(status, parsed, raw, describe)
        data = parsed.get("data") if isinstance(parsed, dict) else None
        require(isinstance(data, list) and bool(data), describe, "no `data` list")
        return list(await asyncio.gather(*(self._image(item, timeout, describe) for item in data[:n])))

    async def _image(self, item: dict, timeout: float, describe: str) -> RenderedImage:
        if item.get("b64_json"):
            return decode_base64_image(item["b64_json"])
        require(bool(item.get("url")), describe, "an image with neither `b64_json` nor `url`")
        status, parsed, raw = await self.http.request(
            "GET", item["url"], timeout=timeout, describe=f"{describe}, fetching its image"
        )
        raise_for_status(status, parsed, raw, describe)
        return decode_image(raw)

    async def probe(self, server: ServerTarget, timeout: float) -> None:
        describe = f"OpenAI models at {server.url}"
        status, parsed, raw = await self.http.request(
            "GET", f"{server.url}/models", headers=self._headers(server), timeout=timeout, describe=describe
        )
        raise_for_status(status, parsed, raw, describe)
