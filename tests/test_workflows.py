"""ComfyUI workflows and progress reports as the code reads them, without a running platform: a model's
field places checked, an app's workflow let through or refused, a workflow create request read, and
what the providers make of what servers report."""

from __future__ import annotations

import copy
import io
import json

import pytest
from PIL import Image

from services.common import comfy_workflow
from services.common.errors import InvalidArgument
from services.generator.progress import PREVIEW_SIDE, shrink_preview
from services.generator.providers import Progress
from services.generator.providers.comfyui import _node_error, _output_files, _validation_error
from services.generator.providers.replicate import _report_logs
from services.generator.requests import from_json_body
from tests.fakes import png
from tests.test_progress import IMG2IMG, WORKFLOW

PLACES = {"prompt": {"node": "6", "input": "text"}, "seed": {"node": "3", "input": "seed"}}


def test_a_models_places_must_name_inputs_its_workflow_has():
    assert comfy_workflow.check_model({"workflow": WORKFLOW, **PLACES})
    with pytest.raises(InvalidArgument, match="API-format workflow"):
        comfy_workflow.check_model({"workflow": {"3": {"inputs": {}}}})
    with pytest.raises(InvalidArgument, match="node '6' input 'txt'"):
        comfy_workflow.check_model({"workflow": WORKFLOW, "prompt": {"node": "6", "input": "txt"}})
    with pytest.raises(InvalidArgument, match="node '99'"):
        comfy_workflow.check_model({"workflow": WORKFLOW, "seed": {"node": "99", "input": "seed"}})
    with pytest.raises(InvalidArgument, match="is a EmptyLatentImage"):
        comfy_workflow.check_model({"workflow": WORKFLOW, "images": [{"node": "5", "input": "width"}]})
    assert comfy_workflow.check_model({"workflow": IMG2IMG, "images": [{"node": "10", "input": "image"}]})


def test_an_apps_workflow_passes_only_where_the_model_allows_it():
    closed = {"workflow": WORKFLOW}
    assert comfy_workflow.refusal(closed, "m", None) is None
    assert comfy_workflow.refusal(closed, "m", None, images_given=1)[0] == "input_images"
    assert (
        comfy_workflow.refusal(
            {"workflow": IMG2IMG, "images": [{"node": "10", "input": "image"}]}, "m", None, 1
        )
        is None
    )
    assert comfy_workflow.refusal(closed, "m", WORKFLOW)[0] == "input"
    open_ = {"workflow": IMG2IMG, "allow_app_workflows": True}
    assert comfy_workflow.refusal(open_, "m", {"steps": 20})[0] == "input"
    own = copy.deepcopy(IMG2IMG)
    own["10"]["inputs"]["image"] = "imagegen:input/0"
    assert comfy_workflow.refusal(open_, "m", own) is None
    on_disk = copy.deepcopy(IMG2IMG)
    on_disk["10"]["inputs"]["image"] = "other-tenant.png"
    assert comfy_workflow.refusal(open_, "m", on_disk)[0] == "input.10.inputs.image"
    foreign = {**own, "12": {"class_type": "SaveLatent", "inputs": {}}}
    field, why = comfy_workflow.refusal(open_, "m", foreign)
    assert field == "input.12" and "'SaveLatent'" in why
    listed = {**open_, "allowed_node_classes": ["SaveLatent", *{n["class_type"] for n in IMG2IMG.values()}]}
    assert comfy_workflow.refusal(listed, "m", foreign) is None


def test_struct_numbers_come_back_whole_and_the_positive_prompt_is_found():
    assert comfy_workflow.whole_numbers({"a": [20.0, 8.5, {"b": 1.56680208700286e14}]}) == {
        "a": [20, 8.5, {"b": 156680208700286}]
    }
    assert comfy_workflow.positive_prompt(WORKFLOW) == "beautiful scenery"
    assert comfy_workflow.positive_prompt({"1": {"class_type": "X", "inputs": {}}}) == ""


def test_a_workflow_in_a_create_keeps_its_nodes_and_its_images_become_references():
    own = copy.deepcopy(IMG2IMG)
    own["10"]["inputs"]["image"] = "https://photos.example/room.jpg"
    body = json.dumps({"model": "comfy", "input": own, "seed": 3, "n": 2}).encode()
    request = from_json_body(body, "application/json", {}, "procedural")
    assert request.spec.prompt == "beautiful scenery" and request.spec.n == 2 and request.spec.seed == 3
    native = json.loads(request.spec.input)
    assert set(native) == set(IMG2IMG), "no common field is written into a workflow's nodes"
    assert native["10"]["inputs"]["image"] == "imagegen:input/0"
    assert [(s.pointer, s.role, s.text) for s in request.images] == [
        ("/10/inputs/image", "image", "https://photos.example/room.jpg")
    ]


def test_comfyui_errors_name_their_nodes_and_outputs_prefer_saved_images():
    assert (
        _node_error({"node_id": "3", "node_type": "KSampler", "exception_message": "CUDA out of memory\n"})
        == "node 3 (KSampler) failed: CUDA out of memory"
    )
    problem = {"message": "Value not in list", "details": "ckpt_name: 'x' not in []"}
    refused = {
        "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"},
        "node_errors": {"4": {"errors": [problem], "class_type": "CheckpointLoaderSimple"}},
    }
    assert _validation_error(refused) == (
        "Prompt outputs failed validation; node 4 (CheckpointLoaderSimple): Value not in list:"
        " ckpt_name: 'x' not in []"
    )
    entry = {"outputs": {"9": {"images": [{"filename": "a.png", "type": "output"}]},
                         "12": {"images": [{"filename": "p.png", "type": "temp"}]}}}  # fmt: skip
    assert [f["filename"] for f in _output_files(entry)] == ["a.png"]
    assert [f["filename"] for f in _output_files({"outputs": {"12": entry["outputs"]["12"]}})] == ["p.png"]


def test_progress_reports_fold_and_replicate_logs_give_steps():
    progress = Progress()
    progress.report(0.5, 10, 20)
    assert progress.changed
    progress.changed = False
    progress.report(0.5, 10, 20)
    assert not progress.changed, "the same report is no change"
    progress.report(7.0)
    assert progress.fraction == 1.0
    logs = (
        "Using seed: 1\n  4%|▍         | 2/50 [00:00<00:10]\r 46%|████▌     | 23/50 [00:02<00:02,  9.9it/s]"
    )
    replicate = Progress()
    _report_logs(logs, replicate)
    assert (replicate.step, replicate.steps, replicate.fraction) == (23, 50, 0.46)
    _report_logs(None, replicate)
    assert replicate.step == 23


def test_a_preview_is_a_small_jpeg():
    small = shrink_preview(png("preview", 1, 768, 512))
    with Image.open(io.BytesIO(small)) as image:
        assert image.format == "JPEG" and max(image.size) == PREVIEW_SIDE
    assert len(small) < 16_000
    assert shrink_preview(b"not an image") is None
