"""Watching a generation happen, through the running platform (Envoy, services, Postgres): its queue
position while it waits, its server's progress and preview images while it runs, and ComfyUI and
AUTOMATIC1111 servers driven as their own servers are (the loopback fakes record what arrived)."""

from __future__ import annotations

import base64
import copy
import io
import json
import threading
import time
import uuid

import pytest
import requests
from PIL import Image

from tests.conftest import rest_client, running_platform
from tests.fakes import FakeComfyUI, FakeModelServer, WebhookReceiver, png, size_of

KEY = "sk_progress_" + uuid.uuid4().hex

# ComfyUI's default text-to-image graph as "Export (API)" writes it.
WORKFLOW = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 156680208700286, "steps": 20, "cfg": 8,
          "sampler_name": "euler", "scheduler": "normal", "denoise": 1, "model": ["4", 0],
          "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "beautiful scenery", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}  # fmt: skip
PLACES = {
    "prompt": {"node": "6", "input": "text"},
    "negativePrompt": {"node": "7", "input": "text"},
    "seed": {"node": "3", "input": "seed"},
    "width": {"node": "5", "input": "width"},
    "height": {"node": "5", "input": "height"},
    "n": {"node": "5", "input": "batch_size"},
}
# The same graph from a loaded image: img2img.
IMG2IMG = {
    **copy.deepcopy(WORKFLOW),
    "10": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
    "11": {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}},
}
IMG2IMG["3"]["inputs"]["latent_image"] = ["11", 0]


@pytest.fixture(scope="module")
def platform(pg, tmp_path_factory):
    with running_platform(pg, tmp_path_factory, KEY) as running:
        yield running


@pytest.fixture(scope="module")
def api(platform):
    return rest_client(platform, KEY)


@pytest.fixture
def comfy():
    server = FakeComfyUI()
    yield server
    server.stop()


def _model(api, provider: str, servers: list[dict], **extra) -> dict:
    name = f"{provider}-{uuid.uuid4().hex[:6]}"
    answer = api(
        "POST", "/api/models", json={"name": name, "provider": provider, "servers": servers, **extra}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _comfy_model(api, urls: list[str], workflow: dict = WORKFLOW, **config) -> dict:
    return _model(
        api, "comfyui", [{"url": url} for url in urls], comfyui={"workflow": workflow, **PLACES, **config}
    )


def _create(api, async_: bool = False, **body) -> dict:
    if async_:
        body["async"] = True
    answer = api("POST", "/api/images/generations", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _events(api, generation_id: str, query: str = "") -> list[dict]:
    with api("GET", f"/api/images/generations/{generation_id}:watch{query}", stream=True) as watch:
        assert watch.status_code == 200, watch.text
        return [json.loads(line[6:]) for line in watch.iter_lines() if line.startswith(b"data: ")]


def _pixels(url: str) -> bytes:
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200
    with Image.open(io.BytesIO(answer.content)) as image:
        return image.convert("RGB").tobytes()


def _rgb(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


def _field(answer: requests.Response) -> str:
    return answer.json()["details"][0]["fieldViolations"][0]["field"]


def _until(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- where it stands ---------------------------------------------------------------------------------


def test_queue_position_counts_down_to_zero_behind_a_busy_server(api):
    fake = FakeModelServer(delay=0.8)
    try:
        model = _model(
            api, "openai", [{"url": f"{fake.url}/v1", "maxConcurrency": 1}], upstreamModel="dall-e-2"
        )
        user = f"u-{uuid.uuid4().hex[:6]}"
        jobs = [
            _create(api, prompt=f"a lighthouse {i}", model=model["name"], user=user, width=64, height=64,
                    **{"async": True})
            for i in range(4)
        ]  # fmt: skip
        last = jobs[-1]
        now = api("GET", f"/api/images/generations/{last['id']}").json()
        assert now["status"] == "pending" and now["queuePosition"] in (2, 3), now
        assert "progress" not in now and "startedAt" not in now and "completedAt" not in now
        listed = api("GET", f"/api/images/generations?user={user}&status=pending").json()["results"]
        assert {g["id"]: g["queuePosition"] for g in listed}[last["id"]] >= 2
        events = _events(api, last["id"])
    finally:
        fake.stop()
    positions = [e["queuePosition"] for e in events if e["status"] == "pending"]
    assert positions == sorted(set(positions), reverse=True) and positions[-1] == 0, positions
    assert len(positions) >= 2, "the watch sends each new position"
    assert [e["status"] for e in events if e["status"] != "pending"] == ["processing", "completed"]
    processing, completed = events[-2], events[-1]
    assert "queuePosition" not in processing and processing["startedAt"]
    assert completed["completedAt"] >= completed["startedAt"] > completed["createdAt"]
    assert fake.stats.max_in_flight == 1


# -- ComfyUI ------------------------------------------------------------------------------------------


def test_comfyui_model_runs_its_workflow_with_the_request_in_place(api, comfy):
    model = _comfy_model(api, [comfy.base_url])
    assert model["comfyui"]["workflow"]["3"]["inputs"]["seed"] == 156680208700286
    done = _create(api, prompt="a red barn", negativePrompt="fog", seed=7, width=80, height=64, n=2,
                   model=model["name"])  # fmt: skip
    assert done["status"] == "completed", done
    sent = comfy.prompts[-1]
    assert sent["6"]["inputs"]["text"] == "a red barn" and sent["7"]["inputs"]["text"] == "fog"
    assert sent["3"]["inputs"]["seed"] == 7 and sent["3"]["inputs"]["steps"] == 20
    latent = sent["5"]["inputs"]
    assert (latent["width"], latent["height"], latent["batch_size"]) == (80, 64, 2)
    assert [_pixels(image["url"]) for image in done["outputImages"]] == [
        _rgb(png("a red barn", 7 + i, 80, 64)) for i in range(2)
    ]
    assert done["startedAt"] and done["completedAt"] and "progress" not in done


def test_comfyui_progress_and_previews_reach_the_watch(api):
    slow = FakeComfyUI(step_seconds=0.1)
    try:
        model = _comfy_model(api, [slow.base_url])
        plain = _create(
            api, prompt="dunes", seed=1, width=64, height=64, model=model["name"], **{"async": True}
        )
        plain_events = _events(api, plain["id"])
        shown = _create(
            api, prompt="dunes", seed=2, width=64, height=64, model=model["name"], **{"async": True}
        )
        events = _events(api, shown["id"], "?previews=true")
    finally:
        slow.stop()
    assert not any("preview" in e for e in plain_events), "previews only when asked"
    running = [e for e in events if e["status"] == "processing" and "progress" in e]
    assert len(running) >= 3, [e["status"] for e in events]
    steps = [(e["step"], e["steps"]) for e in running]
    assert steps == sorted(steps) and all(total == 20 for _, total in steps)
    assert all(0 < e["progress"] <= 1 for e in running)
    previews = [e["preview"] for e in running if "preview" in e]
    assert previews and previews[0].startswith("data:image/jpeg;base64,")
    preview = base64.b64decode(previews[0].partition(",")[2])
    assert len(preview) < 16_000 and max(size_of(preview)) <= 192
    assert events[-1]["status"] == "completed" and "preview" not in events[-1]
    listed = api("GET", f"/api/images/generations?id={shown['id']}").json()["results"][0]
    assert "preview" not in listed


def test_comfyui_input_image_and_mask_are_uploaded_and_loaded(api, comfy):
    model = _comfy_model(api, [comfy.base_url], workflow=IMG2IMG, images=[{"node": "10", "input": "image"}])
    photo = png("a living room", 3, 96, 80)
    mask = png("mask", 4, 96, 80)
    done = _create(api, prompt="a modern room", seed=5, model=model["name"],
                   inputImages=["data:image/png;base64," + base64.b64encode(photo).decode()],
                   mask="data:image/png;base64," + base64.b64encode(mask).decode())  # fmt: skip
    assert done["status"] == "completed", done
    (kind, image_name), (mask_kind, masked_name) = comfy.uploads[-2:]
    assert (kind, mask_kind) == ("image", "mask")
    assert comfy.inputs[image_name] == photo and comfy.inputs[masked_name] == mask
    assert comfy.prompts[-1]["10"]["inputs"]["image"] == masked_name
    assert (done["outputImages"][0]["width"], done["outputImages"][0]["height"]) == (96, 80)


def test_comfyui_app_workflows_only_where_the_model_allows_and_only_its_node_classes(api, comfy):
    closed = _comfy_model(api, [comfy.base_url])
    refused = api("POST", "/api/images/generations", json={"model": closed["name"], "input": WORKFLOW})
    assert refused.status_code == 400 and "takes no `input`" in refused.json()["message"]
    photo = "data:image/png;base64," + base64.b64encode(png("a room", 1, 64, 64)).decode()
    refused = api("POST", "/api/images/generations", json={"model": closed["name"], "prompt": "x",
                  "inputImages": [photo]})  # fmt: skip
    assert refused.status_code == 400 and _field(refused) == "input_images", refused.text
    assert "loads 0 input image(s)" in refused.json()["message"]
    model = _comfy_model(api, [comfy.base_url], allowAppWorkflows=True,
                         allowedNodeClasses=sorted({n["class_type"] for n in IMG2IMG.values()}))  # fmt: skip
    prompts = len(comfy.prompts)
    foreign = {**WORKFLOW, "12": {"class_type": "ShellCommand", "inputs": {"command": "id"}}}
    answer = api("POST", "/api/images/generations", json={"model": model["name"], "input": foreign})
    assert answer.status_code == 400 and "node 12 is a 'ShellCommand'" in answer.json()["message"]
    on_disk = copy.deepcopy(IMG2IMG)
    on_disk["10"]["inputs"]["image"] = "../../secrets.png"
    answer = api("POST", "/api/images/generations", json={"model": model["name"], "input": on_disk})
    assert answer.status_code == 400 and _field(answer) == "input.10.inputs.image"
    assert len(comfy.prompts) == prompts, "nothing refused reached the server"

    own = copy.deepcopy(IMG2IMG)
    photo = png("a garden", 8, 72, 56)
    own["10"]["inputs"]["image"] = "data:image/png;base64," + base64.b64encode(photo).decode()
    own["6"]["inputs"]["text"] = "a japanese garden"
    done = _create(api, model=model["name"], input=own, seed=11)
    assert done["status"] == "completed", done
    sent = comfy.prompts[-1]
    assert sent["6"]["inputs"]["text"] == "a japanese garden", "the app's own text stands"
    assert sent["3"]["inputs"]["seed"] == 11 and comfy.inputs[sent["10"]["inputs"]["image"]] == photo
    assert json.loads(done["input"])["10"]["inputs"]["image"] == "imagegen:input/0"
    assert done["inputImages"][0]["sha256"]

    broken = copy.deepcopy(WORKFLOW)
    broken["3"]["inputs"]["sampler_name"] = "explode"
    failed = _create(api, model=model["name"], input=broken)
    assert failed["status"] == "failed"
    assert failed["reason"] == "node 3 (KSampler) failed: Expected all tensors to be on the same device"


def test_comfyui_cancel_mid_run_interrupts_the_server(api):
    slow = FakeComfyUI(step_seconds=0.2)
    try:
        model = _comfy_model(api, [slow.base_url])
        job = _create(api, prompt="a storm", model=model["name"], **{"async": True})
        _until(lambda: slow.step >= 2)
        cancelled = api("POST", f"/api/images/generations/{job['id']}:cancel", json={})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        _until(lambda: slow.interrupts == 1 and slow.running is None, 10)
        assert slow.step < 20, "the sampling stopped"
        assert slow.deleted, "and the prompt was taken out of the server's queue"
    finally:
        slow.stop()


def test_comfyui_server_dying_mid_run_moves_the_job_to_another(api):
    dying, healthy = FakeComfyUI(step_seconds=0.1), FakeComfyUI()
    try:
        model = _comfy_model(api, [dying.base_url, healthy.base_url])
        job = _create(
            api, prompt="a glacier", seed=3, width=64, height=64, model=model["name"], **{"async": True}
        )
        _until(lambda: dying.step >= 2)
        threading.Thread(target=dying.stop).start()
        events = _events(api, job["id"])
    finally:
        healthy.stop()
    done = events[-1]
    assert done["status"] == "completed", done
    assert done["serverId"] == model["servers"][1]["id"] and len(healthy.prompts) == 1
    assert _pixels(done["outputImages"][0]["url"]) == _rgb(png("a glacier", 3, 64, 64))


def test_comfyui_model_needs_a_workflow_whose_places_exist_and_may_replace_it(api, comfy):
    answer = api(
        "POST",
        "/api/models",
        json={"name": "c1", "provider": "comfyui", "servers": [{"url": comfy.base_url}]},
    )
    assert answer.status_code == 400 and _field(answer) == "comfyui"
    bad = {"workflow": WORKFLOW, "prompt": {"node": "6", "input": "txt"}}
    answer = api("POST", "/api/models", json={"name": "c2", "provider": "comfyui", "servers": [
        {"url": comfy.base_url}], "comfyui": bad})  # fmt: skip
    assert answer.status_code == 400 and "node '6' input 'txt'" in answer.json()["message"]
    model = _comfy_model(api, [comfy.base_url])
    changed = {"workflow": copy.deepcopy(WORKFLOW), **PLACES}
    changed["workflow"]["3"]["inputs"]["steps"] = 4
    answer = api("PATCH", f"/api/models/{model['name']}", json={"comfyui": changed})
    assert answer.status_code == 200 and answer.json()["comfyui"]["workflow"]["3"]["inputs"]["steps"] == 4
    assert _create(api, prompt="a mill", model=model["name"])["status"] == "completed"
    assert comfy.prompts[-1]["3"]["inputs"]["steps"] == 4, "jobs run the replaced workflow"
    broken = api("PATCH", f"/api/models/{model['name']}", json={"comfyui": {"workflow": {"x": 1}}})
    assert broken.status_code == 400
    other = _model(api, "procedural", [{"url": "builtin://procedural"}])
    answer = api("PATCH", f"/api/models/{other['name']}", json={"comfyui": changed, "pricePerImage": 3})
    assert answer.status_code == 400 and _field(answer) == "comfyui"
    assert api("GET", f"/api/models/{other['name']}").json()["pricePerImage"] == 0, "nothing changed"
    image_on_text = {"workflow": WORKFLOW, "images": [{"node": "6", "input": "text"}]}
    answer = api("POST", "/api/models", json={"name": "c3", "provider": "comfyui", "servers": [
        {"url": comfy.base_url}], "comfyui": image_on_text})  # fmt: skip
    assert answer.status_code == 400 and "LoadImage" in answer.json()["message"]


# -- AUTOMATIC1111 ------------------------------------------------------------------------------------


def test_automatic1111_follows_its_own_task_and_interrupts_only_it(api):
    fake = FakeModelServer(step_seconds=0.05, task_ids=True)
    try:
        model = _model(api, "automatic1111", [{"url": fake.url, "maxConcurrency": 4}])
        job = _create(api, prompt="a castle", seed=1, width=64, height=64, model=model["name"],
                      input={"steps": 40}, **{"async": True})  # fmt: skip
        events = _events(api, job["id"], "?previews=true")
        body = fake.stats.bodies[-1]
        assert body["force_task_id"].startswith("task(imagegen-")
        polled = [b for path, b in fake.progress_calls if path == "/internal/progress"]
        assert polled and all(b["id_task"] == body["force_task_id"] for b in polled)
        fake.progress_calls.clear()
        assert not any(path == "/sdapi/v1/progress" for path, _ in fake.progress_calls)
        running = [e for e in events if "progress" in e]
        assert running and running == sorted(running, key=lambda e: e["progress"])
        assert any("preview" in e for e in running)

        long = _create(api, prompt="a castle", seed=2, width=64, height=64, model=model["name"],
                       input={"steps": 400}, **{"async": True})  # fmt: skip
        _until(lambda: fake.sampling["sampling_step"] >= 3)
        assert api("POST", f"/api/images/generations/{long['id']}:cancel", json={}).status_code == 200
        _until(lambda: fake.interrupted and fake.current_task is None, 10)
        assert fake.sampling["sampling_step"] < 400
    finally:
        fake.stop()


def test_automatic1111_without_task_ids_reads_progress_only_when_it_runs_one_job(api):
    fake = FakeModelServer(step_seconds=0.05)
    try:
        shared = _model(api, "automatic1111", [{"url": fake.url, "maxConcurrency": 2}])
        job = _create(api, prompt="a bridge", seed=1, width=64, height=64, model=shared["name"],
                      input={"steps": 30}, **{"async": True})  # fmt: skip
        events = _events(api, job["id"])
        assert events[-1]["status"] == "completed" and not any("progress" in e for e in events)
        assert not any(path == "/sdapi/v1/progress" for path, _ in fake.progress_calls)
        assert "force_task_id" not in fake.stats.bodies[-1]

        alone = _model(api, "automatic1111", [{"url": fake.url, "maxConcurrency": 1}])
        job = _create(api, prompt="a bridge", seed=2, width=64, height=64, model=alone["name"],
                      input={"steps": 30}, **{"async": True})  # fmt: skip
        events = _events(api, job["id"])
        assert any(path == "/sdapi/v1/progress" for path, _ in fake.progress_calls)
        steps = [(e["step"], e["steps"]) for e in events if "step" in e]
        assert steps and all(total == 30 for _, total in steps) and steps == sorted(steps)
    finally:
        fake.stop()


# -- webhooks by event --------------------------------------------------------------------------------


def test_webhooks_by_event_start_progress_and_completed(api):
    slow, receiver = FakeComfyUI(step_seconds=0.12), WebhookReceiver([])
    try:
        model = _comfy_model(api, [slow.base_url])
        bad = api("POST", "/api/images/generations", json={"prompt": "x", "webhookEventsFilter": ["start"]})
        assert bad.status_code == 400 and _field(bad) == "callback_url"
        bad = api("POST", "/api/images/generations", json={"prompt": "x", "callbackUrl": receiver.url,
                  "webhookEventsFilter": ["output"]})  # fmt: skip
        assert bad.status_code == 400 and "start, progress, completed" in bad.json()["message"]

        every = _create(api, prompt="a kite", model=model["name"], callbackUrl=receiver.url,
                        webhookEventsFilter=["completed", "progress", "start"], async_=True)  # fmt: skip
        assert every["webhookEventsFilter"] == ["start", "progress", "completed"]
        plain = _create(
            api, prompt="a kite", model=model["name"], callbackUrl=receiver.url, **{"async": True}
        )
        assert plain["webhookEventsFilter"] == []
        for job in (every, plain):
            assert _events(api, job["id"])[-1]["status"] == "completed"
        _until(lambda: sum(h["webhook-event"] == "completed" for h, _ in receiver.received) == 2)
        time.sleep(0.5)
    finally:
        slow.stop()
        receiver.stop()
    told = [(headers["webhook-event"], json.loads(body)) for headers, body in receiver.received]
    mine = [(event, body) for event, body in told if body["id"] == every["id"]]
    events = [event for event, _ in mine]
    assert (
        events[0] == "start"
        and events[-1] == "completed"
        and set(events) == {"start", "progress", "completed"}
    )
    assert mine[0][1]["status"] == "processing"
    progressed = [body for event, body in mine if event == "progress"]
    # About 2.4 s of sampling, one progress delivery a second at most.
    assert 1 <= len(progressed) <= 4 and all(body["progress"] > 0 for body in progressed)
    assert [event for event, body in told if body["id"] == plain["id"]] == ["completed"]
