"""OpenAI's `POST /v1/images/generations` and `/v1/images/edits`, so the `openai` packages work against
imagegen unchanged.

Request and answer travel as raw JSON (HttpBody): errors must reach the client in OpenAI's shape
(`{"error": {"message", "type", "param", "code"}}`) with OpenAI's statuses, which a gRPC error through the
transcoder cannot carry.
"""

from __future__ import annotations

import base64
import json
import re
import time
from email import policy
from email.parser import BytesParser

from google.api import httpbody_pb2
from imagegen.generator.v1 import generator_pb2_grpc

from services.common.auth import bearer_key
from services.common.errors import HTTP_STATUS, HTTP_STATUS_KEY, RETRY_AFTER_KEY, DomainError

from ..clients import CatalogClient, StorageClient
from ..config import GeneratorConfig
from ..domain import Generator, check_idempotency_key, validate
from ..inputs import Source
from ..requests import CreateRequest
from .common import make_images

RESPONSE_FORMATS = ("url", "b64_json")
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
_FIELDS = {"model": str, "prompt": str, "n": int, "size": str, "response_format": str, "user": str}
# OpenAI's model-specific fields: passed to the model's server as its own request (an OpenAI server
# reads them; the others ignore them).
_NATIVE = {
    "quality": str,
    "style": str,
    "background": str,
    "moderation": str,
    "output_compression": int,
    "output_format": str,
    "input_fidelity": str,
}
_JSON_TYPES = {str: "a string", int: "an integer"}
# Files an edit may carry, by form field: the images edited and the mask.
_IMAGE_FIELDS = ("image", "image[]")

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
    status = HTTP_STATUS.get(exc.code, 500)
    kind = "rate_limit_error" if status == 429 else ""
    error = OpenAIError(status, exc.message, param=exc.field, kind=kind, code=_CODES.get(status))
    error.headers = [(k, v) for k, v in exc.trailing_metadata() if k == RETRY_AFTER_KEY]
    return error


def parse_request(data: bytes) -> dict:
    try:
        body = json.loads(data or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OpenAIError(400, f"We could not parse the JSON body of your request: {exc}") from None
    except RecursionError:
        raise OpenAIError(
            400, "We could not parse the JSON body of your request: it nests too deeply."
        ) from None
    if not isinstance(body, dict):
        raise OpenAIError(400, "The request body must be a JSON object.")
    return check_fields(body)


def check_fields(body: dict) -> dict:
    """The request's fields, typed as OpenAI types them; refused with OpenAI's words otherwise."""
    for name, value in body.items():
        expected = _FIELDS.get(name) or _NATIVE.get(name)
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


def parse_edit(data: bytes, content_type: str) -> tuple[dict, list[tuple[str, str, bytes]]]:
    """An `images.edit` form: its text fields (typed as the JSON API's) and its files as (field,
    content type, bytes), in the order sent."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise OpenAIError(400, "An edit is sent as multipart/form-data, with the image as a file.")
    form = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + data
    )
    if not form.is_multipart():
        raise OpenAIError(400, "We could not parse the multipart body of your request.")
    fields: dict = {}
    files: list[tuple[str, str, bytes]] = []
    for part in form.iter_parts():
        name = part.get_param("name", header="content-disposition") or ""
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None or name in (*_IMAGE_FIELDS, "mask"):
            if name not in (*_IMAGE_FIELDS, "mask"):
                raise OpenAIError(400, f"Unrecognized file parameter: {name}", param=name)
            files.append((name, part.get_content_type(), payload))
            continue
        text = payload.decode("utf-8", "replace")
        expected = _FIELDS.get(name) or _NATIVE.get(name)
        if expected is int:
            if not text.strip().lstrip("-").isdigit():
                raise OpenAIError(
                    400, f"Invalid type for '{name}': expected an integer, but got {text[:20]!r}.", param=name
                )
            fields[name] = int(text)
        else:
            fields[name] = text
    if not any(name in _IMAGE_FIELDS for name, _, _ in files):
        raise OpenAIError(400, "Missing required parameter: 'image'.", param="image")
    return fields, files


class OpenAIImagesServicer(generator_pb2_grpc.OpenAIImagesServiceServicer):
    def __init__(
        self, generator: Generator, catalog: CatalogClient, storage: StorageClient, config: GeneratorConfig
    ):
        self.generator = generator
        self.catalog = catalog
        self.storage = storage
        self.config = config

    async def CreateImage(self, request, context):
        return await self._answer(context, lambda: self._create(request, context))

    async def EditImage(self, request, context):
        return await self._answer(context, lambda: self._edit(request, context))

    async def _answer(self, context, make) -> httpbody_pb2.HttpBody:
        try:
            answer = await make()
        except DomainError as exc:
            error = from_domain(exc)
        except OpenAIError as exc:
            error = exc
        else:
            return httpbody_pb2.HttpBody(content_type="application/json", data=json.dumps(answer).encode())
        await context.send_initial_metadata([(HTTP_STATUS_KEY, str(error.status)), *error.headers])
        return httpbody_pb2.HttpBody(content_type="application/json", data=error.body())

    async def _create(self, request, context) -> dict:
        body = parse_request(request.data)
        created = self._request(body, [], request.data)
        return await self._made(created, body, context)

    async def _edit(self, request, context) -> dict:
        fields, files = parse_edit(request.data, request.content_type)
        body = check_fields(fields)
        recorded = {**fields, **{name: "(file)" for name, _, _ in files}}
        created = self._request(body, files, json.dumps(recorded).encode())
        return await self._made(created, body, context)

    def _request(self, body: dict, files: list[tuple[str, str, bytes]], recorded: bytes) -> CreateRequest:
        """The generation a request asks for: OpenAI's own fields go to the model as its request, and an
        edit's files are its input images (the image's size is the server's default for an edit)."""
        width, height = parse_size(body.get("size"))
        spec = validate(
            prompt=body["prompt"],
            negative_prompt="",
            model=body.get("model") or "",
            user=body.get("user") or "",
            n=body.get("n") or 1,
            width=width,
            height=height,
            seed=None,
            default_model=self.config.default_model,
            server_decides_size=bool(files),
        )
        native = {name: value for name, value in body.items() if name in _NATIVE}
        if native:
            spec.input = json.dumps(native)
        images = [
            Source("", "mask" if name == "mask" else "image", _data_uri(content_type, data))
            for name, content_type, data in sorted(files, key=lambda file: file[0] == "mask")
        ]
        return CreateRequest(spec, wait=True, native=native or None, images=images, request_body=recorded)

    async def _made(self, created: CreateRequest, body: dict, context) -> dict:
        metadata = context.invocation_metadata()
        idempotency_key = ""
        for key, value in metadata:
            if key == "idempotency-key":
                idempotency_key = check_idempotency_key(str(value))
        generated, made = await make_images(
            self.generator,
            self.storage,
            bearer_key(metadata),
            created,
            idempotency_key,
            context.time_remaining(),
            self.config.public_url,
            with_data=body["response_format"] == "b64_json",
        )
        if body["response_format"] == "b64_json":
            data = [
                {"b64_json": base64.b64encode(image.data).decode(), "revised_prompt": None} for image in made
            ]
        else:
            data = [{"url": image.url, "revised_prompt": None} for image in made]
        created_at = generated.record.created_at.seconds or int(time.time())
        return {"created": created_at, "data": data}


def _data_uri(content_type: str, data: bytes) -> str:
    return f"data:{content_type or 'application/octet-stream'};base64," + base64.b64encode(data).decode()
