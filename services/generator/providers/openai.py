"""The OpenAI Images API (`POST {url}/images/generations`, or `/images/edits` for a request with input
images), as served by OpenAI, Azure OpenAI, LocalAI and other compatible servers."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from .base import (
    Http,
    ImageSpec,
    InputFile,
    Progress,
    RenderedImage,
    ServerTarget,
    bearer,
    decode_base64_image,
    decode_image,
    kept_outputs,
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
        self, server: ServerTarget, spec: ImageSpec, n: int, timeout: float, progress: Progress
    ) -> list[RenderedImage]:
        body = _body(spec, n)
        if server.upstream_model:
            body["model"] = server.upstream_model
        # gpt-image models always answer base64 and reject the parameter.
        if not server.upstream_model.startswith("gpt-image"):
            body["response_format"] = "b64_json"
        images = [image for image in spec.inputs if image.role != "mask"]
        masks = [image for image in spec.inputs if image.role == "mask"]
        if images:
            endpoint, form = "edits", _edit_form(body, images, masks)
            body = None
        else:
            endpoint, form = "generations", None
        describe = f"OpenAI images {endpoint} at {server.url}"
        status, parsed, raw = await self.http.request(
            "POST",
            f"{server.url}/images/{endpoint}",
            headers=self._headers(server),
            json_body=body,
            form=form,
            server=server,
            timeout=timeout,
            describe=describe,
        )
        raise_for_status(status, parsed, raw, describe)
        data = parsed.get("data") if isinstance(parsed, dict) else None
        require(isinstance(data, list) and bool(data), describe, "no `data` list")
        return list(
            await asyncio.gather(
                *(self._image(server, item, timeout, describe) for item in kept_outputs(data, n, spec))
            )
        )

    async def _image(self, server: ServerTarget, item: dict, timeout: float, describe: str) -> RenderedImage:
        if item.get("b64_json"):
            return decode_base64_image(item["b64_json"])
        require(bool(item.get("url")), describe, "an image with neither `b64_json` nor `url`")
        status, parsed, raw = await self.http.request(
            "GET", item["url"], server=server, timeout=timeout, describe=f"{describe}, fetching its image"
        )
        raise_for_status(status, parsed, raw, describe)
        return decode_image(raw)

    async def probe(self, server: ServerTarget, timeout: float) -> None:
        describe = f"OpenAI models at {server.url}"
        status, parsed, raw = await self.http.request(
            "GET",
            f"{server.url}/models",
            headers=self._headers(server),
            server=server,
            timeout=timeout,
            describe=describe,
        )
        raise_for_status(status, parsed, raw, describe)


# Common fields the Images API has no parameter for: the size goes as `size`, the rest is dropped.
_NOT_OPENAI = ("width", "height", "seed", "negative_prompt")


def _body(spec: ImageSpec, n: int) -> dict:
    """The app's own fields (`quality`, `style`, `background`...) with the common ones applied; the
    images of an edit go as files, so their places in `native` are left out."""
    body = spec.native_with(lambda image: None) if spec.native is not None else {}
    for image in spec.inputs:
        if image.pointer:
            body.pop(image.pointer.strip("/").split("/")[0], None)
    body["prompt"] = spec.prompt
    body.setdefault("n", n)
    if spec.width and spec.height:
        body.setdefault("size", f"{spec.width}x{spec.height}")
    for name in _NOT_OPENAI:
        body.pop(name, None)
    return body


def _edit_form(body: dict, images: list[InputFile], masks: list[InputFile]) -> aiohttp.FormData:
    """`images.edit`'s multipart form, as the official client sends it: `image` for one image,
    `image[]` for several, `mask`, and every other field as text."""
    form = aiohttp.FormData()
    name = "image" if len(images) == 1 else "image[]"
    for index, image in enumerate(images):
        form.add_field(
            name, image.data, filename=f"image-{index}.{_ext(image)}", content_type=image.content_type
        )
    if masks:
        form.add_field("mask", masks[0].data, filename="mask.png", content_type="image/png")
    for key, value in body.items():
        form.add_field(key, value if isinstance(value, str) else json.dumps(value))
    return form


def _ext(image: InputFile) -> str:
    return image.content_type.rpartition("/")[2].replace("jpeg", "jpg")
