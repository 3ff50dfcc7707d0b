"""A stand-in OpenAI Images server for `make bench-peer` and `bench-compare --relay`: every `POST
/v1/images/generations` answers the same ~100 KB PNG as `b64_json` at once, so both sides of a
comparison relay identical work.

`python -m bench.fake_openai PORT_FILE` binds 127.0.0.1 on a port of the kernel's choice and writes it there;
`running_upstream()` starts it so, and `register_relay_model` points a platform's model at it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import numpy as np
import requests
from aiohttp import web
from PIL import Image

# The model each platform relays to the stand-in, and the OpenAI Images request both sides are sent.
MODEL = "fake-image"
BODY = {"model": MODEL, "prompt": "a misty lake at sunset", "response_format": "b64_json", "n": 1}


def fixed_png() -> bytes:
    """Noise does not compress: 192x192 RGB is about 110 KB as PNG."""
    pixels = np.random.default_rng(7).integers(0, 256, size=(192, 192, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


async def main(port_file: pathlib.Path) -> None:
    encoded = base64.b64encode(fixed_png()).decode()

    async def generate(request: web.Request) -> web.Response:
        body = await request.json()
        data = [{"b64_json": encoded} for _ in range(int(body.get("n") or 1))]
        return web.Response(
            body=json.dumps({"created": int(time.time()), "data": data}), content_type="application/json"
        )

    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "dall-e-2", "object": "model"}]})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/v1/images/generations", generate)
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    port_file.write_text(str(port))  # noqa: ASYNC240 (once, before serving)
    await asyncio.Event().wait()


def stop(process: subprocess.Popen) -> None:
    """Stops a process started in its own session, and whatever it started."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def running_upstream() -> Iterator[str]:
    """The stand-in, started in its own process; yields its OpenAI base URL (`http://127.0.0.1:N/v1`)."""
    with tempfile.TemporaryDirectory(prefix="imagegen-fake-openai-") as tmp:
        port_file = pathlib.Path(tmp) / "port"
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.fake_openai", str(port_file)],
            cwd=pathlib.Path(__file__).resolve().parent.parent,
            start_new_session=True,
        )
        try:
            while not port_file.exists() or not port_file.read_text():
                if process.poll() is not None:
                    raise RuntimeError("the stand-in OpenAI server exited")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port_file.read_text()}/v1"
        finally:
            stop(process)


def register_relay_model(gateway_url: str, key: str, upstream: str) -> None:
    """MODEL on the platform behind `gateway_url`: provider `openai`, relaying to `upstream`."""
    created = requests.post(
        f"{gateway_url}/api/models",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "name": MODEL,
            "provider": "openai",
            "upstreamModel": "dall-e-2",
            "servers": [{"url": upstream, "apiKey": "sk-upstream", "maxConcurrency": 64}],
        },
        timeout=30,
    )
    created.raise_for_status()


if __name__ == "__main__":
    asyncio.run(main(pathlib.Path(sys.argv[1])))
