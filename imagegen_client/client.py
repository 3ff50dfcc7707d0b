"""The client itself: typed results over the REST API's JSON, retries, paging and watching."""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"
TERMINAL = ("completed", "failed", "cancelled")
# Answers worth another try: the platform (or a part of it) is away for a moment, or the key's rate is
# used up for now.
_RETRIED = (429, 502, 503, 504)


class ApiError(Exception):
    """The platform refused the request: its HTTP status, gRPC code and message."""

    def __init__(self, status: int, message: str, code: int = 0, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.retry_after = retry_after


class Unreachable(Exception):
    """No answer from the platform at all."""


@dataclass(frozen=True)
class Image:
    url: str
    width: int
    height: int
    content_type: str
    sha256: str
    permanent_url: str | None = None
    # Smaller WebP copies, narrowest first: (width, url).
    variants: tuple[tuple[int, str], ...] = ()

    @classmethod
    def from_json(cls, data: dict) -> Image:
        return cls(
            url=data["url"],
            width=data.get("width", 0),
            height=data.get("height", 0),
            content_type=data.get("contentType", ""),
            sha256=data.get("sha256", ""),
            permanent_url=data.get("permanentUrl"),
            variants=tuple((v["width"], v["url"]) for v in data.get("variants", ())),
        )


@dataclass(frozen=True)
class Generation:
    id: str
    status: str
    prompt: str
    model: str
    user: str
    reason: str
    images: tuple[Image, ...]
    queue_position: int | None = None
    progress: float | None = None
    step: int | None = None
    steps: int | None = None
    preview: str | None = None
    # The whole answer, for fields not named above.
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_json(cls, data: dict) -> Generation:
        return cls(
            id=data["id"],
            status=data.get("status", ""),
            prompt=data.get("prompt", ""),
            model=data.get("model", ""),
            user=data.get("user", ""),
            reason=data.get("reason", ""),
            images=tuple(Image.from_json(image) for image in data.get("outputImages", ())),
            queue_position=data.get("queuePosition"),
            progress=data.get("progress"),
            step=data.get("step"),
            steps=data.get("steps"),
            preview=data.get("preview"),
            raw=data,
        )


@dataclass(frozen=True)
class Upload:
    id: str
    url: str
    width: int
    height: int


class ImageGen:
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        max_retries: int = 5,
    ):
        self.base_url = (base_url or os.environ.get("IMAGEGEN_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("IMAGEGEN_API_KEY", "")
        self.timeout = timeout
        self.max_retries = max_retries

    # -- generations ---------------------------------------------------------------------------------

    def generate(
        self,
        prompt: str | None = None,
        *,
        model: str | None = None,
        n: int | None = None,
        width: int | None = None,
        height: int | None = None,
        seed: int | None = None,
        user: str | None = None,
        input: dict | None = None,
        input_images: list[str] | tuple[str, ...] = (),
        mask: str | None = None,
        wait: bool | int = True,
        priority: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Generation:
        """Creates a generation. `wait=True` answers it finished; `False` at once (`pending`); a number
        of seconds answers it as it stands after at most that long (`Prefer: wait=N`)."""
        body: dict[str, Any] = {
            "prompt": prompt,
            "model": model,
            "n": n,
            "width": width,
            "height": height,
            "seed": seed,
            "user": user,
            "input": input,
            "inputImages": list(input_images) or None,
            "mask": mask,
            "priority": priority,
            "callbackUrl": callback_url,
        }
        body = {name: value for name, value in body.items() if value is not None}
        headers = {"Idempotency-Key": idempotency_key or f"imagegen-client-{uuid.uuid4()}"}
        if wait is False:
            body["async"] = True
        elif wait is not True:
            headers["Prefer"] = f"wait={int(wait)}"
        return Generation.from_json(self._call("POST", "/api/images/generations", body, headers))

    def get(self, generation_id: str) -> Generation:
        return Generation.from_json(self._call("GET", f"/api/images/generations/{_segment(generation_id)}"))

    def list(
        self,
        *,
        user: str | None = None,
        model: str | None = None,
        status: str | None = None,
        page_size: int = 50,
        limit: int | None = None,
    ) -> Iterator[Generation]:
        """Newest first, page after page, until `limit` generations or the end."""
        token, given = "", 0
        while True:
            query = {
                "user": user,
                "model": model,
                "status": status,
                "pageSize": page_size,
                "pageToken": token,
            }
            page = self._call("GET", f"/api/images/generations?{_query(query)}")
            for generation in page["results"]:
                if limit is not None and given >= limit:
                    return
                given += 1
                yield Generation.from_json(generation)
            token = page["pagination"]["nextPageToken"]
            if not token:
                return

    def watch(self, generation_id: str, previews: bool = False) -> Iterator[Generation]:
        """The generation at each change (queue position, progress, status) until it finishes."""
        path = f"/api/images/generations/{_segment(generation_id)}:watch"
        if previews:
            path += "?previews=true"
        with self._open("GET", path, None, {}, stream=True) as answer:
            for line in answer:
                if line.startswith(b"data: "):
                    yield Generation.from_json(json.loads(line[6:]))

    def cancel(self, generation_id: str) -> Generation:
        path = f"/api/images/generations/{_segment(generation_id)}:cancel"
        return Generation.from_json(self._call("POST", path, {}))

    def delete(self, generation_id: str) -> None:
        self._call("DELETE", f"/api/images/generations/{_segment(generation_id)}")

    def upload(self, data: bytes) -> Upload:
        """Stores an input image; name its id wherever an image goes in a create."""
        answer = self._call("POST", "/api/uploads", data, {"Content-Type": "application/octet-stream"})
        return Upload(answer["id"], answer["url"], answer.get("width", 0), answer.get("height", 0))

    def download(self, url: str) -> bytes:
        with self._open("GET", url, None, {}, stream=True, authorized=False) as answer:
            return answer.read()

    def verify(self, data: bytes) -> dict:
        """The C2PA verdict on an image's bytes."""
        return self._call(
            "POST", "/api/provenance:verify", data, {"Content-Type": "application/octet-stream"}
        )

    # -- models, keys, usage -------------------------------------------------------------------------

    def models(self) -> list[dict]:
        return self._call("GET", "/api/models")["models"]

    def add_model(self, name: str, provider: str, servers: list[dict], **fields: Any) -> dict:
        return self._call(
            "POST", "/api/models", {"name": name, "provider": provider, "servers": servers, **fields}
        )

    def remove_model(self, name: str) -> None:
        self._call("DELETE", f"/api/models/{_segment(name)}")

    def keys(self, project_id: str) -> list[dict]:
        return self._call("GET", f"/api/projects/{_segment(project_id)}/keys")["keys"]

    def create_key(self, project_id: str, name: str, kind: str = "secret", user: str | None = None) -> dict:
        body = {"name": name, "kind": kind, **({"user": user} if user else {})}
        return self._call("POST", f"/api/projects/{_segment(project_id)}/keys", body)

    def revoke_key(self, key_id: str) -> dict:
        return self._call("DELETE", f"/api/keys/{_segment(key_id)}")

    def usage(self, *, user: str | None = None, model: str | None = None) -> dict:
        return self._call("GET", f"/api/usage?{_query({'user': user, 'model': model})}")

    def caller(self) -> dict:
        return self._call("GET", "/api/caller")

    # -- the wire ------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        with self._open(method, path, body, headers or {}) as answer:
            raw = answer.read()
        return json.loads(raw) if raw else {}

    def _open(
        self,
        method: str,
        path: str,
        body: Any,
        headers: dict[str, str],
        stream: bool = False,
        authorized: bool = True,
    ):
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"
        data = None
        headers = dict(headers)
        if isinstance(body, bytes):
            data = body
        elif body is not None:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        if authorized and self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.max_retries + 1):
            request = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                return urllib.request.urlopen(request, timeout=None if stream else self.timeout)
            except urllib.error.HTTPError as error:
                failure = _api_error(error)
                if error.code not in _RETRIED or attempt == self.max_retries:
                    raise failure from None
                time.sleep(_backoff(attempt, failure.retry_after))
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                if attempt == self.max_retries:
                    reason = getattr(error, "reason", error)
                    raise Unreachable(f"no answer from {self.base_url}: {reason}") from None
                time.sleep(_backoff(attempt, None))
        raise AssertionError("unreachable")


def _api_error(error: urllib.error.HTTPError) -> ApiError:
    try:
        parsed = json.loads(error.read() or b"{}")
    except ValueError:
        parsed = {}
    retry_after = error.headers.get("Retry-After")
    message = parsed.get("message") if isinstance(parsed, dict) else None
    return ApiError(
        error.code,
        message or f"HTTP {error.code}",
        parsed.get("code", 0) if isinstance(parsed, dict) else 0,
        float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None,
    )


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, 60.0)
    return min(0.25 * 2**attempt, 8.0) * (0.5 + random.random() / 2)


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _query(values: dict[str, Any]) -> str:
    return urllib.parse.urlencode({name: value for name, value in values.items() if value not in (None, "")})
