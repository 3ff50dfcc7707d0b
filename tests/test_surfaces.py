"""The Recoup and OpenAI surfaces, through the gateway, the second with the official `openai` package."""

from __future__ import annotations

import base64
import hashlib
import io
import uuid

import openai
import psycopg
import pytest
import requests
from PIL import Image

from tests.conftest import create_project, rest_client, running_platform
from tests.fakes import FakeModelServer, PhotoServer, png

BOOTSTRAP_KEY = "sk_surfaces_bootstrap_" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def platform(pg, tmp_path_factory):
    with running_platform(pg, tmp_path_factory, BOOTSTRAP_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def api(platform):
    return rest_client(platform, BOOTSTRAP_KEY)


def _generations(platform) -> int:
    with psycopg.connect(platform.database_url) as conn:
        return conn.execute("SELECT count(*) FROM generations").fetchone()[0]


# -- Recoup ---------------------------------------------------------------------------------------


def test_recoup_answers_the_documented_shape_with_a_permanent_url_and_provenance(api):
    account = str(uuid.uuid4())
    prompt = "a red bicycle, leaning on a wall"
    answer = api("GET", "/api/image/generate", params={"prompt": prompt, "account_id": account})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    (image,) = body["images"]
    data = base64.b64decode(image["base64"])
    assert image["mediaType"] == "image/png" and image["uint8Array"] == []
    assert Image.open(io.BytesIO(data)).size == (512, 512)
    assert body["warnings"] == []
    assert body["responses"][0]["finishReason"] == "stop"
    assert body["providerMetadata"] == {"model": "procedural", "size": "512x512"}
    # Words and punctuation marks: a, red, bicycle, ",", leaning, on, a, wall.
    assert body["usage"] == {"promptTokens": 8, "completionTokens": 1, "totalTokens": 9}
    provenance = body["provenance"]
    assert provenance["sha256"] == hashlib.sha256(data).hexdigest()
    assert provenance["validationState"] == "valid"
    assert provenance["manifestLabel"].startswith("urn:c2pa:")
    assert provenance["signer"] == "imagegen development signer"
    fetched = requests.get(body["imageUrl"], timeout=10)  # no key: a permanent URL
    assert fetched.status_code == 200 and fetched.content == data
    # account_id is the end user: the generation is listed, and counted, under it.
    listed = api("GET", "/api/images/generations", params={"user": account}).json()["results"]
    assert [g["outputImages"][0]["sha256"] for g in listed] == [provenance["sha256"]]


def test_recoup_adds_the_bytes_as_numbers_when_asked(api):
    answer = api(
        "GET", "/api/image/generate",
        params={"prompt": "tiny", "account_id": str(uuid.uuid4()), "include": "uint8Array"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    (image,) = answer.json()["images"]
    assert bytes(image["uint8Array"]) == base64.b64decode(image["base64"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"account_id": str(uuid.uuid4())}, "prompt"),
        ({"prompt": "   ", "account_id": str(uuid.uuid4())}, "prompt"),
        ({"prompt": "x" * 1001, "account_id": str(uuid.uuid4())}, "prompt"),
        ({"prompt": "ok"}, "account_id"),
        ({"prompt": "ok", "account_id": "not-a-uuid"}, "account_id"),
        ({"prompt": "ok", "account_id": str(uuid.uuid4()) + "0"}, "account_id"),
        ({"prompt": "ok", "account_id": "'; DROP TABLE generations; --"}, "account_id"),
        ({"prompt": "ok", "account_id": str(uuid.uuid4()), "include": "everything"}, "include"),
    ],
)
def test_recoup_refuses_bad_input_with_400_and_records_nothing(api, platform, params, field):
    before = _generations(platform)
    answer = api("GET", "/api/image/generate", params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["details"][0]["fieldViolations"][0]["field"] == field
    assert _generations(platform) == before


def test_recoup_needs_a_key_and_applies_the_users_limits(platform):
    project_id, key = create_project(platform.database_url, "recoup-limits")
    tenant = rest_client(platform, key)
    params = {"prompt": "limited", "account_id": str(uuid.uuid4())}
    assert rest_client(platform, None)("GET", "/api/image/generate", params=params).status_code == 401
    limited = tenant("PATCH", "/api/models/procedural", json={"userLimits": {"daily": 1}})
    assert limited.status_code == 200, limited.text
    assert tenant("GET", "/api/image/generate", params=params).status_code == 200
    refused = tenant("GET", "/api/image/generate", params=params)
    assert refused.status_code == 429 and "daily limit" in refused.json()["message"]
    # Another account is counted on its own.
    other = {**params, "account_id": str(uuid.uuid4())}
    assert tenant("GET", "/api/image/generate", params=other).status_code == 200


def test_recoup_without_permanent_urls_answers_an_expiring_url_and_says_so(platform):
    project_id, key = create_project(platform.database_url, "recoup-expiring")
    tenant = rest_client(platform, key)
    assert tenant("PATCH", f"/api/projects/{project_id}", json={"permanentUrls": False}).status_code == 200
    body = tenant(
        "GET", "/api/image/generate", params={"prompt": "p", "account_id": str(uuid.uuid4())}
    ).json()
    assert "/api/files/" in body["imageUrl"] and "signature=" in body["imageUrl"]
    assert body["warnings"][0]["setting"] == "permanentUrls"


# -- OpenAI ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(platform):
    return openai.OpenAI(base_url=f"{platform.gateway_url}/v1", api_key=BOOTSTRAP_KEY, max_retries=0)


def test_the_openai_package_gets_base64_images(client, api):
    result = client.images.generate(
        model="procedural", prompt="a harbour at night", n=2, size="64x64", response_format="b64_json",
        user="openai-user",
    )  # fmt: skip
    assert result.created > 0 and len(result.data) == 2
    images = [base64.b64decode(item.b64_json) for item in result.data]
    assert all(Image.open(io.BytesIO(data)).size == (64, 64) for data in images)
    assert images[0] != images[1]
    listed = api("GET", "/api/images/generations", params={"user": "openai-user"}).json()["results"]
    assert {i["sha256"] for i in listed[0]["outputImages"]} == {hashlib.sha256(d).hexdigest() for d in images}


def test_the_openai_package_gets_urls_that_work_without_a_key(client):
    result = client.images.generate(prompt="a lantern", size="128x64")
    (item,) = result.data
    assert item.b64_json is None and "/api/permanent/" in item.url
    fetched = requests.get(item.url, timeout=10)
    assert fetched.status_code == 200 and Image.open(io.BytesIO(fetched.content)).size == (128, 64)


def test_openai_errors_come_in_openais_shape_and_statuses(client, platform):
    with pytest.raises(openai.BadRequestError) as bad_size:
        client.images.generate(prompt="x", size="huge")
    assert bad_size.value.status_code == 400
    assert bad_size.value.body["param"] == "size" and bad_size.value.body["type"] == "invalid_request_error"

    with pytest.raises(openai.BadRequestError) as too_many:
        client.images.generate(prompt="x", n=5, size="64x64")
    assert too_many.value.body["param"] == "n"

    with pytest.raises(openai.BadRequestError) as no_prompt:
        client.images.generate(prompt="", size="64x64")
    assert no_prompt.value.body["param"] == "prompt"

    with pytest.raises(openai.NotFoundError) as unknown_model:
        client.images.generate(model="dall-e-9", prompt="x", size="64x64")
    assert unknown_model.value.body["code"] == "model_not_found"

    stranger = openai.OpenAI(base_url=f"{platform.gateway_url}/v1", api_key="sk_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as wrong_key:
        stranger.images.generate(prompt="x", size="64x64")
    assert wrong_key.value.body["code"] == "invalid_api_key"

    raw = requests.post(
        f"{platform.gateway_url}/v1/images/generations", data=b"{not json",
        headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}", "Content-Type": "application/json"}, timeout=10,
    )  # fmt: skip
    assert raw.status_code == 400 and set(raw.json()["error"]) == {"message", "type", "param", "code"}
    unknown = requests.post(
        f"{platform.gateway_url}/v1/images/generations", json={"prompt": "x", "steps": 30},
        headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"}, timeout=10,
    )  # fmt: skip
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "steps"


def test_a_publishable_key_makes_openai_images_for_its_own_user_only(platform, api):
    project_id, _ = create_project(platform.database_url, "openai-page")
    created = api("POST", f"/api/projects/{project_id}/keys",
                  json={"name": "page", "kind": "publishable", "user": "page-user"})  # fmt: skip
    assert created.status_code == 200, created.text
    page = openai.OpenAI(base_url=f"{platform.gateway_url}/v1", api_key=created.json()["key"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        page.images.generate(prompt="not mine", size="64x64", user="someone-else")
    assert "publishable" in refused.value.body["message"]
    page.images.generate(prompt="mine", size="64x64")
    with psycopg.connect(platform.database_url) as conn:
        users = conn.execute(
            "SELECT end_user FROM generations WHERE project_id = %s", (project_id,)
        ).fetchall()
    assert users == [("page-user",)], "the refused one recorded nothing; the other is the key's user's"


def test_openai_rate_limits_arrive_as_rate_limit_errors_with_retry_after(platform, api):
    project_id, _ = create_project(platform.database_url, "openai-rate")
    created = api("POST", f"/api/projects/{project_id}/keys",
                  json={"name": "slow", "rateLimit": {"requestsPerSecond": 0.1, "burst": 1}})  # fmt: skip
    assert created.status_code == 200, created.text
    slow = openai.OpenAI(base_url=f"{platform.gateway_url}/v1", api_key=created.json()["key"], max_retries=0)
    slow.images.generate(prompt="first", size="64x64")
    with pytest.raises(openai.RateLimitError) as limited:
        slow.images.generate(prompt="second", size="64x64")
    assert limited.value.body["type"] == "rate_limit_error"
    assert int(limited.value.response.headers["retry-after"]) >= 1


@pytest.fixture
def fake():
    server = FakeModelServer()
    yield server
    server.stop()


def _openai_model(api, fake) -> str:
    name = "edits-" + uuid.uuid4().hex[:6]
    servers = [{"url": fake.url + "/v1"}]
    answer = api("POST", "/api/models", json={
        "name": name, "provider": "openai", "upstreamModel": "gpt-image-1", "servers": servers,
    })  # fmt: skip
    assert answer.status_code == 200, answer.text
    return name


def _mask(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), (0, 0, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_openai_package_edits_an_image_with_a_mask(client, api, fake):
    model = _openai_model(api, fake)
    photo, mask = png("a kitchen", 4, 96, 64), _mask(96, 64)
    result = client.images.edit(
        model=model, image=("kitchen.png", photo, "image/png"), mask=("mask.png", mask, "image/png"),
        prompt="a kitchen with a green fridge", quality="high", response_format="b64_json",
    )  # fmt: skip
    [item] = result.data
    assert Image.open(io.BytesIO(base64.b64decode(item.b64_json))).size == (96, 64)
    [edit] = fake.stats.edits
    assert [data for _, data in edit["files"]["image"]] == [photo]
    assert [data for _, data in edit["files"]["mask"]] == [mask]
    assert edit["fields"]["prompt"] == ["a kitchen with a green fridge"] and edit["fields"]["quality"] == [
        "high"
    ]
    listed = api("GET", f"/api/images/generations?model={model}").json()["results"][0]
    assert [i["role"] for i in listed["inputImages"]] == ["image", "mask"]


def test_the_openai_package_edits_several_images_and_procedural_repaints_the_first(client, api, fake):
    model = _openai_model(api, fake)
    first, second = png("a chair", 1, 64, 64), png("a lamp", 2, 64, 64)
    client.images.edit(model=model, image=[("a.png", first, "image/png"), ("b.png", second, "image/png")],
                       prompt="a reading corner")  # fmt: skip
    [edit] = fake.stats.edits
    assert [data for _, data in edit["files"]["image[]"]] == [first, second]
    # The built-in model keeps the input's size and repaints it.
    result = client.images.edit(image=("c.png", png("a city", 3, 96, 72), "image/png"), prompt="a forest")
    fetched = requests.get(result.data[0].url, timeout=10)
    assert Image.open(io.BytesIO(fetched.content)).size == (96, 72)


def test_openai_model_fields_reach_an_openai_server(client, api, fake):
    model = _openai_model(api, fake)
    client.images.generate(model=model, prompt="a boat", size="64x64", quality="hd", style="vivid")
    [body] = fake.stats.bodies
    assert (body["quality"], body["style"], body["size"], body["model"]) == (
        "hd",
        "vivid",
        "64x64",
        "gpt-image-1",
    )


def test_recoup_files_are_reference_images(api):
    photos = PhotoServer({"ref.png": ("image/png", png("a mountain", 8, 96, 96))})
    try:
        account = str(uuid.uuid4())
        files = f"{photos.base_url}/ref.png:image/png"
        answer = api(
            "GET", "/api/image/generate", params={"prompt": "a valley", "account_id": account, "files": files}
        )
        assert answer.status_code == 200, answer.text
        assert photos.requests == ["/ref.png"]
        listed = api("GET", "/api/images/generations", params={"user": account}).json()["results"]
        assert listed[0]["inputImages"][0]["width"] == 96
        bad = api(
            "GET", "/api/image/generate", params={"prompt": "x", "account_id": account, "files": "nope"}
        )
        assert bad.status_code == 400 and "url:mediaType" in bad.json()["message"]
    finally:
        photos.stop()
