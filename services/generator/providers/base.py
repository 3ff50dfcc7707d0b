"""What every provider shares: the request and result types, the two kinds of failure, and an HTTP
helper that sorts a model server's answers into them."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import io
import json
import math
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from PIL import Image, UnidentifiedImageError

from services.common.outbound import OutboundPolicy, OutboundRefused, guarded_session
from services.common.vocabulary import MAX_OUTPUTS_PER_IMAGE

_CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
MAX_IMAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class InputFile:
    """An input image as a provider sends it: its bytes, and a signed URL a model server can fetch."""

    role: str
    # A JSON pointer into `native`, where the image goes; empty for one given outside it.
    pointer: str
    data: bytes
    content_type: str
    width: int
    height: int
    url: str

    def base64(self) -> str:
        return base64.b64encode(self.data).decode()


@dataclass(frozen=True)
class ImageSpec:
    prompt: str
    negative_prompt: str
    # 0: the model server decides (a model-native request that gave none).
    width: int
    height: int
    # None: the model server decides.
    seed: int | None
    # Replicate's version, when the request named one.
    version: str = ""
    # The model server's own request, as the app sent it (common fields written in, images replaced by
    # references); None for a request without one, which the provider builds from the fields above.
    native: dict | None = None
    inputs: tuple[InputFile, ...] = ()
    # Images kept per image asked, when the server returns more (the model's setting).
    max_outputs_per_image: int = MAX_OUTPUTS_PER_IMAGE

    def images(self, role: str = "image") -> list[InputFile]:
        """Inputs given outside `native` in this role: the top-level `inputImages` or `mask`."""
        return [i for i in self.inputs if not i.pointer and i.role == role]

    def native_with(self, form: Callable[[InputFile], Any]) -> dict:
        """A copy of `native` with each input image in the provider's form (a URL, base64...)."""
        body = copy.deepcopy(self.native or {})
        for image in self.inputs:
            if image.pointer:
                container, key = _locate(body, image.pointer)
                container[key] = form(image)
        return body


def _locate(body: Any, pointer: str) -> tuple[Any, Any]:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.strip("/").split("/")]
    node = body
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    return node, int(last) if isinstance(node, list) else last


def kept_outputs(images: list, n: int, spec: ImageSpec) -> list:
    """Every image a server returned, in its order, up to the model's number for each one asked."""
    return images[: n * spec.max_outputs_per_image]


@dataclass(frozen=True)
class ServerTarget:
    id: str
    url: str
    api_key: str
    upstream_model: str
    # Attached by an admin key: it may be on one of the deployment's allowed private networks.
    private_ok: bool = False
    # Jobs the server runs at once (0: not known).
    max_concurrency: int = 0
    # Provider `comfyui`: the model's workflow and field places, as JSON.
    comfyui: str = ""


@dataclass(frozen=True)
class RenderedImage:
    data: bytes
    content_type: str
    width: int
    height: int


class Progress:
    """Where a provider says how far its server got with one job. The worker sends the latest to the
    catalog a few times a second (services/generator/progress.py); reports in between are folded."""

    def __init__(self) -> None:
        self.fraction = 0.0
        self.step = 0
        self.steps = 0
        # The server's latest intermediate image, as it sent it; the worker shrinks it.
        self.preview: bytes | None = None
        self.changed = False

    def report(self, fraction: float, step: int = 0, steps: int = 0) -> None:
        if not math.isfinite(fraction):
            return
        fraction = min(max(float(fraction), 0.0), 1.0)
        if (fraction, step, steps) != (self.fraction, self.step, self.steps):
            self.fraction, self.step, self.steps = fraction, step, steps
            self.changed = True

    def show(self, image: bytes) -> None:
        self.preview = image
        self.changed = True


class ModelError(Exception):
    """The model could not or would not make the image; another attempt would answer the same. The
    message becomes the generation's `reason`."""


class ServerFailure(Exception):
    """The server was unreachable, overloaded, broken or too slow: the job is retried on another server,
    and this one moves towards the bench."""


class Provider(Protocol):
    async def generate(
        self, server: ServerTarget, spec: ImageSpec, n: int, timeout: float, progress: Progress
    ) -> list[RenderedImage]:
        """Runs one job; `progress` takes what the server reports of it as it runs. A cancelled call
        stops the job on the server where the server allows it."""

    async def probe(self, server: ServerTarget, timeout: float) -> None:
        """Raises ServerFailure unless the server answers like a healthy one."""


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def decode_image(data: bytes) -> RenderedImage:
    if len(data) > MAX_IMAGE_BYTES:
        raise ModelError(
            f"the model server sent an image of {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}"
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError):
        raise ModelError("the model server sent data that is not an image") from None
    if kind not in _CONTENT_TYPES:
        raise ModelError(f"the model server sent a {kind} image; PNG, JPEG, WebP or GIF are accepted")
    return RenderedImage(data, _CONTENT_TYPES[kind], width, height)


def decode_base64_image(text: str) -> RenderedImage:
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return decode_image(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raise ModelError("the model server sent an image that is not valid base64") from None


class Http:
    """One pooled aiohttp session per process, opened on first use inside the running loop. A model
    server's address is a tenant's to write, so every request goes only where the outbound policy
    allows (services/common/outbound.py); redirects are never followed (they would carry the key)."""

    def __init__(self, policy: OutboundPolicy | None = None) -> None:
        policy = policy or OutboundPolicy()
        # A server an admin attached may be on an allowed private network; any other, public only.
        self.policies = {True: policy, False: policy.without_private()}
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    def _session(self, private_ok: bool) -> aiohttp.ClientSession:
        session = self._sessions.get(private_ok)
        if session is None or session.closed:
            session = guarded_session(self.policies[private_ok], limit=256, auto_decompress=True)
            self._sessions[private_ok] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()

    @contextlib.asynccontextmanager
    async def websocket(
        self, url: str, *, server: ServerTarget, timeout: float, headers: dict[str, str], describe: str
    ) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
        """A websocket to `url` under the same outbound rules as `request`; failing to open it, or
        losing it, is the server's failure."""
        with self._server_failures(url, server, timeout, describe):
            async with asyncio.timeout(max(timeout, 0.001)):
                socket = await self._session(server.private_ok).ws_connect(
                    url,
                    headers=headers,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5),
                    heartbeat=30,
                    max_msg_size=MAX_IMAGE_BYTES,
                )
        async with socket:
            yield socket

    @contextlib.contextmanager
    def _server_failures(
        self, url: str, server: ServerTarget, timeout: float, describe: str
    ) -> Iterator[None]:
        """Checks `url` against the outbound policy, and turns what can go wrong reaching it into
        ServerFailure."""
        try:
            self.policies[server.private_ok].check_url(url)
        except OutboundRefused as exc:
            raise ServerFailure(f"{describe}: {exc}") from None
        try:
            yield
        except TimeoutError:
            raise ServerFailure(f"{describe}: no answer within {timeout:.1f} s") from None
        except aiohttp.WSServerHandshakeError as exc:
            raise ServerFailure(f"{describe}: the websocket was refused with HTTP {exc.status}") from None
        except aiohttp.ClientConnectorError as exc:
            raise ServerFailure(
                f"{describe}: could not connect: {exc.os_error.strerror or exc.os_error}"
            ) from None
        except aiohttp.ClientError as exc:
            # Its text may quote what the other end sent (a gRPC port's SETTINGS frame): the kind only.
            raise ServerFailure(f"{describe}: {type(exc).__name__}") from None

    async def request(
        self,
        method: str,
        url: str,
        *,
        server: ServerTarget,
        timeout: float,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        form: aiohttp.FormData | None = None,
        describe: str,
    ) -> tuple[int, Any, bytes]:
        """(status, parsed JSON or None, raw body) of a request made for `server` (to it, or to a URL it
        answered with). Transport failures, timeouts, refused addresses, 408,
        429 and 5xx raise ServerFailure; other statuses come back for the provider to read. No failure
        carries the answer's raw bytes: only a model server's own error message reaches a `reason`."""
        with self._server_failures(url, server, timeout, describe):
            async with self._session(server.private_ok).request(
                method,
                url,
                headers=headers,
                json=json_body,
                data=form,
                timeout=aiohttp.ClientTimeout(total=max(timeout, 0.001)),
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                status = response.status
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        if status in (408, 429) or status >= 500:
            raise ServerFailure(f"{describe}: HTTP {status}: {error_message(parsed, raw)}")
        return status, parsed, raw


def error_message(parsed: Any, raw: bytes) -> str:
    """The human part of the error shapes model servers use: OpenAI's {"error": {"message"}},
    FastAPI's {"detail"}, Replicate's problem details {"title", "detail"}, A1111's {"error", "errors"}."""
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        detail = parsed.get("detail")
        if isinstance(detail, list):
            return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
        if detail:
            return str(detail)
        for key in ("errors", "title", "message"):
            if parsed.get(key):
                return str(parsed[key])
        if isinstance(error, str) and error:
            return error
    # Not a model server's error shape: its bytes stay here (they may be anything the address serves).
    return f"an answer of {len(raw)} bytes in no error shape a model server uses" if raw else "empty answer"


def require(condition: bool, describe: str, what: str) -> None:
    if not condition:
        raise ServerFailure(f"{describe}: unexpected answer: {what}")


def raise_for_status(status: int, parsed: Any, raw: bytes, describe: str) -> None:
    """A rejected credential is the server's problem (another server may hold a good key); any other
    4xx is the model refusing this request."""
    if status in (401, 403):
        raise ServerFailure(
            f"{describe}: HTTP {status}, the server rejected its API key: {error_message(parsed, raw)}"
        )
    if status >= 400:
        raise ModelError(error_message(parsed, raw))
