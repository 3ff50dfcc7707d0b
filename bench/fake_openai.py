"""A stand-in OpenAI Images server for `make bench-peer`: every `POST /v1/images/generations` answers the
same ~100 KB PNG as `b64_json` at once, so both sides of the comparison relay identical work.

`python -m bench.fake_openai PORT_FILE` binds 127.0.0.1 on a port of the kernel's choice and writes it there.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import pathlib
import sys
import time

import numpy as np
from aiohttp import web
from PIL import Image


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


if __name__ == "__main__":
    asyncio.run(main(pathlib.Path(sys.argv[1])))
