"""Loopback model servers that speak the OpenAI Images, AUTOMATIC1111 and Replicate wire protocols,
error shapes included, and count what they were asked (in flight at once, cancels). Image inputs are
taken as each protocol takes them (a URL Replicate fetches, base64 `init_images`, a multipart edit) and
recorded as they arrived.

Each runs aiohttp on its own event loop in a thread, on 127.0.0.1 and a port of the system's choosing,
so tests in any loop (or the platform's processes) can reach it.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import struct
import threading
import uuid
from dataclasses import dataclass, field

import aiohttp
import numpy as np
from aiohttp import web
from PIL import Image, ImageFilter

from services.generator.providers.procedural import encode_png, render


def png(prompt: str, seed: int, width: int, height: int) -> bytes:
    return encode_png(render(prompt, seed % 2**32, width, height))


def jpeg(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(data)) as image:
        image.convert("RGB").save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def control_map(data: bytes) -> bytes:
    """What a ControlNet preprocessor returns first: the input's edges, white on black."""
    with Image.open(io.BytesIO(data)) as image:
        edges = image.convert("L").filter(ImageFilter.FIND_EDGES)
    return encode_png(np.stack([np.asarray(edges)] * 3, axis=2))


@dataclass
class Stats:
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    cancels: int = 0
    bodies: list = field(default_factory=list)
    headers: list = field(default_factory=list)
    # (url, HTTP status, bytes) of each input a Replicate prediction fetched.
    fetched: list = field(default_factory=list)
    # Multipart edits as they arrived: {"fields": {name: [text...]}, "files": {name: [(type, bytes)...]}}.
    edits: list = field(default_factory=list)


class LoopbackServer:
    """An aiohttp app on 127.0.0.1 in a thread of its own; subclasses add their routes."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("loopback server did not start")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._runner.cleanup()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class FakeModelServer(LoopbackServer):
    """One server for all three protocols. `delay` holds each generation; `fail_with` answers the next
    `fail_count` generations with that HTTP status (-1 forever) in the protocol's error shape."""

    def __init__(self, delay: float = 0.0, step_seconds: float = 0.0, task_ids: bool = False):
        self.delay = delay
        self.fail_with = 0
        self.fail_count = 0
        self.stats = Stats()
        self.predictions: dict[str, dict] = {}
        self._ids = itertools.count(1)
        # AUTOMATIC1111's progress, as modules/progress.py keeps it: with `step_seconds`, txt2img
        # samples `steps` steps one by one, and `force_task_id` (when `task_ids`, which the OpenAPI
        # schema then names) makes the job that task.
        self.step_seconds = step_seconds
        self.task_ids = task_ids
        self.current_task: str | None = None
        self.sampling = {"sampling_step": 0, "sampling_steps": 0}
        self.interrupted = False
        # (path, body) of each progress, interrupt and openapi request.
        self.progress_calls: list[tuple[str, dict]] = []
        super().__init__()

    @property
    def url(self) -> str:
        return self.base_url

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/images/generations", self._openai)
        app.router.add_post("/v1/images/edits", self._openai_edit)
        app.router.add_get("/v1/models", self._ok)
        app.router.add_post("/sdapi/v1/txt2img", self._txt2img)
        app.router.add_post("/sdapi/v1/img2img", self._img2img)
        app.router.add_get("/sdapi/v1/sd-models", self._ok)
        app.router.add_get("/openapi.json", self._openapi)
        app.router.add_post("/internal/progress", self._internal_progress)
        app.router.add_get("/sdapi/v1/progress", self._sdapi_progress)
        app.router.add_post("/sdapi/v1/interrupt", self._interrupt)
        app.router.add_post("/v1/models/{owner}/{name}/predictions", self._create_prediction)
        app.router.add_post("/v1/predictions", self._create_prediction)
        app.router.add_get("/v1/predictions/{id}", self._get_prediction)
        app.router.add_post("/v1/predictions/{id}/cancel", self._cancel_prediction)
        app.router.add_get("/v1/files/{id}", self._file)
        app.router.add_get("/v1/account", self._ok)

    def _should_fail(self) -> bool:
        if self.fail_count == 0:
            return False
        if self.fail_count > 0:
            self.fail_count -= 1
        return True

    async def _work(self, request: web.Request) -> dict:
        body = await request.json()
        self.stats.requests += 1
        self.stats.bodies.append(body)
        self.stats.headers.append(dict(request.headers))
        self.stats.in_flight += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.stats.in_flight -= 1
        return body

    async def _ok(self, request: web.Request) -> web.Response:
        if self.fail_with and self.fail_count:
            return web.json_response({"error": {"message": "down"}}, status=self.fail_with)
        return web.json_response({"data": [], "object": "list"})

    # -- OpenAI Images --------------------------------------------------------------------------------

    async def _openai(self, request: web.Request) -> web.Response:
        body = await self._work(request)
        if self._should_fail():
            return web.json_response(
                {"error": {"message": "The server had an error", "type": "server_error", "code": None}},
                status=self.fail_with,
            )
        if "forbidden" in body["prompt"]:
            return web.json_response(
                {
                    "error": {
                        "message": "Your request was rejected as a result of our safety system.",
                        "type": "invalid_request_error",
                        "code": "content_policy_violation",
                    }
                },
                status=400,
            )
        width, height = (int(v) for v in body["size"].split("x"))
        images = [png(body["prompt"], i, width, height) for i in range(body.get("n", 1))]
        if body.get("response_format") == "url":
            data = [{"url": f"{self.url}/v1/files/{self._store(image)}"} for image in images]
        else:
            data = [
                {"b64_json": base64.b64encode(image).decode(), "revised_prompt": body["prompt"]}
                for image in images
            ]
        return web.json_response({"created": 1700000000, "data": data})

    async def _openai_edit(self, request: web.Request) -> web.Response:
        """`images.edit`: multipart `image` or `image[]`, `mask`, and text fields."""
        self.stats.requests += 1
        edit: dict = {"fields": {}, "files": {}}
        async for part in await request.multipart():
            if part.filename is not None:
                data = await part.read()
                edit["files"].setdefault(part.name, []).append((part.headers.get("Content-Type", ""), data))
            else:
                edit["fields"].setdefault(part.name, []).append(await part.text())
        self.stats.edits.append(edit)
        images = edit["files"].get("image") or edit["files"].get("image[]")
        if not images:
            return web.json_response(
                {"error": {"message": "image is required", "type": "invalid_request_error"}}, status=400
            )
        width, height = size_of(images[0][1])
        prompt = edit["fields"]["prompt"][0]
        count = int(edit["fields"].get("n", ["1"])[0])
        data = [{"b64_json": base64.b64encode(png(prompt, i, width, height)).decode()} for i in range(count)]
        return web.json_response({"created": 1700000000, "data": data})

    # -- AUTOMATIC1111 ------------------------------------------------------------------------------

    async def _img2img(self, request: web.Request) -> web.Response:
        """img2img: base64 `init_images` and `mask`; ControlNet units append their detected maps."""
        body = await self._work(request)
        init = base64.b64decode(body["init_images"][0])
        width, height = body.get("width") or size_of(init)[0], body.get("height") or size_of(init)[1]
        seed = body.get("seed", -1) if body.get("seed", -1) >= 0 else 0
        images = [png(body["prompt"], seed + i, width, height) for i in range(body.get("batch_size", 1))]
        for unit in body.get("alwayson_scripts", {}).get("controlnet", {}).get("args", []):
            if unit.get("input_image"):
                images.append(control_map(base64.b64decode(unit["input_image"])))
        return web.json_response(
            {"images": [base64.b64encode(image).decode() for image in images], "parameters": {}, "info": "{}"}
        )

    async def _txt2img(self, request: web.Request) -> web.Response:
        body = await self._work(request)
        if self._should_fail():
            return web.json_response(
                {"error": "RuntimeError", "detail": "", "body": "", "errors": "CUDA out of memory"},
                status=self.fail_with,
            )
        if body["width"] > 4096:
            return web.json_response(
                {"detail": [{"loc": ["body", "width"], "msg": "too wide", "type": "value_error"}]}, status=422
            )
        if self.step_seconds:
            await self._sample(body)
        images = [
            base64.b64encode(png(body["prompt"], body["seed"] + i, body["width"], body["height"])).decode()
            for i in range(body.get("batch_size", 1))
        ]
        return web.json_response({"images": images, "parameters": body, "info": "{}"})

    async def _sample(self, body: dict) -> None:
        """One job at a time, as the WebUI's queue lock runs them; an interrupt ends the sampling."""
        task = body.get("force_task_id") if self.task_ids else None
        self.current_task = task or f"task(unnamed-{next(self._ids)})"
        self.interrupted = False
        steps = body.get("steps", 20)
        self.sampling = {"sampling_step": 0, "sampling_steps": steps}
        try:
            for step in range(1, steps + 1):
                if self.interrupted:
                    break
                await asyncio.sleep(self.step_seconds)
                self.sampling["sampling_step"] = step
        finally:
            self.current_task = None

    def _live_preview(self) -> str:
        return "data:image/jpeg;base64," + base64.b64encode(jpeg(png("preview", 1, 96, 96))).decode()

    async def _openapi(self, request: web.Request) -> web.Response:
        self.progress_calls.append(("/openapi.json", {}))
        properties = {"prompt": {"type": "string"}}
        if self.task_ids:
            properties["force_task_id"] = {"type": "string"}
        schema = {"StableDiffusionProcessingTxt2Img": {"type": "object", "properties": properties}}
        return web.json_response({"openapi": "3.1.0", "components": {"schemas": schema}})

    def _fraction(self) -> float:
        steps = self.sampling["sampling_steps"]
        return self.sampling["sampling_step"] / steps if steps else 0.0

    async def _internal_progress(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.progress_calls.append(("/internal/progress", body))
        if body.get("id_task") != self.current_task:
            return web.json_response(
                {
                    "active": False,
                    "queued": False,
                    "paused": False,
                    "completed": False,
                    "id_live_preview": -1,
                    "textinfo": "Waiting...",
                }
            )
        return web.json_response(
            {
                "active": True,
                "queued": False,
                "paused": False,
                "completed": False,
                "progress": self._fraction(),
                "eta": 1.0,
                "live_preview": self._live_preview(),
                "id_live_preview": self.sampling["sampling_step"],
                "textinfo": "",
            }
        )

    async def _sdapi_progress(self, request: web.Request) -> web.Response:
        self.progress_calls.append(("/sdapi/v1/progress", {}))
        running = self.current_task is not None
        state = {
            "skipped": False,
            "interrupted": self.interrupted,
            "job": "",
            "job_count": int(running),
            "job_timestamp": "0",
            "job_no": 0,
            **self.sampling,
        }
        return web.json_response(
            {
                "progress": self._fraction() if running else 0.0,
                "eta_relative": 1.0,
                "state": state,
                "textinfo": None,
                "current_image": self._live_preview().partition(",")[2] if running else None,
            }
        )

    async def _interrupt(self, request: web.Request) -> web.Response:
        self.progress_calls.append(("/sdapi/v1/interrupt", {}))
        if self.current_task is not None:
            self.interrupted = True
        return web.json_response({})

    # -- Replicate ----------------------------------------------------------------------------------

    def _store(self, data: bytes) -> str:
        file_id = f"f{next(self._ids)}"
        self.predictions[file_id] = {"file": data}
        return file_id

    async def _file(self, request: web.Request) -> web.Response:
        entry = self.predictions.get(request.match_info["id"])
        if entry is None or "file" not in entry:
            return web.json_response({"detail": "Not found."}, status=404)
        return web.Response(body=entry["file"], content_type="image/png")

    async def _create_prediction(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.stats.requests += 1
        self.stats.bodies.append(body)
        self.stats.headers.append(dict(request.headers))
        if self._should_fail():
            return web.json_response(
                {"title": "Request was throttled", "detail": "Request was throttled.", "status": 429},
                status=self.fail_with,
            )
        inputs = body["input"]
        if "forbidden" in inputs.get("prompt", ""):
            return web.json_response(
                {"title": "Input validation failed", "detail": "- input.prompt: NSFW content", "status": 422},
                status=422,
            )
        prediction_id = f"p{next(self._ids)}"
        prediction = {
            "id": prediction_id,
            "status": "starting",
            "input": inputs,
            "output": None,
            "error": None,
            "urls": {
                "get": f"{self.url}/v1/predictions/{prediction_id}",
                "cancel": f"{self.url}/v1/predictions/{prediction_id}/cancel",
            },
        }
        self.predictions[prediction_id] = prediction
        self.stats.in_flight += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        asyncio.get_running_loop().create_task(self._run_prediction(prediction))
        return web.json_response(prediction, status=201)

    async def _run_prediction(self, prediction: dict) -> None:
        prediction["status"] = "processing"
        await asyncio.sleep(self.delay)
        self.stats.in_flight -= 1
        if prediction["status"] == "canceled":
            return
        inputs = prediction["input"]
        if "fail" in inputs.get("prompt", ""):
            prediction.update(status="failed", error="NSFW content detected. Try running it again.")
            return
        if "image" in inputs:
            # A ControlNet model, as RoomFix's: it fetches the photo, answers the control map, then
            # the result.
            async with aiohttp.ClientSession() as session, session.get(inputs["image"]) as response:
                photo = await response.read()
                self.stats.fetched.append((inputs["image"], response.status, photo))
            if response.status != 200:
                prediction.update(status="failed", error=f"could not fetch the image: {response.status}")
                return
            width, height = size_of(photo)
            results = [control_map(photo), png(inputs["prompt"], inputs.get("seed", 0), width, height)]
            files = [self._store(result) for result in results]
        else:
            files = [
                self._store(png(inputs["prompt"], inputs["seed"] + i, inputs["width"], inputs["height"]))
                for i in range(inputs.get("num_outputs", 1))
            ]
        outputs = [f"{self.url}/v1/files/{file_id}" for file_id in files]
        prediction.update(status="succeeded", output=outputs)

    async def _get_prediction(self, request: web.Request) -> web.Response:
        prediction = self.predictions.get(request.match_info["id"])
        if prediction is None:
            return web.json_response({"detail": "Not found."}, status=404)
        return web.json_response(prediction)

    async def _cancel_prediction(self, request: web.Request) -> web.Response:
        prediction = self.predictions[request.match_info["id"]]
        if prediction["status"] in ("starting", "processing"):
            prediction["status"] = "canceled"
            self.stats.cancels += 1
        return web.json_response(prediction)


class WebhookReceiver(LoopbackServer):
    """Answers `statuses` in turn (then 204) and keeps every request it got."""

    def __init__(self, statuses: list[int]):
        self.statuses = list(statuses)
        self.received: list[tuple[dict, bytes]] = []
        super().__init__()

    @property
    def url(self) -> str:
        return f"{self.base_url}/hooks/imagegen"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/hooks/imagegen", self._hook)

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append(({k.lower(): v for k, v in request.headers.items()}, await request.read()))
        status = self.statuses.pop(0) if self.statuses else 204
        return web.Response(status=status, text="nope" if status >= 300 else "")


class PhotoServer(LoopbackServer):
    """Serves files by path (an app's photos, on its CDN) and records the paths asked; a file of type
    `redirect` answers 302 to the location its bytes name."""

    def __init__(self, files: dict[str, tuple[str, bytes]]):
        self.files = files
        self.requests: list[str] = []
        super().__init__()

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/{name:.*}", self._get)

    async def _get(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        name = request.match_info["name"]
        if name not in self.files:
            return web.Response(status=404, text="no such photo")
        content_type, data = self.files[name]
        if content_type == "redirect":
            raise web.HTTPFound(data.decode())
        return web.Response(body=data, content_type=content_type)


class ConnectionCounter:
    """A raw TCP listener on 127.0.0.1 that counts the connections it accepts and answers each with a
    valid PNG: whatever reaches it would succeed, so a refusal is imagegen's doing."""

    def __init__(self, body: bytes):
        self.body = body
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        head = f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {len(self.body)}\r\n\r\n"
        writer.write(head.encode() + self.body)
        await writer.drain()
        writer.close()

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class FakeComfyUI(LoopbackServer):
    """ComfyUI's HTTP and websocket protocol as its `server.py`, `execution.py` and `main.py` speak it:
    `POST /prompt` validates and queues an API-format workflow, one prompt runs at a time, and the
    websocket of the prompt's `client_id` hears `status`, `execution_start`, `execution_cached`,
    `executing`, `progress`, binary preview frames (event 1, image type 1 = JPEG), `executed`, then
    `executing` with `node: null` and `execution_success`; or `execution_error` / `execution_interrupted`.
    Outputs come from `/history/{prompt_id}` and `/view`, uploads land in an input folder.

    The sampler (KSampler) takes `steps` steps of `step_seconds`; `sampler_name: "explode"` fails it."""

    NODES = {
        "KSampler",
        "CheckpointLoaderSimple",
        "EmptyLatentImage",
        "CLIPTextEncode",
        "VAEDecode",
        "VAEEncode",
        "SaveImage",
        "PreviewImage",
        "LoadImage",
        "LoadImageMask",
    }

    def __init__(self, step_seconds: float = 0.02):
        self.step_seconds = step_seconds
        self.prompts: list[dict] = []
        self.inputs: dict[str, bytes] = {}
        self.uploads: list[tuple[str, str]] = []
        self.outputs: dict[str, bytes] = {}
        self.history: dict[str, dict] = {}
        self.deleted: list[str] = []
        self.interrupts = 0
        self.running: str | None = None
        self.step = 0
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._interrupt = False
        self._numbers = itertools.count(0)
        super().__init__()
        asyncio.run_coroutine_threadsafe(self._start_worker(), self._loop).result(5)

    async def _start_worker(self) -> None:
        self._queue: list[tuple[str, dict, str]] = []
        self._queued = asyncio.Event()
        self._worker = asyncio.create_task(self._work())

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/ws", self._ws)
        app.router.add_post("/prompt", self._prompt)
        app.router.add_post("/upload/image", self._upload)
        app.router.add_post("/upload/mask", self._upload)
        app.router.add_get("/history/{prompt_id}", self._history)
        app.router.add_get("/view", self._view)
        app.router.add_post("/interrupt", self._interrupt_route)
        app.router.add_post("/queue", self._queue_route)
        app.router.add_get("/system_stats", self._system_stats)

    async def _send(self, client_id: str, kind: str, data: dict) -> None:
        socket = self._sockets.get(client_id)
        if socket is not None and not socket.closed:
            await socket.send_json({"type": kind, "data": data})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        sid = request.rel_url.query.get("clientId", "") or f"sid{next(self._numbers)}"
        self._sockets[sid] = socket
        try:
            await self._send(
                sid, "status", {"status": {"exec_info": {"queue_remaining": len(self._queue)}}, "sid": sid}
            )
            async for _ in socket:
                pass
        finally:
            self._sockets.pop(sid, None)
        return socket

    async def _upload(self, request: web.Request) -> web.Response:
        post = await request.post()
        image = post.get("image")
        if image is None or not image.filename:
            return web.Response(status=400)
        data = image.file.read()
        if request.path.endswith("/mask"):
            original = json.loads(post["original_ref"])["filename"]
            if original not in self.inputs:
                return web.Response(status=404)
            name = f"clipspace-mask-{len(self.inputs)}.png"
            self.uploads.append(("mask", name))
        else:
            name = image.filename
            self.uploads.append(("image", name))
        self.inputs[name] = data
        return web.json_response({"name": name, "subfolder": "", "type": "input"})

    async def _prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        prompt = body.get("prompt")
        if not isinstance(prompt, dict):
            return web.json_response(
                {
                    "error": {
                        "type": "no_prompt",
                        "message": "No prompt provided",
                        "details": "",
                        "extra_info": {},
                    },
                    "node_errors": {},
                },
                status=400,
            )
        for node_id, node in prompt.items():
            if node.get("class_type") not in self.NODES:
                return web.json_response(
                    {
                        "error": {
                            "type": "invalid_prompt",
                            "message": "Cannot execute"
                            f" because node {node.get('class_type')} does not exist.",
                            "details": f"Node ID '#{node_id}'",
                            "extra_info": {},
                        },
                        "node_errors": {},
                    },
                    status=400,
                )
        node_errors = {}
        for node_id, node in prompt.items():
            if (
                node["class_type"] in ("LoadImage", "LoadImageMask")
                and node["inputs"]["image"] not in self.inputs
            ):
                node_errors[node_id] = {
                    "errors": [
                        {
                            "type": "custom_validation_failed",
                            "message": "Custom validation failed for node",
                            "details": f"image - Invalid image file: {node['inputs']['image']}",
                            "extra_info": {},
                        }
                    ],
                    "dependent_outputs": [],
                    "class_type": node["class_type"],
                }
        if node_errors:
            return web.json_response(
                {
                    "error": {
                        "type": "prompt_outputs_failed_validation",
                        "message": "Prompt outputs failed validation",
                        "details": "",
                        "extra_info": {},
                    },
                    "node_errors": node_errors,
                },
                status=400,
            )
        prompt_id = str(uuid.uuid4())
        self.prompts.append(prompt)
        self._queue.append((prompt_id, prompt, body.get("client_id", "")))
        self._queued.set()
        return web.json_response({"prompt_id": prompt_id, "number": next(self._numbers), "node_errors": {}})

    async def _work(self) -> None:
        while True:
            await self._queued.wait()
            self._queued.clear()
            while self._queue:
                prompt_id, prompt, client_id = self._queue.pop(0)
                self.running, self._interrupt = prompt_id, False
                try:
                    await self._execute(prompt_id, prompt, client_id)
                finally:
                    self.running = None
                    await self._send(client_id, "executing", {"node": None, "prompt_id": prompt_id})

    async def _execute(self, prompt_id: str, prompt: dict, client_id: str) -> None:
        await self._send(client_id, "execution_start", {"prompt_id": prompt_id, "timestamp": 0})
        await self._send(client_id, "execution_cached", {"nodes": [], "prompt_id": prompt_id, "timestamp": 0})
        outputs = {}
        for node_id, node in prompt.items():
            await self._send(
                client_id, "executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}
            )
            if node["class_type"] == "KSampler":
                inputs = node["inputs"]
                if inputs.get("sampler_name") == "explode":
                    await self._send(
                        client_id,
                        "execution_error",
                        {
                            "prompt_id": prompt_id,
                            "node_id": node_id,
                            "node_type": "KSampler",
                            "executed": [],
                            "exception_message": "Expected all tensors to be on the same device",
                            "exception_type": "RuntimeError",
                            "traceback": [],
                            "current_inputs": {},
                            "current_outputs": {},
                        },
                    )
                    self.history[prompt_id] = {
                        "prompt": [0, prompt_id, prompt, {}, []],
                        "outputs": {},
                        "status": {"status_str": "error", "completed": False, "messages": []},
                    }
                    return
                steps = inputs.get("steps", 20)
                for step in range(1, steps + 1):
                    if self._interrupt:
                        await self._send(
                            client_id,
                            "execution_interrupted",
                            {
                                "prompt_id": prompt_id,
                                "node_id": node_id,
                                "node_type": "KSampler",
                                "executed": [],
                            },
                        )
                        return
                    await asyncio.sleep(self.step_seconds)
                    self.step = step
                    await self._send(
                        client_id,
                        "progress",
                        {"value": step, "max": steps, "prompt_id": prompt_id, "node": node_id},
                    )
                    socket = self._sockets.get(client_id)
                    if socket is not None and not socket.closed:
                        frame = struct.pack(">II", 1, 1) + jpeg(png("preview", step, 256, 256))
                        await socket.send_bytes(frame)
            if node["class_type"] == "SaveImage":
                images = []
                for data in self._render(prompt, node):
                    name = f"{node['inputs'].get('filename_prefix', 'ComfyUI')}_{len(self.outputs):05}_.png"
                    self.outputs[name] = data
                    images.append({"filename": name, "subfolder": "", "type": "output"})
                outputs[node_id] = {"images": images}
                await self._send(
                    client_id,
                    "executed",
                    {
                        "node": node_id,
                        "display_node": node_id,
                        "output": outputs[node_id],
                        "prompt_id": prompt_id,
                    },
                )
        self.history[prompt_id] = {
            "prompt": [0, prompt_id, prompt, {}, list(outputs)],
            "outputs": outputs,
            "status": {"status_str": "success", "completed": True, "messages": []},
        }
        await self._send(client_id, "execution_success", {"prompt_id": prompt_id, "timestamp": 0})

    def _render(self, prompt: dict, save: dict) -> list[bytes]:
        """Follows SaveImage <- VAEDecode <- KSampler to its prompt, seed and latent."""
        decode = prompt[save["inputs"]["images"][0]]
        sampler = prompt[decode["inputs"]["samples"][0]]["inputs"]
        text = prompt[sampler["positive"][0]]["inputs"]["text"]
        latent = prompt[sampler["latent_image"][0]]
        if latent["class_type"] == "EmptyLatentImage":
            width, height, batch = (latent["inputs"][k] for k in ("width", "height", "batch_size"))
        else:
            loaded = prompt[latent["inputs"]["pixels"][0]]["inputs"]["image"]
            (width, height), batch = size_of(self.inputs[loaded]), 1
        return [png(text, sampler["seed"] + i, width, height) for i in range(batch)]

    async def _history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry else {})

    async def _view(self, request: web.Request) -> web.Response:
        name = request.rel_url.query.get("filename", "")
        folder = self.outputs if request.rel_url.query.get("type", "output") == "output" else self.inputs
        if name not in folder:
            return web.Response(status=404)
        return web.Response(body=folder[name], content_type="image/png")

    async def _interrupt_route(self, request: web.Request) -> web.Response:
        self.interrupts += 1
        self._interrupt = True
        return web.Response(status=200)

    async def _queue_route(self, request: web.Request) -> web.Response:
        body = await request.json()
        for prompt_id in body.get("delete", []):
            self.deleted.append(prompt_id)
            self._queue = [q for q in self._queue if q[0] != prompt_id]
        return web.Response(status=200)

    async def _system_stats(self, request: web.Request) -> web.Response:
        return web.json_response({"system": {"os": "posix", "comfyui_version": "0.3.40"}, "devices": []})
