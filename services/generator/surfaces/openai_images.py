"""OpenAI's `POST /v1/images/generations`, so the `openai` packages work against imagegen unchanged.

Request and answer travel as raw JSON (HttpBody): errors must reach the client in OpenAI's shape
(`{"error": {"message", "type", "param", "code"}}`) with OpenAI's statuses, which a gRPC error through the
transcoder cannot carry.
"""

from __future__ import annotations

import base64
import json
import re
import time

import grpc
from google.api import httpbody_pb2
from imagegen.generator.v1 import generator_pb2_grpc

from services.common.auth import bearer_key
from services.common.errors import HTTP_STATUS_KEY, RETRY_AFTER_KEY, DomainError

from ..clients import CatalogClient, StorageClient
from ..config import GeneratorConfig
from ..domain import Generator, check_idempotency_key, validate
from .common import make_images

RESPONSE_FORMATS = ("url", "b64_json")
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
_FIELDS = {"model": str, "prompt": str, "n": int, "size": str, "response_format": str, "user": str}
# Accepted and ignored: they tune models imagegen does not run, and refusing them would break clients
# that always send them.
_IGNORED = {"quality", "style", "background", "moderation", "output_compression", "output_format"}
_JSON_TYPES = {str: "a string", int: "an integer"}

# gRPC code -> (HTTP status, OpenAI error type).
_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.FAILED_PRECONDITION: (400, "invalid_request_error"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "invalid_request_error"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "invalid_request_error"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "invalid_request_error"),
    grpc.StatusCode.NOT_FOUND: (404, "invalid_request_error"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "invalid_request_error"),
    grpc.StatusCode.ABORTED: (409, "invalid_request_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "server_error"),
    grpc.StatusCode.UNAVAILABLE: (503, "server_error"),
}
_CODES = {401: "invalid_api_key", 404: "model_not_found"}


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, kind: str = "", code=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")
        self.code = code
        self.headers: list[tuple[str, str]] = []

    def body(self) -> bytes:
        error = {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}
        return json.dumps({"error": error}).encode()


def from_domain(exc: DomainError) -> OpenAIError:
    status, kind = _ERRORS.get(exc.code, (500, "server_error"))
    error = OpenAIError(status, exc.message, param=exc.field, kind=kind, code=_CODES.get(status))
    error.headers = [(k, v) for k, v in exc.trailing_metadata() if k == RETRY_AFTER_KEY]
    return error


def parse_request(data: bytes) -> dict:
    try:
        body = json.loads(data or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OpenAIError(400, f"We could not parse the JSON body of your request: {exc}") from None
    if not isinstance(body, dict):
        raise OpenAIError(400, "The request body must be a JSON object.")
    for name, value in body.items():
        if name in _IGNORED:
            continue
        expected = _FIELDS.get(name)
        if expected is None:
            raise OpenAIError(400, f"Unrecognized request argument supplied: {name}", param=name)
        if value is not None and (type(value) is not expected):
            raise OpenAIError(
                400,
                f"Invalid type for '{name}': expected {_JSON_TYPES[expected]}, but got"
                f" {type(value).__name__} instead.",
                param=name,
            )
    if not body.get("prompt"):
        raise OpenAIError(400, "Missing required parameter: 'prompt'.", param="prompt")
    response_format = body.get("response_format") or "url"
    if response_format not in RESPONSE_FORMATS:
        raise OpenAIError(
            400,
            f"Invalid value: '{response_format}'. Supported values are: 'url' and 'b64_json'.",
            param="response_format",
        )
    return {**body, "response_format": response_format}


def parse_size(size: str | None) -> tuple[int, int]:
    """`WIDTHxHEIGHT`, or (0, 0) for the model's default (`auto` or none)."""
    if size in (None, "", "auto"):
        return 0, 0
    matched = _SIZE.match(size)
    if matched is None:
        raise OpenAIError(
            400,
            f"Invalid value: '{size}'. size must be 'auto' or WIDTHxHEIGHT, e.g. '1024x1024'.",
            param="size",
        )
    return int(matched.group(1)), int(matched.group(2))


class OpenAIImagesServicer(generator_pb2_grpc.OpenAIImagesServiceServicer):
    def __init__(
        self, generator: Generator, catalog: CatalogClient, storage: StorageClient, config: GeneratorConfig
    ):
        self.generator = generator
        self.catalog = catalog
        self.storage = storage
        self.config = config

    async def CreateImage(self, request, context):
        try:
            answer = await self._create(request, context)
        except DomainError as exc:
            error = from_domain(exc)
        except OpenAIError as exc:
            error = exc
        else:
            return httpbody_pb2.HttpBody(content_type="application/json", data=json.dumps(answer).encode())
        await context.send_initial_metadata([(HTTP_STATUS_KEY, str(error.status)), *error.headers])
        return httpbody_pb2.HttpBody(content_type="application/json", data=error.body())

    async def _create(self, request, context) -> dict:
        metadata = context.invocation_metadata()
        api_key = bearer_key(metadata)
        body = parse_request(request.data)
        width, height = parse_size(body.get("size"))
        user = body.get("user") or ""
        spec = validate(
            prompt=body["prompt"],
            negative_prompt="",
            model=body.get("model") or "",
            user=user,
            n=body.get("n") or 1,
            width=width,
            height=height,
            seed=None,
            default_model=self.config.default_model,
        )
        idempotency_key = ""
        for key, value in metadata:
            if key == "idempotency-key":
                idempotency_key = check_idempotency_key(str(value))
        generated, made = await make_images(
            self.generator,
            self.storage,
            api_key,
            spec,
            idempotency_key,
            context.time_remaining(),
            self.config.public_url,
        )
        if body["response_format"] == "b64_json":
            data = [
                {"b64_json": base64.b64encode(image.data).decode(), "revised_prompt": None} for image in made
            ]
        else:
            data = [{"url": image.url, "revised_prompt": None} for image in made]
        created = generated.record.created_at.seconds or int(time.time())
        return {"created": created, "data": data}
