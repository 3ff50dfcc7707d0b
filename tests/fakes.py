"""Loopback model servers that speak the OpenAI Images, AUTOMATIC1111 and Replicate wire protocols,
error shapes included, and count what they were asked (in flight at once, cancels).

Each runs aiohttp on its own event loop in a thread, on 127.0.0.1 and a port of the system's choosing,
so tests in any loop (or the platform's processes) can reach it.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import threading
from dataclasses import dataclass, field

from aiohttp import web

from services.generator.providers.procedural import encode_png, render


def png(prompt: str, seed: int, width: int, height: int) -> bytes:
    return encode_png(render(prompt, seed % 2**32, width, height))


@dataclass
class Stats:
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    cancels: int = 0
    bodies: list = field(default_factory=list)
    headers: list = field(default_factory=list)


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
        app.router.add_get("/v1/models", self._ok)
        app.router.add_post("/sdapi/v1/txt2img", self._txt2img)
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

    # -- AUTOMATIC1111 ------------------------------------------------------------------------------

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
        if "forbidden" in inputs["prompt"]:
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
        if "fail" in inputs["prompt"]:
            prediction.update(status="failed", error="NSFW content detected. Try running it again.")
            return
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
