"""ComfyUI (`server.py` of comfyanonymous/ComfyUI): a job is an API-format workflow, the model's own
(or the app's, where the model allows it), with the generation's fields written into the nodes the
model names (services/common/comfy_workflow.py).

Per job: input images uploaded with `POST /upload/image` (a mask with no node of its own goes into the
first image's alpha with `POST /upload/mask`, which LoadImage's MASK output reads); a websocket opened
on `/ws?clientId=…` before the workflow is queued with `POST /prompt`, so no event is missed; progress,
preview frames and the end read from it; outputs from `/history/{prompt_id}` and `/view`. A cancelled
job is taken out of the server's queue (`POST /queue {"delete"}`) and, when it is the one running,
interrupted (`POST /interrupt`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import struct
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import aiohttp

from services.common.comfy_workflow import FIELDS
from services.common.vocabulary import EXTENSIONS, INPUT_REFERENCE

from .base import (
    Http,
    ImageSpec,
    InputFile,
    ModelError,
    Progress,
    RenderedImage,
    ServerFailure,
    ServerTarget,
    bearer,
    decode_image,
    kept_outputs,
    raise_for_status,
    require,
)

log = logging.getLogger("imagegen.generator.comfyui")

# server.py's BinaryEventTypes: a preview frame is this, then the image's type, then its bytes.
_PREVIEW_IMAGE = 1
_UNENCODED_PREVIEW_IMAGE = 2
# How long the end of a job may take to show in /history after the websocket said it finished.
_HISTORY_WAIT_SECONDS = 5.0


class ComfyUIProvider:
    def __init__(self, http: Http):
        self.http = http

    async def generate(
        self, server: ServerTarget, spec: ImageSpec, n: int, timeout: float, progress: Progress
    ) -> list[RenderedImage]:
        config = json.loads(server.comfyui) if server.comfyui else None
        if config is None:
            raise ModelError("this ComfyUI model has no workflow")
        started = time.monotonic()

        def remaining() -> float:
            return max(timeout - (time.monotonic() - started), 0.001)

        workflow = (
            copy.deepcopy(spec.native) if spec.native is not None else copy.deepcopy(config["workflow"])
        )
        _write_fields(workflow, config, spec, n)
        await self._place_images(server, workflow, config, spec, remaining)
        client_id = uuid.uuid4().hex
        headers = bearer(server.api_key)
        describe = f"ComfyUI at {server.url}"
        async with self.http.websocket(
            f"{server.url}/ws?clientId={client_id}",
            server=server,
            timeout=remaining(),
            headers=headers,
            describe=f"{describe} (websocket)",
        ) as socket:
            prompt_id = await self._queue(server, workflow, client_id, remaining(), describe)
            run = _Run(prompt_id)
            try:
                await self._follow(socket, run, progress, describe)
            except BaseException:
                await asyncio.shield(self._stop(server, run))
                raise
        return await self._outputs(server, prompt_id, n, spec, remaining, describe)

    async def probe(self, server: ServerTarget, timeout: float) -> None:
        await self._call(server, "GET", "/system_stats", timeout)

    async def _call(
        self, server: ServerTarget, method: str, path: str, timeout: float, checked: bool = True, **body
    ) -> tuple[int, Any, bytes]:
        """A request to the server; with `checked`, an error answer raises as the job's failure."""
        describe = f"{path.split('?')[0].strip('/')} at {server.url}"
        status, parsed, raw = await self.http.request(
            method,
            f"{server.url}{path}",
            headers=bearer(server.api_key),
            server=server,
            timeout=timeout,
            describe=describe,
            **body,
        )
        if checked:
            raise_for_status(status, parsed, raw, describe)
        return status, parsed, raw

    # -- before: images and the queue ---------------------------------------------------------------

    async def _place_images(
        self, server: ServerTarget, workflow: dict, config: dict, spec: ImageSpec, remaining
    ) -> None:
        """Uploads each input image and writes its file name where the workflow loads it."""
        references = {INPUT_REFERENCE.format(index=i): image for i, image in enumerate(spec.inputs)}
        for node in workflow.values():
            for name, value in node["inputs"].items():
                if isinstance(value, str) and value in references:
                    node["inputs"][name] = await self._upload(server, references[value], remaining())
        images, masks = spec.images("image"), spec.images("mask")
        places = config.get("images") or []
        if len(images) > len(places):
            raise ModelError(
                f"this model takes {len(places)} input image(s) outside `input`;"
                f" the request gave {len(images)}"
            )
        uploaded = [await self._upload(server, image, remaining()) for image in images]
        if masks:
            if config.get("mask"):
                _set(workflow, config["mask"], await self._upload(server, masks[0], remaining()))
            elif uploaded:
                uploaded[0] = await self._upload(server, masks[0], remaining(), onto=uploaded[0])
            else:
                raise ModelError("a mask needs an input image, or a mask node in the model's workflow")
        for place, name in zip(places, uploaded, strict=False):
            _set(workflow, place, name)

    async def _upload(self, server: ServerTarget, image: InputFile, timeout: float, onto: str = "") -> str:
        """The name a LoadImage node gives for the uploaded file. Named by content, so a retry or another
        job with the same image overwrites it with the same bytes."""
        digest = hashlib.sha256(image.data).hexdigest()[:32]
        form = aiohttp.FormData()
        form.add_field(
            "image",
            image.data,
            filename=f"imagegen-{digest}.{EXTENSIONS.get(image.content_type, 'png')}",
            content_type=image.content_type,
        )
        form.add_field("type", "input")
        form.add_field("overwrite", "true")
        endpoint = "image"
        if onto:
            endpoint = "mask"
            form.add_field("original_ref", json.dumps({"filename": onto, "type": "input", "subfolder": ""}))
        _, parsed, _ = await self._call(server, "POST", f"/upload/{endpoint}", timeout, form=form)
        require(
            isinstance(parsed, dict) and isinstance(parsed.get("name"), str),
            f"upload/{endpoint} at {server.url}",
            "no file name",
        )
        subfolder = parsed.get("subfolder") or ""
        return f"{subfolder}/{parsed['name']}" if subfolder else parsed["name"]

    async def _queue(
        self, server: ServerTarget, workflow: dict, client_id: str, timeout: float, describe: str
    ) -> str:
        status, parsed, raw = await self._call(
            server,
            "POST",
            "/prompt",
            timeout,
            checked=False,
            json_body={"prompt": workflow, "client_id": client_id},
        )
        if status == 400 and isinstance(parsed, dict):
            raise ModelError(_validation_error(parsed))
        raise_for_status(status, parsed, raw, describe)
        require(
            isinstance(parsed, dict) and isinstance(parsed.get("prompt_id"), str), describe, "no prompt_id"
        )
        return parsed["prompt_id"]

    # -- during: the websocket ----------------------------------------------------------------------

    async def _follow(
        self, socket: aiohttp.ClientWebSocketResponse, run: _Run, progress: Progress, describe: str
    ) -> None:
        """Reads the job's events until it ends; raises what its end means for the job."""
        async for message in socket:
            if message.type == aiohttp.WSMsgType.BINARY:
                if run.running:
                    _preview(message.data, progress)
                continue
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            try:
                event = json.loads(message.data)
                kind, data = event["type"], event.get("data") or {}
            except (ValueError, KeyError, TypeError):
                continue
            if not isinstance(data, dict) or data.get("prompt_id", run.prompt_id) != run.prompt_id:
                continue
            if kind == "execution_start":
                run.running = True
            elif kind == "executing":
                run.running = True
                if data.get("node") is None:
                    run.finished = True
                    return
            elif kind == "progress":
                value, most = data.get("value"), data.get("max")
                if isinstance(value, int) and isinstance(most, int) and most > 0:
                    progress.report(value / most, value, most)
            elif kind == "execution_success":
                run.finished = True
                return
            elif kind == "execution_error":
                run.finished = True
                raise ModelError(_node_error(data))
            elif kind == "execution_interrupted":
                run.finished = True
                raise ServerFailure(f"{describe}: the job was interrupted on the server")
        raise ServerFailure(f"{describe}: the websocket closed before the job finished")

    async def _stop(self, server: ServerTarget, run: _Run) -> None:
        """Takes an unfinished job out of the server's queue, and interrupts it if it is running."""
        if run.finished:
            return
        with contextlib.suppress(ServerFailure):
            await self._call(
                server, "POST", "/queue", 5, checked=False, json_body={"delete": [run.prompt_id]}
            )
            if run.running:
                # Newer servers interrupt only the prompt named; older ones whatever runs, which is ours.
                await self._call(
                    server, "POST", "/interrupt", 5, checked=False, json_body={"prompt_id": run.prompt_id}
                )

    # -- after: the outputs -------------------------------------------------------------------------

    async def _outputs(
        self, server: ServerTarget, prompt_id: str, n: int, spec: ImageSpec, remaining, describe: str
    ) -> list[RenderedImage]:
        """The job's images, fetched only as many as are kept."""
        deadline = time.monotonic() + _HISTORY_WAIT_SECONDS
        while True:
            _, parsed, _ = await self._call(server, "GET", f"/history/{prompt_id}", remaining())
            entry = parsed.get(prompt_id) if isinstance(parsed, dict) else None
            if isinstance(entry, dict) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        require(isinstance(entry, dict), describe, f"no history for prompt {prompt_id}")
        files = kept_outputs(_output_files(entry), n, spec)
        if not files:
            raise ModelError(
                "the workflow finished without an output image (does it end in a SaveImage node?)"
            )
        images = []
        for file in files:
            query = urlencode({k: file.get(k, "") for k in ("filename", "subfolder", "type")})
            _, _, raw = await self._call(server, "GET", f"/view?{query}", remaining())
            images.append(decode_image(raw))
        return images


class _Run:
    def __init__(self, prompt_id: str):
        self.prompt_id = prompt_id
        self.running = False
        self.finished = False


def _write_fields(workflow: dict, config: dict, spec: ImageSpec, n: int) -> None:
    """The generation's fields into the nodes the model names, where the workflow has them."""
    values: dict[str, Any] = {"prompt": spec.prompt, "negative_prompt": spec.negative_prompt, "n": n}
    if spec.seed is not None:
        values["seed"] = spec.seed
    if spec.width and spec.height:
        values |= {"width": spec.width, "height": spec.height}
    for name in FIELDS:
        place = config.get(name)
        if place and name in values and (name not in ("prompt", "negative_prompt") or values[name]):
            _set(workflow, place, values[name])


def _set(workflow: dict, place: dict, value: Any) -> None:
    node = workflow.get(place["node"])
    if node is not None and isinstance(node.get("inputs"), dict):
        node["inputs"][place["input"]] = value


def _preview(frame: bytes, progress: Progress) -> None:
    if len(frame) < 8:
        return
    (event,) = struct.unpack(">I", frame[:4])
    if event == _PREVIEW_IMAGE:
        progress.show(frame[8:])


def _output_files(entry: dict) -> list[dict]:
    """The saved images of a history entry, node by node: `output` files (SaveImage), or, for a
    workflow that only previews, its `temp` ones."""
    files = []
    for output in (entry.get("outputs") or {}).values():
        if isinstance(output, dict):
            files += [f for f in output.get("images") or () if isinstance(f, dict) and f.get("filename")]
    saved = [f for f in files if f.get("type") == "output"]
    return saved or files


def _node_error(data: dict) -> str:
    node = data.get("node_id", "?")
    kind = data.get("node_type", "")
    message = str(data.get("exception_message") or data.get("exception_type") or "it failed").strip()
    return f"node {node} ({kind}) failed: {message}" if kind else f"node {node} failed: {message}"


def _validation_error(parsed: dict) -> str:
    """ComfyUI's 400 for a workflow that does not validate: its error, and each node's errors."""
    error = parsed.get("error")
    text = error.get("message", "") if isinstance(error, dict) else str(error or "")
    nodes = parsed.get("node_errors")
    if isinstance(nodes, dict):
        for node_id, found in list(nodes.items())[:5]:
            if not isinstance(found, dict):
                continue
            messages = [
                f"{e.get('message', '')}: {e.get('details', '')}".strip(": ")
                for e in found.get("errors") or ()
                if isinstance(e, dict)
            ]
            text += f"; node {node_id} ({found.get('class_type', '')}): {'; '.join(messages)}"
    if isinstance(error, dict) and error.get("details") and not nodes:
        text += f": {error['details']}"
    return text or "the server refused the workflow"
