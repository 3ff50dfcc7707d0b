"""Stable Diffusion WebUI's API (`POST {url}/sdapi/v1/txt2img`, or `img2img` when the request has
input images), served by AUTOMATIC1111, Forge and SD.Next. The server's API key, if any, is its
`--api-auth` `user:password`."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import uuid

from .base import (
    Http,
    ImageSpec,
    Progress,
    RenderedImage,
    ServerFailure,
    ServerTarget,
    decode_base64_image,
    kept_outputs,
    raise_for_status,
    require,
)

log = logging.getLogger("imagegen.generator.automatic1111")


class Automatic1111Provider:
    """Progress: a server that takes `force_task_id` (WebUI 1.7 on; its OpenAPI schema names it) runs
    the job under a task id of imagegen's, which `POST /internal/progress` reports on alone. A server
    without it reports only "whatever runs now" (`GET /sdapi/v1/progress`), which is this job's only
    while the server runs one job at a time (`maxConcurrency` 1); otherwise no progress is read. A
    cancelled job interrupts the server (`/sdapi/v1/interrupt`, which stops whatever runs) only when
    the server is running this job, by the same knowledge."""

    poll_seconds = 0.5

    def __init__(self, http: Http):
        self.http = http
        # Server URL -> whether it takes `force_task_id`; asked once per process.
        self._task_ids: dict[str, bool] = {}

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
        task_id = None
        if await self._takes_task_ids(server, timeout):
            task_id = body["force_task_id"] = f"task(imagegen-{uuid.uuid4().hex})"
        followed = task_id is not None or server.max_concurrency == 1
        follower = asyncio.create_task(self._follow(server, task_id, progress, timeout)) if followed else None
        try:
            status, parsed, raw = await self.http.request(
                "POST",
                f"{server.url}/sdapi/v1/{endpoint}",
                headers=self._headers(server),
                json_body=body,
                server=server,
                timeout=timeout,
                describe=describe,
            )
        except asyncio.CancelledError:
            if followed:
                await asyncio.shield(self._interrupt_if_ours(server, task_id))
            raise
        finally:
            if follower is not None:
                follower.cancel()
        raise_for_status(status, parsed, raw, describe)
        images = parsed.get("images") if isinstance(parsed, dict) else None
        require(isinstance(images, list) and len(images) >= n, describe, f"fewer than {n} images")
        # A batch of several puts its grid first; extensions (ControlNet's detected maps) come last.
        batch = _int(body.get("batch_size", 1)) * _int(body.get("n_iter", 1))
        if batch > 1 and len(images) > batch:
            images = images[1:]
        return [decode_base64_image(image) for image in kept_outputs(images, n, spec)]

    async def _takes_task_ids(self, server: ServerTarget, timeout: float) -> bool:
        known = self._task_ids.get(server.url)
        if known is None:
            try:
                status, parsed, _ = await self.http.request(
                    "GET",
                    f"{server.url}/openapi.json",
                    headers=self._headers(server),
                    server=server,
                    timeout=min(timeout, 10),
                    describe=f"openapi.json at {server.url}",
                )
            except ServerFailure:
                return False
            known = status == 200 and _names_force_task_id(parsed)
            self._task_ids[server.url] = known
        return known

    async def _progress(self, server: ServerTarget, task_id: str | None, preview_id: int) -> dict | None:
        """What the server says of this job now: its /internal/progress answer for a task id, else
        /sdapi/v1/progress's; None when the job is not running there."""
        if task_id is not None:
            status, parsed, _ = await self.http.request(
                "POST",
                f"{server.url}/internal/progress",
                headers=self._headers(server),
                json_body={"id_task": task_id, "id_live_preview": preview_id},
                server=server,
                timeout=5,
                describe=f"internal/progress at {server.url}",
            )
            if status == 404:
                # An API-only server (`--nowebui`) has no /internal/progress: its next jobs go without
                # a task id, followed as a server without one is.
                self._task_ids[server.url] = False
            return parsed if isinstance(parsed, dict) and parsed.get("active") else None
        _, parsed, _ = await self.http.request(
            "GET",
            f"{server.url}/sdapi/v1/progress",
            headers=self._headers(server),
            server=server,
            timeout=5,
            describe=f"progress at {server.url}",
        )
        return parsed if isinstance(parsed, dict) else None

    async def _follow(
        self, server: ServerTarget, task_id: str | None, progress: Progress, timeout: float
    ) -> None:
        preview_id = -1
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(self.poll_seconds)
            try:
                now = await self._progress(server, task_id, preview_id)
            except ServerFailure:
                continue
            if now is None:
                continue
            state = now.get("state") if isinstance(now.get("state"), dict) else {}
            step, steps = state.get("sampling_step", 0), state.get("sampling_steps", 0)
            fraction = now.get("progress")
            if isinstance(fraction, int | float):
                progress.report(
                    fraction,
                    step if isinstance(step, int) else 0,
                    steps if isinstance(steps, int) else 0,
                )
            image = now.get("live_preview") or now.get("current_image")
            if isinstance(image, str) and image:
                with contextlib.suppress(ValueError, binascii.Error):
                    progress.show(
                        base64.b64decode(image.partition(",")[2] if image.startswith("data:") else image)
                    )
            if isinstance(now.get("id_live_preview"), int):
                preview_id = now["id_live_preview"]

    async def _interrupt_if_ours(self, server: ServerTarget, task_id: str | None) -> None:
        try:
            if task_id is not None and await self._progress(server, task_id, -1) is None:
                return
            await self.http.request(
                "POST",
                f"{server.url}/sdapi/v1/interrupt",
                headers=self._headers(server),
                server=server,
                timeout=5,
                describe=f"interrupt at {server.url}",
            )
        except ServerFailure as exc:
            log.info("interrupt failed", extra={"fields": {"server": server.id, "error": str(exc)}})

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


def _names_force_task_id(schema) -> bool:
    """Whether the server's txt2img request schema has `force_task_id`."""
    schemas = schema.get("components", {}).get("schemas", {}) if isinstance(schema, dict) else {}
    txt2img = schemas.get("StableDiffusionProcessingTxt2Img") if isinstance(schemas, dict) else None
    properties = txt2img.get("properties") if isinstance(txt2img, dict) else None
    return isinstance(properties, dict) and "force_task_id" in properties


def _int(value) -> int:
    return value if isinstance(value, int) and value > 0 else 1
