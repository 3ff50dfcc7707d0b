"""Meteron's pass-through through the running platform (Envoy, services, Postgres): an app's own
model request and image inputs reach each model server in that server's form, every output is kept,
and each way a request can be wrong is a 400 that leaves nothing behind.

The loopback model servers record what arrived; the assertions read those records."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import time
import uuid

import psycopg
import psycopg_pool
import pytest
import requests
from PIL import Image
from psycopg.rows import dict_row

from services.catalog.repository import Repository
from services.common.vocabulary import variant_key, variant_widths
from tests.conftest import create_project, rest_client, running_platform
from tests.fakes import ConnectionCounter, FakeModelServer, PhotoServer, png, size_of

KEY = "sk_pass_through_" + uuid.uuid4().hex
ROOMFIX_VERSION = "854e8727697a057c525cdb45ab037f64ecca770a1769cc52287c2e56472a247b"


def jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(png("a bright room with a window", 5, width, height))) as image:
        image.convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def data_uri(data: bytes, content_type: str = "image/png") -> str:
    return f"data:{content_type};base64," + base64.b64encode(data).decode()


ROOM = jpeg(320, 240)


@pytest.fixture(scope="module")
def platform(pg, tmp_path_factory):
    # The app's photos and the fake model servers are on loopback, which test platforms allow. Unused
    # blobs are looked for every half second, so an erased user's images go within the test.
    env = {"IMAGEGEN_BLOB_SWEEP_INTERVAL_SECONDS": "0.5"}
    with running_platform(pg, tmp_path_factory, KEY, **env) as running:
        yield running


@pytest.fixture(scope="module")
def api(platform):
    return rest_client(platform, KEY)


@pytest.fixture(scope="module")
def photos():
    server = PhotoServer({"room.jpg": ("image/jpeg", ROOM), "page.html": ("text/html", b"<html>hi</html>")})
    yield server
    server.stop()


@pytest.fixture
def fake():
    server = FakeModelServer()
    yield server
    server.stop()


def _model(api, provider: str, url: str, upstream: str = "", **extra) -> str:
    name = f"{provider}-{uuid.uuid4().hex[:6]}"
    answer = api("POST", "/api/models", json={
        "name": name, "provider": provider, "upstreamModel": upstream, "servers": [{"url": url}], **extra,
    })  # fmt: skip
    assert answer.status_code == 200, answer.text
    return name


def pixels(data: bytes) -> bytes:
    """The decoded pixels: stored images carry a C2PA manifest the model server's bytes did not."""
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


def _download(url: str) -> bytes:
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.content


def test_roomfix_runs_unchanged_end_to_end(api, platform, photos, fake):
    """RoomFix's `pages/api/generate.ts` request as it sends it, then `outputImages[1].url` and the
    remaining count it shows its user."""
    model = _model(
        api, "replicate", fake.url + "/v1", f"jagilley/controlnet-hough:{ROOMFIX_VERSION}",
        userLimits={"daily": 5},
    )  # fmt: skip
    body = {
        "version": ROOMFIX_VERSION,
        "input": {
            "image": f"{photos.base_url}/room.jpg",
            "prompt": "A modern living room",
            "scale": 9,
            "a_prompt": "best quality, extremely detailed, photo from Pinterest, interior, cinematic photo",
            "n_prompt": "longbody, lowres, bad anatomy, bad hands, missing fingers",
        },
    }
    raw = json.dumps(body).encode()
    headers = {
        "X-Model": model,
        "X-User": "jane@example.com",
        "X-Async": "false",
        "Content-Type": "application/json",
    }
    answer = api("POST", "/api/images/generations", data=raw, headers=headers)
    assert answer.status_code == 200, answer.text
    generation = answer.json()
    assert generation["status"] == "completed", generation
    assert generation["prompt"] == "A modern living room" and generation["version"] == ROOMFIX_VERSION

    # The model server got RoomFix's input as sent, the photo as a URL of imagegen's stored copy.
    [sent] = fake.stats.bodies
    assert sent["version"] == ROOMFIX_VERSION
    photo_url = sent["input"].pop("image")
    assert sent["input"] == {k: v for k, v in body["input"].items() if k != "image"}
    assert photos.base_url not in photo_url
    [(fetched_url, status, fetched)] = fake.stats.fetched
    assert (fetched_url, status, fetched) == (photo_url, 200, ROOM)
    assert photos.requests == ["/room.jpg"], "imagegen fetched the app's photo once"

    # Both outputs, in the server's order: the control map, then the room.
    control, room = generation["outputImages"]
    assert size_of(_download(room["url"])) == (320, 240)
    assert pixels(_download(room["url"])) == pixels(png("A modern living room", 0, 320, 240))
    assert _download(control["url"]) != _download(room["url"])

    [given] = generation["inputImages"]
    assert given["sha256"] == hashlib.sha256(ROOM).hexdigest() and given["pointer"] == "/image"
    assert given["contentType"] == "image/jpeg" and (given["width"], given["height"]) == (320, 240)
    assert _download(given["url"]) == ROOM
    assert base64.b64decode(generation["requestBody"]) == raw
    assert json.loads(generation["input"])["image"] == "imagegen:input/0"

    remaining = api("GET", f"/api/remaining/generations?user=jane@example.com&model={model}").json()
    assert remaining["remaining"] == 4, "one image asked, one counted, though two were kept"
    by_id = f"/api/remaining/generations?user=jane@example.com&model={generation['modelId']}"
    assert api("GET", by_id).json()["remaining"] == 4
    assert api("GET", f"/api/models/{generation['modelId']}").json()["name"] == model

    # hazy-hues lists by cluster (older Meteron code by X-Cluster); the model's id works as its name.
    other = api("POST", "/api/images/generations", json={"prompt": "a lake", "user": "jane@example.com"})
    assert other.status_code == 200, other.text
    model_id = generation["modelId"]
    for query, headers in (
        (f"cluster={model}", {}),
        (f"model={model_id}", {}),
        ("", {"X-Cluster": model}),
    ):
        listed = api("GET", f"/api/images/generations?user=jane@example.com&{query}", headers=headers)
        assert [g["id"] for g in listed.json()["results"]] == [generation["id"]], (query, headers)
    by_id = {"X-Cluster": model_id, "X-User": "jane@example.com"}
    again = api("POST", "/api/images/generations", headers=by_id, json=body)
    assert again.status_code == 200 and again.json()["model"] == model, again.text


def test_img2img_with_mask_and_controlnet_reaches_automatic1111_in_its_form(api, fake):
    model = _model(api, "automatic1111", fake.url)
    photo = png("a sofa in a grey room", 1, 128, 96)
    mask = io.BytesIO()
    Image.new("RGBA", (128, 96), (0, 0, 0, 0)).save(mask, format="PNG")
    body = {
        "model": model,
        "prompt": "a red velvet sofa",
        "seed": 42,
        "input": {
            "init_images": [data_uri(photo)],
            "mask": data_uri(mask.getvalue()),
            "denoising_strength": 0.55,
            "steps": 28,
            "cfg_scale": 6.5,
            "sampler_name": "DPM++ 2M Karras",
            "alwayson_scripts": {
                "controlnet": {
                    "args": [
                        {"input_image": base64.b64encode(photo).decode(), "module": "canny", "weight": 0.8}
                    ]
                }
            },
        },
    }
    answer = api("POST", "/api/images/generations", json=body)
    assert answer.status_code == 200, answer.text
    generation = answer.json()
    assert generation["status"] == "completed", generation

    [sent] = fake.stats.bodies
    assert base64.b64decode(sent["init_images"][0]) == photo
    assert base64.b64decode(sent["mask"]) == mask.getvalue()
    unit = sent["alwayson_scripts"]["controlnet"]["args"][0]
    assert (
        base64.b64decode(unit["input_image"]) == photo and unit["module"] == "canny" and unit["weight"] == 0.8
    )
    assert (sent["steps"], sent["cfg_scale"], sent["sampler_name"], sent["denoising_strength"]) == (
        28, 6.5, "DPM++ 2M Karras", 0.55,
    )  # fmt: skip
    assert (sent["prompt"], sent["seed"]) == ("a red velvet sofa", 42)
    # One asked; the result and ControlNet's detected map both kept, in the server's order.
    assert len(generation["outputImages"]) == 2
    assert pixels(_download(generation["outputImages"][0]["url"])) == pixels(
        png("a red velvet sofa", 42, 128, 96)
    )
    assert [i["role"] for i in generation["inputImages"]] == ["image", "mask", "control"]
    recorded = base64.b64decode(generation["requestBody"]).decode()
    assert base64.b64encode(photo).decode() not in recorded, "inline images are kept by reference"


def test_an_edit_reaches_an_openai_server_as_multipart(api, photos, fake):
    model = _model(api, "openai", fake.url + "/v1", "gpt-image-1")
    mask = io.BytesIO()
    Image.new("RGBA", (320, 240), (0, 0, 0, 0)).save(mask, format="PNG")
    body = {
        "model": model,
        "prompt": "add a plant by the window",
        "inputImages": [f"{photos.base_url}/room.jpg"],
        "mask": data_uri(mask.getvalue()),
        "input": {"quality": "high", "background": "opaque"},
    }
    answer = api("POST", "/api/images/generations", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "completed", answer.json()
    [edit] = fake.stats.edits
    [(content_type, data)] = edit["files"]["image"]
    assert (content_type, data) == ("image/jpeg", ROOM)
    assert edit["files"]["mask"][0][1] == mask.getvalue()
    fields = {name: values[0] for name, values in edit["fields"].items()}
    assert fields == {
        "prompt": "add a plant by the window", "quality": "high", "background": "opaque", "n": "1",
        "model": "gpt-image-1",
    }  # fmt: skip


def test_the_procedural_model_repaints_an_input_image(api):
    photo = png("a night city", 9, 96, 64)
    answer = api(
        "POST",
        "/api/images/generations",
        json={"prompt": "a desert at noon", "inputImages": [data_uri(photo)]},
    )
    assert answer.status_code == 200, answer.text
    [image] = answer.json()["outputImages"]
    assert (image["width"], image["height"]) == (96, 64), "the input's size, when none is asked"
    repainted = _download(image["url"])
    plain = api(
        "POST",
        "/api/images/generations",
        json={"prompt": "a desert at noon", "seed": answer.json()["seed"], "width": 96, "height": 64},
    )
    assert pixels(repainted) != pixels(_download(plain.json()["outputImages"][0]["url"]))

    # Its Content Credentials record an edit of the input, which is named as its parent ingredient.
    generation_id = answer.json()["id"]
    [provenance] = api("GET", f"/api/images/generations/{generation_id}/provenance").json()["images"]
    assert provenance["validationState"] == "valid", provenance["failures"]
    store = provenance["manifestStore"]
    active = store["manifests"][store["active_manifest"]]
    [ingredient] = active["ingredients"]
    assert ingredient["relationship"] == "parentOf"
    assert ingredient["title"] == f"{generation_id}-input-0-image"
    actions = next(a for a in active["assertions"] if a["label"].startswith("c2pa.actions"))["data"][
        "actions"
    ]
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited"]


def _rows(platform) -> tuple[int, int, set[str]]:
    with psycopg.connect(platform.database_url) as conn:
        generations = conn.execute("SELECT count(*) FROM generations").fetchone()[0]
        jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        unused = {row[0] for row in conn.execute("SELECT storage_key FROM unused_blobs")}
    return generations, jobs, unused


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"prompt": "a", "steps": 30}, "steps", "unknown field 'steps'"),
        ({"input": {"scale": 9}}, "prompt", "prompt is required"),
        ({"prompt": "a", "input": {"prompt": "b"}}, "prompt", "given twice with different values"),
        ({"prompt": "a", "n": 1, "input": {"num_outputs": 2}}, "n", "asks for 2 images"),
        ({"prompt": "a", "inputImages": ["PHOTOS/page.html"]}, "inputImages", "it sent text/html"),
        ({"prompt": "a", "inputImages": ["PHOTOS/missing.png"]}, "inputImages", "answered HTTP 404"),
        ({"prompt": "a", "inputImages": ["ftp://x/y.png"]}, "inputImages", "not a URL, a data URI"),
        ({"prompt": "a", "inputImages": ["data:image/png;base64,!!!"]}, "inputImages", "valid base64"),
        (
            {"prompt": "a", "inputImages": [data_uri(b"GIF89a" + b"\x00" * 40)]},
            "inputImages",
            "not a PNG, JPEG",
        ),
        ({"prompt": "a", "inputImages": [data_uri(png("x", 1, 64, 64))] * 17}, "inputImages", "limit is 16"),
        (
            {
                "prompt": "a",
                "inputImages": [data_uri(png("x", 1, 64, 64))],
                "mask": data_uri(png("x", 1, 64, 32)),
            },
            "mask",
            "size of its image",
        ),
        (
            {"prompt": "a", "model": "A1111", "input": {"override_settings": {"sd_model_checkpoint": "x"}}},
            "input.override_settings",
            "not allowed",
        ),
        (
            {
                "prompt": "a",
                "model": "A1111",
                "input": {"init_images": [data_uri(png("y", 2, 64, 64))], "script_name": "x"},
            },
            "input.script_name",
            "not allowed",
        ),
        ({"prompt": "a", "model": "REPLICATE", "version": "0123abc", "input": {}}, "version", "is not model"),
    ],
)
def test_a_bad_create_is_a_400_that_leaves_nothing_behind(api, platform, photos, fake, body, field, says):
    names = {
        "A1111": _model(api, "automatic1111", fake.url),
        "REPLICATE": _model(api, "replicate", fake.url, "o/n:" + ROOMFIX_VERSION),
    }
    text = json.dumps(body).replace("PHOTOS", photos.base_url)
    for placeholder, name in names.items():
        text = text.replace(f'"{placeholder}"', f'"{name}"')
    before = _rows(platform)
    answer = api("POST", "/api/images/generations", data=text, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["message"], answer.text
    assert any(field in str(d) for d in answer.json().get("details", [])) or field in answer.json()["message"]
    generations, jobs, unused = _rows(platform)
    assert (generations, jobs) == before[:2], "no generation, no job"
    stored = {k.split("/")[-1] for k in _stored_keys(platform)}
    assert stored <= unused | _named_keys(platform), "every stored input is named or on the unused list"
    assert fake.stats.requests == 0


def _stored_keys(platform) -> set[str]:
    images = platform.log_dir / "objects"
    return {p.name for p in images.rglob("*") if p.is_file()} if images.exists() else set()


def _named_keys(platform) -> set[str]:
    with psycopg.connect(platform.database_url) as conn:
        rows = conn.execute("SELECT storage_key, width, variants FROM output_images").fetchall()
        outputs = {key for key, _, _ in rows} | {
            variant_key(key, width)
            for key, original_width, variants in rows
            if variants
            for width in variant_widths(original_width)
        }
        inputs = {
            row[0]
            for row in conn.execute(
                "SELECT i->>'storage_key' FROM generations, jsonb_array_elements(inputs) i"
            )
        }
    return outputs | inputs


@pytest.fixture(scope="module")
def guarded(pg, tmp_path_factory):
    """A platform as shipped: tenant URLs may reach public addresses only (these tests aim only at
    loopback, which it refuses)."""
    key = "sk_guarded_" + uuid.uuid4().hex
    with running_platform(
        pg,
        tmp_path_factory,
        key,
        IMAGEGEN_OUTBOUND_PUBLIC="true",
        IMAGEGEN_ALLOWED_NETWORKS="",
        IMAGEGEN_ALLOW_PRIVATE_CALLBACKS="false",
    ) as running:
        call = rest_client(running, key)
        call.platform = running
        yield call


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "0x7f000001", "2130706433", "localhost"])
def test_an_input_url_on_the_platform_s_own_network_is_refused_unreached(guarded, host):
    listener = ConnectionCounter(png("x", 1, 64, 64))
    try:
        answer = guarded(
            "POST", "/api/images/generations", json={"prompt": "a", "inputImages": [f"http://{host}:{listener.port}/a.png"]}
        )  # fmt: skip
        assert answer.status_code == 400, answer.text
        assert "is refused" in answer.json()["message"] and "not a public address" in answer.json()["message"]
        assert listener.connections == 0
    finally:
        listener.stop()


def test_an_upload_is_sent_once_and_named_by_id_in_later_creates(api, platform, fake):
    photo = png("an empty attic", 3, 160, 120)
    # Judged by content, whatever the declared type.
    uploaded = api("POST", "/api/uploads", data=photo, headers={"Content-Type": "application/octet-stream"})
    assert uploaded.status_code == 200, uploaded.text
    upload = uploaded.json()
    assert upload["id"].startswith("upl_") and upload["sha256"] == hashlib.sha256(photo).hexdigest()
    assert (upload["contentType"], upload["width"], upload["height"]) == ("image/png", 160, 120)
    assert _download(upload["url"]) == photo and upload["expiresAt"] > upload["createdAt"]

    model = _model(api, "automatic1111", fake.url)
    for body in (
        {"model": model, "prompt": "a loft bedroom", "inputImages": [upload["id"]]},
        {"model": model, "prompt": "a loft office", "input": {"init_images": [upload["id"]], "steps": 12}},
    ):
        answer = api("POST", "/api/images/generations", json=body)
        assert answer.status_code == 200 and answer.json()["status"] == "completed", answer.text
        assert answer.json()["inputImages"][0]["sha256"] == upload["sha256"]
    assert [base64.b64decode(sent["init_images"][0]) for sent in fake.stats.bodies] == [photo, photo]

    # Another project cannot name it.
    _, other_key = create_project(platform.database_url, "other")
    other = rest_client(platform, other_key)
    refused = other("POST", "/api/images/generations", json={"prompt": "a", "inputImages": [upload["id"]]})
    assert refused.status_code == 404 and upload["id"] in refused.json()["message"], refused.text


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "send the image's bytes"),
        (b"just some text, not a picture", "not a PNG, JPEG or WebP image"),
        (b"\x89PNG" + b"\x00" * 20_000_001, "larger than 20000000 bytes"),
    ],
)
def test_a_bad_upload_is_a_400_and_records_nothing(api, platform, body, says):
    def uploads() -> int:
        with psycopg.connect(platform.database_url) as conn:
            return conn.execute("SELECT count(*) FROM uploads").fetchone()[0]

    before = uploads()
    answer = api("POST", "/api/uploads", data=body, headers={"Content-Type": "image/png"})
    assert answer.status_code == 400 and says in answer.json()["message"], answer.text
    assert uploads() == before


def test_a_model_s_owner_sets_what_passes_and_how_many_outputs_are_kept(api, photos, fake):
    model = _model(api, "automatic1111", fake.url)
    shown = api("GET", f"/api/models/{model}").json()
    assert "override_settings" in shown["nativePolicy"]["denied"] and shown["maxOutputsPerImage"] == 2

    policy = {"allowed": ["steps", "alwayson_scripts"], "denied": []}
    patched = api("PATCH", f"/api/models/{model}", json={"nativePolicy": policy, "maxOutputsPerImage": 1})
    assert patched.status_code == 200, patched.text
    assert patched.json()["nativePolicy"]["allowed"] == ["alwayson_scripts", "steps"]
    refused = api(
        "POST", "/api/images/generations", json={"model": model, "prompt": "a", "input": {"cfg_scale": 7}}
    )
    assert refused.status_code == 400 and "input.cfg_scale" in refused.json()["message"], refused.text

    photo = png("a hall", 6, 64, 64)
    unit = {"input_image": base64.b64encode(photo).decode(), "module": "canny"}
    body = {"model": model, "prompt": "a hall", "input": {
        "init_images": [data_uri(photo)], "steps": 9, "alwayson_scripts": {"controlnet": {"args": [unit]}},
    }}  # fmt: skip
    refused = api("POST", "/api/images/generations", json=body)
    assert refused.status_code == 400 and "input.init_images" in refused.json()["message"]
    policy["allowed"].append("init_images")
    api("PATCH", f"/api/models/{model}", json={"nativePolicy": policy})
    answer = api("POST", "/api/images/generations", json=body)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["outputImages"]) == 1, "one per image asked: ControlNet's map is not kept"

    reset = api("PATCH", f"/api/models/{model}", json={"nativePolicy": {"reset": True}})
    assert (
        "override_settings" in reset.json()["nativePolicy"]["denied"]
        and reset.json()["nativePolicy"]["allowed"] == []
    )
    bad = api("PATCH", f"/api/models/{model}", json={"maxOutputsPerImage": 9})
    assert bad.status_code == 400 and "maxOutputsPerImage" in bad.json()["message"]


def test_a_model_may_take_any_replicate_version(api, fake):
    name = f"replicate-{uuid.uuid4().hex[:6]}"
    created = api("POST", "/api/models", json={
        "name": name, "provider": "replicate", "upstreamModel": "owner/name",
        "servers": [{"url": fake.url + "/v1"}], "nativePolicy": {"anyVersion": True},
    })  # fmt: skip
    assert created.status_code == 200, created.text
    answer = api(
        "POST",
        "/api/images/generations",
        json={
            "model": name,
            "version": "abc123",
            "input": {"prompt": "a", "seed": 1, "width": 64, "height": 64},
        },
    )
    assert answer.status_code == 200 and answer.json()["status"] == "completed", answer.text
    assert fake.stats.bodies[0]["version"] == "abc123"


def _sweep(platform) -> dict:
    """What the unused-blob sweep would delete now, with no grace period (its claims then end as kept:
    nothing is deleted)."""

    async def claim() -> dict:
        async with psycopg_pool.AsyncConnectionPool(
            platform.database_url,
            min_size=1,
            max_size=1,
            kwargs={"row_factory": dict_row, "autocommit": True},
        ) as pool:
            claimed = await Repository(pool).claim_unused(1000, 0)
            await Repository(pool).end_sweep({}, list(claimed))
            return claimed

    return asyncio.run(claim())


def test_a_deleted_generation_s_inputs_go_to_the_unused_blob_sweep(api, platform):
    photo = png("a barn", 12, 64, 64)
    created = api(
        "POST", "/api/images/generations", json={"prompt": "a red barn", "inputImages": [data_uri(photo)]}
    )
    assert created.status_code == 200, created.text
    key = hashlib.sha256(photo).hexdigest() + ".png"
    assert key not in _sweep(platform), "named by a generation, it is kept"
    assert api("DELETE", f"/api/images/generations/{created.json()['id']}").status_code == 200
    assert key in _sweep(platform)


def test_input_urls_follow_at_most_three_redirects(api):
    photo = png("a shed", 2, 64, 64)
    hops = {"room.png": ("image/png", photo)}
    for i in range(4):
        hops[f"hop{i}"] = ("redirect", (f"/hop{i - 1}" if i else "/room.png").encode())
    photos = PhotoServer(hops)
    try:
        ok = api(
            "POST",
            "/api/images/generations",
            json={"prompt": "a", "inputImages": [f"{photos.base_url}/hop2"]},
        )
        assert (
            ok.status_code == 200
            and ok.json()["inputImages"][0]["sha256"] == hashlib.sha256(photo).hexdigest()
        )
        far = api(
            "POST",
            "/api/images/generations",
            json={"prompt": "a", "inputImages": [f"{photos.base_url}/hop3"]},
        )
        assert far.status_code == 400 and "redirects more than 3 times" in far.json()["message"], far.text
    finally:
        photos.stop()


def test_erasing_a_user_removes_their_generations_images_and_balances(api, platform):
    photo = png("a front door", 21, 64, 64)
    made = api("POST", "/api/images/generations", json={
        "prompt": "a blue front door", "user": "erin", "inputImages": [data_uri(photo)],
    })  # fmt: skip
    assert made.status_code == 200, made.text
    generation = made.json()
    output, given = generation["outputImages"][0], generation["inputImages"][0]
    assert api("PUT", "/api/credits", json={"user": "erin", "amount": 50}).status_code == 200
    assert requests.get(output["permanentUrl"], timeout=10).status_code == 200

    erased = api("DELETE", "/api/users/erin")
    assert erased.status_code == 200, erased.text
    assert erased.json() == {"user": "erin", "generations": 1, "images": 2, "arweaveCopies": []}
    assert api("GET", "/api/images/generations?user=erin").json()["results"] == []
    assert api("GET", f"/api/images/generations/{generation['id']}").status_code == 404
    assert api("GET", "/api/credits?user=erin").json()["balance"] == 0
    assert requests.get(output["permanentUrl"], timeout=10).status_code == 404, "at once"
    # The sweep takes the blobs at its next pass: then signed URLs stop answering too.
    deadline = time.monotonic() + 15
    while requests.get(output["url"], timeout=10).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert requests.get(output["url"], timeout=10).status_code == 404
    assert requests.get(given["url"], timeout=10).status_code == 404


def test_no_model_server_or_callback_on_the_platform_s_own_network_is_attached_or_reached(guarded):
    listener = ConnectionCounter(png("x", 1, 64, 64))
    try:
        url = f"http://127.0.0.1:{listener.port}"
        model = {"name": "inside", "provider": "openai", "servers": [{"url": url + "/v1"}]}
        refused = guarded("POST", "/api/models", json=model)  # even by an admin key
        assert refused.status_code == 400 and "not a public address" in refused.json()["message"], (
            refused.text
        )
        body = {"prompt": "a", "callbackUrl": url + "/hook", "async": True}
        hooked = guarded("POST", "/api/images/generations", json=body)
        assert hooked.status_code == 200, hooked.text
        deadline = time.monotonic() + 20
        attempts = 0
        while attempts == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            with psycopg.connect(guarded.platform.database_url) as conn:
                row = conn.execute("SELECT attempts, last_error FROM webhook_deliveries").fetchone()
            attempts, error = row if row else (0, "")
        assert attempts >= 1 and "not a public address" in error, error
        assert listener.connections == 0
    finally:
        listener.stop()
