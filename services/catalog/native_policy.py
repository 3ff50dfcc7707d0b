"""What a model lets through of a request's model-native `input`.

A model is shared by every user of a project, and its server by every model pointing at it: fields that
change the server itself (its loaded checkpoint, its scripts, where it saves files) or that reach past
the one job are the model owner's decision, not a request's. Each provider has a denied list here; a
request naming one is refused with the field's name, and nothing is queued.
"""

from __future__ import annotations

import json

from imagegen.catalog.v1 import catalog_pb2

# Top-level names in `input`, per provider.
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
}


def configured_version(upstream_model: str) -> str:
    """The version an `owner/name:version` or bare-version upstream model names; empty for `owner/name`."""
    if ":" in upstream_model:
        return upstream_model.rpartition(":")[2]
    return "" if "/" in upstream_model else upstream_model


def refusal(model: dict, spec: catalog_pb2.GenerationSpec) -> tuple[str, str] | None:
    """(field, why) when the model does not take this request's native part; None when it does."""
    if spec.version:
        version = configured_version(model["upstream_model"]) if model["provider"] == "replicate" else ""
        if spec.version != version:
            expected = f"its version is {version!r}" if version else "it takes no version"
            return "version", f"version {spec.version[:80]!r} is not model {model['name']!r}'s: {expected}"
    if not spec.input:
        return None
    denied = DENIED_NATIVE_FIELDS.get(model["provider"], frozenset())
    named = sorted(denied.intersection(json.loads(spec.input)))
    if named:
        return (
            f"input.{named[0]}",
            f"input.{named[0]} is not allowed on model {model['name']!r} ({model['provider']}): it"
            " acts beyond this one job on a shared server",
        )
    return None
