"""What a model lets through of a request's model-native `input`.

A model is shared by every user of a project, and its server by every model pointing at it: fields that
change the server itself (its loaded checkpoint, its scripts, where it saves files) or that reach past
the one job are the model owner's decision, not a request's. Each provider has a denied list here, the
default of a model that sets no policy of its own; a request naming a refused field answers 400 with
the field's name, and nothing is queued.
"""

from __future__ import annotations

import json

from imagegen.catalog.v1 import catalog_pb2

from services.common import comfy_workflow
from services.common.errors import InvalidArgument
from services.common.vocabulary import COMMON_NATIVE_FIELDS, NATIVE_COUNT_FIELDS

MAX_POLICY_NAMES = 100
# Top-level names in `input`, per provider: the defaults of a model with no policy of its own.
DENIED_NATIVE_FIELDS: dict[str, frozenset[str]] = {
    # override_settings swaps the server's checkpoint for every later job; scripts run arbitrary code
    # paths; save_images writes to the server's disk.
    "automatic1111": frozenset(
        {
            "override_settings",
            "override_settings_restore_afterwards",
            "script_name",
            "script_args",
            "save_images",
            "send_images",
            "do_not_save_samples",
            "do_not_save_grid",
            "outpath_samples",
            "outpath_grids",
            "force_task_id",
            "infotext",
        }
    ),
    # imagegen answers the caller itself; a webhook in the input would tell a third party.
    "replicate": frozenset({"webhook", "webhook_events_filter"}),
    # The model is the imagegen model's; the answer's format is imagegen's to read.
    "openai": frozenset({"model", "response_format", "user", "stream"}),
    "procedural": frozenset(),
    # A ComfyUI request is a whole workflow, checked node by node (services/common/comfy_workflow.py).
    "comfyui": frozenset(),
}


def configured_version(upstream_model: str) -> str:
    """The version an `owner/name:version` or bare-version upstream model names; empty for `owner/name`."""
    if ":" in upstream_model:
        return upstream_model.rpartition(":")[2]
    return "" if "/" in upstream_model else upstream_model


def effective(model: dict) -> dict:
    """The policy in force for a model row: its own, or its provider's defaults."""
    if model.get("native_policy") is not None:
        return model["native_policy"]
    return {
        "allowed": [],
        "denied": sorted(DENIED_NATIVE_FIELDS.get(model["provider"], ())),
        "any_version": False,
    }


def checked(allowed: list[str], denied: list[str], any_version: bool) -> dict:
    """A policy as a model's owner sets it, checked; the stored form."""
    for field, names in (("allowed", allowed), ("denied", denied)):
        if len(names) > MAX_POLICY_NAMES or any(not 0 < len(name) <= 128 for name in names):
            raise InvalidArgument(
                f"nativePolicy.{field} takes at most {MAX_POLICY_NAMES} names of 1..128 characters",
                field=f"native_policy.{field}",
            )
    return {"allowed": sorted(set(allowed)), "denied": sorted(set(denied)), "any_version": any_version}


def refusal(model: dict, spec: catalog_pb2.GenerationSpec, images_given: int = 0) -> tuple[str, str] | None:
    """(field, why) when the model does not take this request's native part (or, for a ComfyUI model,
    its `images_given` input images outside `input`); None when it does."""
    policy = effective(model)
    if spec.version and not policy["any_version"]:
        version = configured_version(model["upstream_model"]) if model["provider"] == "replicate" else ""
        if spec.version != version:
            expected = f"its version is {version!r}" if version else "it takes no version"
            return "version", f"version {spec.version[:80]!r} is not model {model['name']!r}'s: {expected}"
    if model["provider"] == "comfyui":
        native = json.loads(spec.input) if spec.input else None
        return comfy_workflow.refusal(model["comfyui"], model["name"], native, images_given)
    if not spec.input:
        return None
    names = set(json.loads(spec.input))
    denied = sorted(names.intersection(policy["denied"]))
    if denied:
        return (
            f"input.{denied[0]}",
            f"input.{denied[0]} is not allowed on model {model['name']!r}: its owner's policy refuses it"
            " (it acts beyond this one job on a shared server)",
        )
    if policy["allowed"]:
        # The fields imagegen itself reads always pass.
        understood = {*COMMON_NATIVE_FIELDS, *(name for names in NATIVE_COUNT_FIELDS for name in names)}
        unlisted = sorted(names - set(policy["allowed"]) - understood)
        if unlisted:
            return (
                f"input.{unlisted[0]}",
                f"input.{unlisted[0]} is not allowed on model {model['name']!r}, which takes only"
                f" {', '.join(policy['allowed'])} besides the common fields",
            )
    return None
