"""ComfyUI's API-format workflows (node id -> {"class_type", "inputs"}): their shape, where a model puts
imagegen's fields in one, and what an app's own workflow may hold. The catalog checks a model's
workflow when it is registered and an app's at enqueue; the generator's comfyui provider fills one in.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidArgument

# The generation's fields a model may place in its workflow, in ComfyWorkflow's field names.
FIELDS = ("prompt", "negative_prompt", "seed", "width", "height", "n")
# Nodes that read a file from the server's input folder, by class: an app's workflow may only name
# files imagegen uploaded for the job.
IMAGE_NODES = {"LoadImage": "image", "LoadImageMask": "image"}
MAX_NODES = 1000
MAX_NODE_CLASSES = 200
_REFERENCE = re.compile(r"^imagegen:input/\d+$")


def is_workflow(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and bool(document)
        and all(
            isinstance(node, dict)
            and isinstance(node.get("class_type"), str)
            and isinstance(node.get("inputs"), dict)
            for node in document.values()
        )
    )


def positive_prompt(workflow: dict) -> str:
    """The text a workflow samples towards: the text node a sampler's `positive` links to, else the first
    text node's. Empty when there is none."""
    texts = {
        node_id: node["inputs"]["text"]
        for node_id, node in workflow.items()
        if isinstance(node["inputs"].get("text"), str)
    }
    for node in workflow.values():
        link = node["inputs"].get("positive")
        if isinstance(link, list) and link and link[0] in texts:
            return texts[link[0]]
    return next(iter(texts.values()), "")


def whole_numbers(document: Any) -> Any:
    """A JSON document read through protobuf's Struct, whose numbers are all floats, with the whole
    ones made integers again (ComfyUI's INT inputs want 20, not 20.0)."""
    if isinstance(document, dict):
        return {key: whole_numbers(value) for key, value in document.items()}
    if isinstance(document, list):
        return [whole_numbers(value) for value in document]
    if isinstance(document, float) and document.is_integer() and abs(document) < 2**63:
        return int(document)
    return document


def check_model(config: dict) -> dict:
    """A model's ComfyWorkflow (proto field names, as stored), checked: every place names a node of the
    workflow and one of its inputs, images go to image nodes."""
    workflow = config.get("workflow")
    if not is_workflow(workflow):
        raise InvalidArgument(
            "comfyui.workflow must be an API-format workflow (ComfyUI's Export (API)): an object of"
            ' node id -> {"class_type", "inputs"}',
            field="comfyui.workflow",
        )
    if len(workflow) > MAX_NODES:
        raise InvalidArgument(f"comfyui.workflow has more than {MAX_NODES} nodes", field="comfyui.workflow")
    places = [(name, config[name]) for name in FIELDS if config.get(name)]
    places += [(f"images[{i}]", place) for i, place in enumerate(config.get("images") or ())]
    if config.get("mask"):
        places.append(("mask", config["mask"]))
    for name, place in places:
        node = workflow.get(place.get("node", ""))
        if node is None or place.get("input", "") not in node["inputs"]:
            raise InvalidArgument(
                f"comfyui.{name} names node {place.get('node')!r} input {place.get('input')!r}, which the"
                " workflow does not have",
                field=f"comfyui.{name}",
            )
        if (name.startswith("images") or name == "mask") and node["class_type"] not in IMAGE_NODES:
            raise InvalidArgument(
                f"comfyui.{name} must be the image of a {' or '.join(IMAGE_NODES)} node;"
                f" node {place['node']!r} is a {node['class_type']}",
                field=f"comfyui.{name}",
            )
    classes = config.get("allowed_node_classes") or []
    if len(classes) > MAX_NODE_CLASSES or any(not 0 < len(c) <= 128 for c in classes):
        raise InvalidArgument(
            f"comfyui.allowedNodeClasses takes at most {MAX_NODE_CLASSES} names of 1..128 characters",
            field="comfyui.allowed_node_classes",
        )
    return config


def refusal(config: dict, model_name: str, native: Any, images_given: int = 0) -> tuple[str, str] | None:
    """(field, why) when a request's `input`, or its input images outside it, may not run on this
    ComfyUI model; None when they may."""
    places = len(config.get("images") or ())
    if images_given > places:
        return "input_images", (
            f"model {model_name!r} loads {places} input image(s) (its comfyui.images); the request gave"
            f" {images_given}"
        )
    if native is None:
        return None
    if not config.get("allow_app_workflows"):
        return "input", (
            f"model {model_name!r} runs its own ComfyUI workflow and takes no `input`; give prompt, seed,"
            " size and images as the request's own fields"
        )
    if not is_workflow(native):
        return "input", (
            f"input for ComfyUI model {model_name!r} must be an API-format workflow: an object of"
            ' node id -> {"class_type", "inputs"}'
        )
    if len(native) > MAX_NODES:
        return "input", f"the workflow has more than {MAX_NODES} nodes"
    allowed = set(config.get("allowed_node_classes") or ()) or {
        node["class_type"] for node in config["workflow"].values()
    }
    for node_id, node in native.items():
        if node["class_type"] not in allowed:
            return f"input.{node_id}", (
                f"node {node_id} is a {node['class_type']!r}, which model {model_name!r} does not allow;"
                f" it allows {', '.join(sorted(allowed))}"
            )
        image_input = IMAGE_NODES.get(node["class_type"])
        if image_input is not None:
            named = node["inputs"].get(image_input)
            if not (isinstance(named, str) and _REFERENCE.match(named)):
                return f"input.{node_id}.inputs.{image_input}", (
                    f"node {node_id} ({node['class_type']}) must load an image of this request (a URL, a"
                    " data URI or an upload id), not a file already on the server"
                )
    return None
