"""Replicate's predictions API: create with `Prefer: wait`, poll `urls.get` until it ends, cancel
through `urls.cancel` when the job is abandoned.

`upstreamModel` is `owner/name` (an official model, created at `/models/owner/name/predictions`) or
`owner/name:version` / a bare version id (created at `/predictions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from urllib.parse import urlsplit

from .base import (
    Http,
    ImageSpec,
    ModelError,
    Progress,
    RenderedImage,
    ServerFailure,
    ServerTarget,
    bearer,
    decode_base64_image,
    decode_image,
    kept_outputs,
    raise_for_status,
    require,
)

_TERMINAL = ("succeeded", "failed", "canceled")
# Replicate holds a request open at most 60 s; polling takes over after that.
_MAX_WAIT_SECONDS = 60


class ReplicateProvider:
    def __init__(self, http: Http, poll_seconds: float = 0.5):
        self.http = http
        self.poll_seconds = poll_seconds

    @staticmethod
    def _headers(server: ServerTarget) -> dict[str, str]:
        return bearer(server.api_key)

    async def generate(
        self, server: ServerTarget, spec: ImageSpec, n: int, timeout: float, progress: Progress
    ) -> list[RenderedImage]:
        require_model(server)
        started = time.monotonic()
        describe = f"Replicate at {server.url}"
        inputs = _inputs(spec, n)
        model = server.upstream_model
        if spec.version:
            # The catalog let it through: it is the model's configured version.
            url, body = f"{server.url}/predictions", {"version": spec.version, "input": inputs}
        elif "/" in model and ":" not in model:
            url, body = f"{server.url}/models/{model}/predictions", {"input": inputs}
        else:
            url, body = f"{server.url}/predictions", {"version": model.rpartition(":")[2], "input": inputs}
        wait = max(1, min(_MAX_WAIT_SECONDS, int(timeout)))
        status, prediction, raw = await self.http.request(
            "POST",
            url,
            headers={**self._headers(server), "Prefer": f"wait={wait}"},
            json_body=body,
            server=server,
            timeout=timeout,
            describe=describe,
        )
        raise_for_status(status, prediction, raw, describe)
        require(isinstance(prediction, dict) and "status" in prediction, describe, "no prediction")
        try:
            while prediction["status"] not in _TERMINAL:
                remaining = timeout - (time.monotonic() - started)
                if remaining <= 0:
                    raise ServerFailure(f"{describe}: prediction not finished within {timeout:.1f} s")
                await asyncio.sleep(min(self.poll_seconds, remaining))
                prediction = await self._get(server, prediction, remaining, describe)
                _report_logs(prediction.get("logs"), progress)
        except BaseException:
            # Cancelled by our caller, timed out, or the server broke mid-way: stop paying for it.
            await asyncio.shield(self._cancel(server, prediction))
            raise
        if prediction["status"] == "failed":
            raise ModelError(str(prediction.get("error") or "the prediction failed"))
        if prediction["status"] == "canceled":
            raise ModelError("the prediction was canceled on Replicate")
        output = prediction.get("output")
        outputs = [output] if isinstance(output, str) else output
        require(isinstance(outputs, list) and bool(outputs), describe, "a finished prediction without output")
        remaining = timeout - (time.monotonic() - started)
        return list(
            await asyncio.gather(
                *(self._file(server, item, remaining, describe) for item in kept_outputs(outputs, n, spec))
            )
        )

    async def _get(self, server: ServerTarget, prediction: dict, timeout: float, describe: str) -> dict:
        status, parsed, raw = await self.http.request(
            "GET",
            prediction["urls"]["get"],
            headers=self._headers(server),
            server=server,
            timeout=timeout,
            describe=describe,
        )
        raise_for_status(status, parsed, raw, describe)
        require(isinstance(parsed, dict) and "status" in parsed, describe, "no prediction")
        return parsed

    async def _cancel(self, server: ServerTarget, prediction: dict) -> None:
        cancel_url = (prediction.get("urls") or {}).get("cancel")
        if not cancel_url or prediction.get("status") in _TERMINAL:
            return
        with contextlib.suppress(ServerFailure, ModelError):
            await self.http.request(
                "POST",
                cancel_url,
                headers=self._headers(server),
                server=server,
                timeout=10,
                describe="Replicate cancel",
            )

    async def _file(self, server: ServerTarget, item: str, timeout: float, describe: str) -> RenderedImage:
        if item.startswith("data:"):
            return decode_base64_image(item)
        # Files on the API's own host need the token; CDN links must not receive it.
        same_host = urlsplit(item).netloc == urlsplit(server.url).netloc
        status, parsed, raw = await self.http.request(
            "GET",
            item,
            headers=self._headers(server) if same_host else None,
            server=server,
            timeout=max(timeout, 1.0),
            describe=f"{describe}, fetching its output",
        )
        raise_for_status(status, parsed, raw, describe)
        return decode_image(raw)

    async def probe(self, server: ServerTarget, timeout: float) -> None:
        describe = f"Replicate account at {server.url}"
        status, parsed, raw = await self.http.request(
            "GET",
            f"{server.url}/account",
            headers=self._headers(server),
            server=server,
            timeout=timeout,
            describe=describe,
        )
        raise_for_status(status, parsed, raw, describe)


def _inputs(spec: ImageSpec, n: int) -> dict:
    """The prediction's `input`: the app's own, images as signed URLs of their stored copies (the model
    server fetches them), or one built from the common fields."""
    if spec.native is not None:
        inputs = spec.native_with(lambda image: image.url)
        if n > 1 and "num_outputs" not in inputs:
            inputs["num_outputs"] = n
    else:
        inputs = {"prompt": spec.prompt, "num_outputs": n}
        if spec.width and spec.height:
            inputs |= {"width": spec.width, "height": spec.height}
        if spec.seed is not None:
            inputs["seed"] = spec.seed
        if spec.negative_prompt:
            inputs["negative_prompt"] = spec.negative_prompt
    for role in ("image", "mask"):
        given = spec.images(role)
        if given and role not in inputs:
            inputs[role] = given[0].url
    return inputs


def require_model(server: ServerTarget) -> None:
    if not server.upstream_model:
        raise ModelError("a replicate model needs upstreamModel: `owner/name` or `owner/name:version`")


# A tqdm bar in a prediction's logs, as Cog models print their sampling: " 45%|████▌ | 23/50 [...]".
_TQDM = re.compile(r"(\d+)%\|[^|\n]*\|\s*(\d+)/(\d+)")


def _report_logs(logs, progress: Progress) -> None:
    """Progress from the last progress bar in the logs, which is all Replicate tells of a running job."""
    if not isinstance(logs, str):
        return
    bars = _TQDM.findall(logs[-4096:])
    if bars:
        _, step, steps = (int(part) for part in bars[-1])
        if steps > 0:
            progress.report(step / steps, step, steps)
