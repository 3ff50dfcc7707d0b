"""A create request as the app wrote it: JSON from REST, or the typed message from gRPC, read into one
shape: the generation's spec, the model server's own `input`, and where its image inputs are.

The common fields (prompt, negative prompt, size, seed, count) may sit at the top level or inside the
model-native `input` (RoomFix sends `input.prompt`). Limits, listing and provenance read them from the
spec; the model server reads `input`, so a common field given only at the top level is written into it.
A field given both ways with different values is refused rather than guessed at.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from imagegen.catalog.v1 import catalog_pb2
from imagegen.generator.v1 import generator_pb2

from services.common.comfy_workflow import is_workflow, positive_prompt
from services.common.errors import InvalidArgument
from services.common.ids import is_id
from services.common.vocabulary import COMMON_NATIVE_FIELDS, INPUT_REFERENCE, NATIVE_COUNT_FIELDS

from .domain import validate
from .inputs import Source, is_url

_REQUEST = generator_pb2.CreateGenerationRequest.DESCRIPTOR
# Top-level JSON names (camelCase as proto JSON prints them, and the proto's own snake_case) -> field.
_TOP_LEVEL = {f.json_name: f for f in _REQUEST.fields} | {f.name: f for f in _REQUEST.fields}
# Keys whose string values may be images: any `_`-separated part of the key is one of these.
_IMAGE_WORDS = {"image", "images", "img", "mask", "masks"}
_MASK_WORDS = {"mask", "masks"}
_MIN_BASE64_CHARS = 64
_BASE64 = re.compile(r"^[A-Za-z0-9+/\s]+={0,2}$")
_TRUE = ("true", "1", "yes")
# Model servers' requests nest a handful of levels (ControlNet's args: four); this leaves room.
MAX_JSON_DEPTH = 32


@dataclass
class CreateRequest:
    spec: catalog_pb2.GenerationSpec
    wait: bool
    # The model-native request, images replaced by references; None when the request has none.
    native: dict | None = None
    images: list[Source] = field(default_factory=list)
    # The body as sent, with inline images replaced by their references.
    request_body: bytes = b""


def from_json_body(
    body: bytes, content_type: str, metadata: Mapping[str, str], default_model: str
) -> CreateRequest:
    """A REST create: the body is a JSON CreateGenerationRequest with `input` as an object."""
    if content_type and "json" not in content_type.split(";")[0].lower():
        raise InvalidArgument(
            f"send the request as application/json; got {content_type.split(';')[0]!r}", field="body"
        )
    document = read_json(body or b"{}", "body")
    if not isinstance(document, dict):
        raise InvalidArgument("the body must be a JSON object", field="body")
    fields: dict[str, Any] = {}
    for name, value in document.items():
        descriptor = _TOP_LEVEL.get(name)
        if descriptor is None:
            raise InvalidArgument(
                f"unknown field {name!r}: model-specific fields go inside `input`", field=name
            )
        if descriptor.name in fields:
            raise InvalidArgument(f"{descriptor.json_name} is given twice", field=descriptor.name)
        fields[descriptor.name] = value
    native = fields.pop("input", None)
    if native is not None and not isinstance(native, dict):
        raise InvalidArgument("input must be a JSON object: the model server's own request", field="input")
    try:
        typed = json_format.ParseDict(fields, generator_pb2.CreateGenerationRequest())
    except json_format.ParseError as exc:
        raise InvalidArgument(f"the body does not match the API: {exc}", field="body") from None
    request = _build(typed, set(fields), native, metadata, default_model)
    request.request_body = _recorded_body(body, document, request)
    return request


def from_typed(
    request: generator_pb2.CreateGenerationRequest, metadata: Mapping[str, str], default_model: str
) -> CreateRequest:
    """A gRPC create: `input` is JSON text."""
    native = None
    if request.input:
        native = read_json(request.input, "input")
        if not isinstance(native, dict):
            raise InvalidArgument("input must be a JSON object", field="input")
    given = {f.name for f, _ in request.ListFields()} - {"input"}
    built = _build(request, given, native, metadata, default_model)
    built.request_body = json_format.MessageToJson(request, indent=None).encode()
    return built


def _build(
    typed: generator_pb2.CreateGenerationRequest,
    given: set[str],
    native: dict | None,
    metadata: Mapping[str, str],
    default_model: str,
) -> CreateRequest:
    common = {name: getattr(typed, name) for name in COMMON_NATIVE_FIELDS if name in given}
    # A ComfyUI workflow's top level is its nodes: the common fields are the request's own, and the
    # model's field places put them into the workflow.
    fielded = native if native is not None and not is_workflow(native) else None
    if fielded is not None:
        common = _merge_common(common, fielded)
    elif native is not None and "prompt" not in common:
        # What limits, listing and provenance call the prompt of a workflow.
        common["prompt"] = positive_prompt(native)
    n = _count(typed.n if "n" in given else None, fielded)
    model = model_named(typed.model, typed.cluster, metadata)
    images = _top_level_images(typed)
    # With a model-native request or input images, a size left out is the model server's to choose.
    spec = validate(
        prompt=common.get("prompt", ""),
        negative_prompt=common.get("negative_prompt", ""),
        model=model,
        user=typed.user or metadata.get("x-user", ""),
        n=n,
        width=common.get("width", 0),
        height=common.get("height", 0),
        seed=common.get("seed"),
        default_model=default_model,
        priority=typed.priority or metadata.get("x-priority", ""),
        callback_url=typed.callback_url,
        server_decides_size=native is not None or bool(images),
        webhook_events_filter=typed.webhook_events_filter,
    )
    spec.version = typed.version
    if native is not None:
        images += _native_images(native, len(images))
        spec.input = json.dumps(native, ensure_ascii=False, separators=(",", ":"))
    wait = not (getattr(typed, "async") or metadata.get("x-async", "").strip().lower() in _TRUE)
    return CreateRequest(spec=spec, wait=wait, native=native, images=images)


def model_named(model: str, cluster: str, metadata: Mapping[str, str]) -> str:
    """The model a request names: `model`, or `cluster` (Meteron's older name), or their headers."""
    if model and cluster and model != cluster:
        raise InvalidArgument("model and cluster name different models; give one", field="cluster")
    return model or cluster or metadata.get("x-model", "") or metadata.get("x-cluster", "")


def _merge_common(top: dict[str, Any], native: dict) -> dict[str, Any]:
    """The common fields from both places; a field only at the top level is written into `native`."""
    merged = dict(top)
    for name in COMMON_NATIVE_FIELDS:
        if name not in native:
            if name in top:
                native[name] = top[name]
            continue
        value = native[name]
        if name in ("prompt", "negative_prompt") and not isinstance(value, str):
            raise InvalidArgument(f"input.{name} must be a string", field=f"input.{name}")
        if name in ("width", "height", "seed") and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidArgument(f"input.{name} must be an integer", field=f"input.{name}")
        if name in top and top[name] != value:
            raise InvalidArgument(
                f"{name} is given twice with different values, at the top level and as input.{name};"
                " give it once",
                field=name,
            )
        merged[name] = value
    if "width" not in merged and "height" not in merged and isinstance(native.get("size"), str):
        width, x, height = native["size"].partition("x")
        if x and width.isdigit() and height.isdigit():
            merged["width"], merged["height"] = int(width), int(height)
    if "seed" in merged and not 0 <= merged["seed"] < 2**32:
        raise InvalidArgument(f"seed must be between 0 and {2**32 - 1}", field="seed")
    return merged


def _count(n: int | None, native: dict | None) -> int:
    """Images asked: `n`, or the model server's own count field; both given must agree."""
    native_n, named = None, ""
    for names in NATIVE_COUNT_FIELDS if native is not None else ():
        if all(name in native for name in names):
            values = [native[name] for name in names]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise InvalidArgument(f"input.{names[0]} must be an integer", field=f"input.{names[0]}")
            native_n, named = math.prod(values), " × ".join(f"input.{name}" for name in names)
            break
    if n is not None and native_n is not None and n != native_n:
        raise InvalidArgument(
            f"n is {n} but {named} asks for {native_n} images; limits and credits count what is asked,"
            " so give one count",
            field="n",
        )
    return n if n is not None else (native_n or 0)


def _top_level_images(typed: generator_pb2.CreateGenerationRequest) -> list[Source]:
    images = [Source("", "image", source) for source in typed.input_images]
    if typed.mask:
        images.append(Source("", "mask", typed.mask))
    return images


def _native_images(native: dict, first_index: int) -> list[Source]:
    """Finds the images in `native` and replaces each by its reference, in document order."""
    found: list[Source] = []
    for container, key, pointer, role in _image_slots(native, "", False, None):
        found.append(Source(pointer, role, container[key]))
        container[key] = INPUT_REFERENCE.format(index=first_index + len(found) - 1)
    return found


def _image_slots(
    node: Any, pointer: str, control: bool, list_role: str | None
) -> Iterator[tuple[Any, Any, str, str]]:
    """(container, key, JSON pointer, role) of every image-like string under an image-named key (or in
    a list under one); under a `controlnet` or `control_*` key, images are control images."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        here = f"{pointer}/{_escape(str(key))}"
        if isinstance(key, str):
            words = set(key.lower().split("_"))
            in_control = control or "controlnet" in key.lower() or "control" in words
            role = None
            if words & _IMAGE_WORDS:
                role = "mask" if words & _MASK_WORDS else "control" if in_control else "image"
        else:
            in_control, role = control, list_role
        if isinstance(value, str):
            if role is not None and is_image_source(value):
                yield node, key, here, role
        elif isinstance(value, dict | list):
            yield from _image_slots(value, here, in_control, role if isinstance(value, list) else None)


def is_image_source(value: str) -> bool:
    """A URL, a data URI, an upload's id, or base64 long enough to be an image (AUTOMATIC1111's
    `init_images`)."""
    lowered = value[:8].lower()
    if lowered.startswith(("http://", "https://", "data:")) or is_id("upload", value):
        return True
    return len(value) >= _MIN_BASE64_CHARS and bool(_BASE64.match(value[:4096]))


def _recorded_body(body: bytes, document: dict, request: CreateRequest) -> bytes:
    """The body as sent; re-written only when it carries inline images (data URIs, base64), which the
    record keeps by reference (they are stored, and listed as `inputImages`)."""
    if all(is_url(image.text) or is_id("upload", image.text) for image in request.images):
        return body
    recorded = dict(document)
    if request.native is not None:
        recorded["input"] = request.native
    top_level = [i for i, image in enumerate(request.images) if not image.pointer]
    for key in ("inputImages", "input_images"):
        if key in recorded:
            recorded[key] = [
                INPUT_REFERENCE.format(index=i) for i in top_level if request.images[i].role != "mask"
            ]
    if "mask" in recorded:
        recorded["mask"] = INPUT_REFERENCE.format(
            index=len(recorded.get("inputImages", recorded.get("input_images", [])))
        )
    return json.dumps(recorded, ensure_ascii=False, separators=(",", ":")).encode()


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def read_json(text: str | bytes, what: str) -> Any:
    """JSON as an app sent it: no NaN or Infinity, numbers kept exact, nested at most MAX_JSON_DEPTH."""
    try:
        document = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"the {what} is not valid JSON: {exc}", field=what) from None
    except RecursionError:
        document = None
    if document is None or _depth(document) > MAX_JSON_DEPTH:
        raise InvalidArgument(f"the {what} nests deeper than {MAX_JSON_DEPTH} levels", field=what)
    return document


def _depth(document: Any) -> int:
    deepest, pending = 0, [(document, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:
                pending.extend(
                    (child, depth + 1) for child in (node.values() if isinstance(node, dict) else node)
                )
    return deepest


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:30]} is out of range")
    return value
