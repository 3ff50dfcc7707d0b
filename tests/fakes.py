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
import threading
from dataclasses import dataclass, field

import aiohttp
import numpy as np
from aiohttp import web
from PIL import Image, ImageFilter

from services.generator.providers.procedural import encode_png, render


def png(prompt: str, seed: int, width: int, height: int) -> bytes:
    return encode_png(render(prompt, seed % 2**32, width, height))


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

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.fail_with = 0
        self.fail_count = 0
        self.stats = Stats()
        self.predictions: dict[str, dict] = {}
        self._ids = itertools.count(1)
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
        images = [
            base64.b64encode(png(body["prompt"], body["seed"] + i, body["width"], body["height"])).decode()
            for i in range(body["batch_size"])
        ]
        return web.json_response({"images": images, "parameters": body, "info": "{}"})

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
