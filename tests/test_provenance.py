"""Content Credentials and permanent URLs, through the platform's processes and read back with the C2PA
SDK from outside them."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import urllib.parse
import uuid

import c2pa
import pytest
import requests
from PIL import Image

from services.storage.domain import URL_STABLE_SECONDS
from tests.conftest import create_project, rest_client, running_platform
from tests.fakes import FakeModelServer

BOOTSTRAP_KEY = "sk_provenance_bootstrap_" + uuid.uuid4().hex
SMALL = {"width": 64, "height": 64}


@pytest.fixture(scope="module")
def platform(pg, tmp_path_factory):
    # Deleted images leave storage within the tests.
    sweep = {"IMAGEGEN_UNUSED_BLOB_GRACE_SECONDS": "1", "IMAGEGEN_BLOB_SWEEP_INTERVAL_SECONDS": "0.5"}
    with running_platform(pg, tmp_path_factory, BOOTSTRAP_KEY, **sweep) as running:
        yield running


@pytest.fixture(scope="module")
def api(platform):
    return rest_client(platform, BOOTSTRAP_KEY)


@pytest.fixture(scope="module")
def dev_ca(platform) -> str:
    return (platform.log_dir / "c2pa" / "dev-ca.pem").read_text()


def read_manifest(data: bytes, trust_anchors: str | None) -> tuple[str, dict]:
    """The SDK's validation state and manifest store, as any C2PA reader sees the file."""
    settings: dict = {"verify": {"remote_manifest_fetch": False}}
    if trust_anchors:
        settings["trust"] = {"trust_anchors": trust_anchors}
    with c2pa.Reader("image/png", io.BytesIO(data), context=c2pa.Context.from_dict(settings)) as reader:
        return reader.get_validation_state(), json.loads(reader.json())


def generate(api, **fields) -> dict:
    answer = api(
        "POST", "/api/images/generations", json={"prompt": "a lighthouse at dusk", **SMALL, **fields}
    )
    assert answer.status_code == 200, answer.text
    generation = answer.json()
    assert generation["status"] == "completed", generation
    return generation


def fetch(image: dict) -> bytes:
    answer = requests.get(image["url"], timeout=10)
    assert answer.status_code == 200
    return answer.content


def _expires(url: str) -> int:
    return int(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["expires"])


def created_action(store: dict) -> dict:
    manifest = store["manifests"][store["active_manifest"]]
    (actions,) = [a for a in manifest["assertions"] if a["label"] == "c2pa.actions.v2"]
    (created,) = [a for a in actions["data"]["actions"] if a["action"] == "c2pa.created"]
    return created


def test_every_image_carries_a_signed_manifest_that_an_outside_reader_trusts(api, platform, dev_ca):
    prompt = "a lighthouse at dusk, secret recipe inside"
    generation = generate(api, prompt=prompt, n=2)
    for index, image in enumerate(generation["outputImages"]):
        data = fetch(image)
        assert hashlib.sha256(data).hexdigest() == image["sha256"]
        state, store = read_manifest(data, dev_ca)
        assert state == "Trusted"
        assert store["active_manifest"] == image["manifestLabel"]
        manifest = store["manifests"][image["manifestLabel"]]
        assert manifest["claim_generator_info"][0]["name"] == "imagegen"
        assert manifest["signature_info"]["common_name"] == "imagegen development signer"
        created = created_action(store)
        # The built-in renderer learned from nothing: saying "trained" would be false provenance.
        assert created["digitalSourceType"].endswith("/algorithmicMedia")
        parameters = created["parameters"]
        assert parameters["imagegen.model"] == "procedural"
        assert parameters["imagegen.server"] == generation["serverId"]
        assert parameters["imagegen.generation"] == generation["id"]
        assert parameters["imagegen.image_index"] == index
        assert parameters["imagegen.prompt_sha256"] == hashlib.sha256(prompt.encode()).hexdigest()
        assert "secret recipe" not in json.dumps(store), "the prompt itself stays out by default"
        # Without this platform's CA as an anchor the signature still verifies, but the signer is unknown.
        assert read_manifest(data, None)[0] == "Valid"
    assert "development CA" in (platform.log_dir / "generator.log").read_text()


def test_a_model_server_image_is_declared_trained_algorithmic_media(api):
    fake = FakeModelServer()
    try:
        name = f"openai-{uuid.uuid4().hex[:6]}"
        model = {"name": name, "provider": "openai", "upstreamModel": "gpt-image-1",
                 "servers": [{"url": f"{fake.url}/v1", "apiKey": "sk-upstream"}]}  # fmt: skip
        assert api("POST", "/api/models", json=model).status_code == 200
        generation = generate(api, model=name)
    finally:
        fake.stop()
    _, store = read_manifest(fetch(generation["outputImages"][0]), None)
    created = created_action(store)
    assert created["digitalSourceType"] == (
        "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    )
    assert created["parameters"]["imagegen.upstream_model"] == "gpt-image-1"
    assert created["parameters"]["imagegen.provider"] == "openai"


def test_provenance_endpoint_reports_valid_with_the_manifest_store(api):
    generation = generate(api)
    answer = api("GET", f"/api/images/generations/{generation['id']}/provenance")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == generation["id"]
    (image,) = body["images"]
    expected = generation["outputImages"][0]
    assert image["imageId"] == expected["id"] and image["sha256"] == expected["sha256"]
    assert image["validationState"] == "valid" and image["failures"] == []
    assert image["manifestLabel"] == expected["manifestLabel"]
    assert image["signer"]["commonName"] == "imagegen development signer"
    assert image["manifestStore"]["active_manifest"] == expected["manifestLabel"]
    assert api("GET", "/api/images/generations/img_00000000000000000000000000/provenance").status_code == 404


def test_verify_says_valid_for_ours_invalid_after_one_changed_byte_and_absent_for_a_plain_png(
    api, platform, dev_ca
):
    data = fetch(generate(api)["outputImages"][0])

    def verify(body: bytes, content_type: str = "image/png") -> dict:
        answer = api("POST", "/api/provenance:verify", data=body, headers={"Content-Type": content_type})
        assert answer.status_code == 200, answer.text
        return answer.json()

    ours = verify(data)
    assert ours["validationState"] == "valid"
    assert ours["sha256"] == hashlib.sha256(data).hexdigest()
    # Octet-stream bodies are sniffed.
    assert verify(data, "application/octet-stream")["validationState"] == "valid"

    # One byte of pixel data: the last IDAT byte before the IEND chunk.
    tampered = bytearray(data)
    tampered[data.rindex(b"IEND") - 9] ^= 0x01
    altered = verify(bytes(tampered))
    assert altered["validationState"] == "invalid"
    assert "assertion.dataHash.mismatch" in altered["failures"]
    assert read_manifest(bytes(tampered), dev_ca)[0] == "Invalid"

    plain = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(plain, "PNG")
    absent = verify(plain.getvalue())
    assert absent["validationState"] == "absent" and "no C2PA manifest" in absent["message"]
    assert "signer" not in absent and "manifestStore" not in absent

    refused = api(
        "POST", "/api/provenance:verify", data=b"not an image", headers={"Content-Type": "text/plain"}
    )
    assert refused.status_code == 400
    empty = api("POST", "/api/provenance:verify", data=b"", headers={"Content-Type": "image/png"})
    assert empty.status_code == 400
    keyless = rest_client(platform, None)
    assert keyless("POST", "/api/provenance:verify", data=data).status_code == 401


def test_a_model_can_turn_signing_off(api):
    name = f"unsigned-{uuid.uuid4().hex[:6]}"
    model = {"name": name, "provider": "procedural", "servers": [{"url": "builtin://procedural"}],
             "contentCredentials": False}  # fmt: skip
    created = api("POST", "/api/models", json=model)
    assert created.status_code == 200, created.text
    assert created.json()["contentCredentials"] is False
    image = generate(api, model=name)["outputImages"][0]
    assert image["manifestLabel"] == ""
    assert c2pa.Reader.try_create("image/png", io.BytesIO(fetch(image))) is None
    turned_on = api("PATCH", f"/api/models/{name}", json={"contentCredentials": True})
    assert turned_on.json()["contentCredentials"] is True
    assert generate(api, model=name)["outputImages"][0]["manifestLabel"].startswith("urn:c2pa:")


def test_permanent_urls_need_no_key_and_answer_etag_ranges_and_304(api, platform):
    image = generate(api)["outputImages"][0]
    url = image["permanentUrl"]
    # Random, not the sha256 anyone could recompute from an unsigned image's prompt, seed and size.
    issued = url.rpartition("/api/permanent/")[2]
    assert re.fullmatch(r"[0-9a-f]{64}\.png", issued) and image["sha256"] not in issued
    whole = requests.get(url, timeout=10)
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "image/png"
    assert whole.headers["etag"] == f'"{image["sha256"]}"'
    assert whole.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert whole.headers["accept-ranges"] == "bytes"
    assert hashlib.sha256(whole.content).hexdigest() == image["sha256"]
    size = len(whole.content)

    part = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
    assert part.status_code == 206 and part.content == whole.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{size}"
    tail = requests.get(url, headers={"Range": "bytes=-7"}, timeout=10)
    assert tail.status_code == 206 and tail.content == whole.content[-7:]
    rest = requests.get(url, headers={"Range": f"bytes={size - 3}-"}, timeout=10)
    assert rest.status_code == 206 and rest.content == whole.content[-3:]
    beyond = requests.get(url, headers={"Range": f"bytes={size}-"}, timeout=10)
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"

    cached = requests.get(url, headers={"If-None-Match": whole.headers["etag"]}, timeout=10)
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["etag"] == whole.headers["etag"]
    other = requests.get(url, headers={"If-None-Match": '"something-else"'}, timeout=10)
    assert other.status_code == 200 and other.content == whole.content

    # Unknown, malformed and path-shaped keys are all simply not there.
    guesses = [
        "0" * 64 + ".png",
        image["sha256"] + ".png",
        issued[:-4] + ".jpg",
        "../../etc/passwd",
        issued[:-4],
    ]
    for key in guesses:
        assert requests.get(f"{platform.gateway_url}/api/permanent/{key}", timeout=10).status_code == 404


def test_a_project_can_turn_permanent_urls_off_and_on(api, platform):
    project_id, key = create_project(platform.database_url, "permanence")
    tenant = rest_client(platform, key)
    image = generate(tenant)["outputImages"][0]
    url = image["permanentUrl"]
    assert requests.get(url, timeout=10).status_code == 200

    off = tenant("PATCH", f"/api/projects/{project_id}", json={"permanentUrls": False})
    assert off.status_code == 200 and off.json()["permanentUrls"] is False
    assert requests.get(url, timeout=10).status_code == 404
    assert "permanentUrl" not in _first_image(tenant)
    # Its other URLs still work: only the never-expiring kind is gone.
    assert requests.get(_first_image(tenant)["url"], timeout=10).status_code == 200

    # Another project's secret key cannot change it; an admin key can.
    _, other_key = create_project(platform.database_url, "neighbour")
    other = rest_client(platform, other_key)
    assert other("PATCH", f"/api/projects/{project_id}", json={"permanentUrls": True}).status_code == 403
    assert api("PATCH", f"/api/projects/{project_id}", json={}).json()["permanentUrls"] is False
    on = tenant("PATCH", f"/api/projects/{project_id}", json={"permanentUrls": True})
    assert on.json()["permanentUrls"] is True
    assert requests.get(url, timeout=10).status_code == 200


def _first_image(api) -> dict:
    return api("GET", "/api/images/generations").json()["results"][0]["outputImages"][0]


def test_permanent_urls_survive_a_restart_and_deletion_ends_them(api, platform):
    image = generate(api)["outputImages"][0]
    before = requests.get(image["permanentUrl"], timeout=10).content
    gateway_port = platform.ports["gateway"]
    platform.stop()
    platform.ports = {}
    platform.start(ports={"gateway": gateway_port}, log_dir=platform.log_dir)
    after = requests.get(image["permanentUrl"], timeout=10)
    assert after.status_code == 200 and after.content == before
    generation_id = image["imageGenerationId"]
    assert api("DELETE", f"/api/images/generations/{generation_id}").status_code == 200
    assert requests.get(image["permanentUrl"], timeout=10).status_code == 404


def test_images_have_webp_variants_signed_as_resizes_of_them_and_swept_with_them(api, platform, dev_ca):
    generation = generate(api, prompt="a wide harbour", width=600, height=400, n=2)
    small = generate(api, prompt="a small harbour")
    assert small["outputImages"][0]["variants"] == [], "no variant at or above an image's own width"
    image = generation["outputImages"][0]
    assert [(v["width"], v["height"], v["contentType"]) for v in image["variants"]] == [
        (256, 171, "image/webp"), (512, 341, "image/webp")]  # fmt: skip
    original = fetch(image)
    for variant in image["variants"]:
        answer = requests.get(variant["url"], timeout=10)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/webp"
        assert "max-age" in answer.headers["cache-control"]
        with Image.open(io.BytesIO(answer.content)) as opened:
            assert (opened.format, opened.size) == ("WEBP", (variant["width"], variant["height"]))
        settings = {"verify": {"remote_manifest_fetch": False}, "trust": {"trust_anchors": dev_ca}}
        with c2pa.Reader(
            "image/webp", io.BytesIO(answer.content), context=c2pa.Context.from_dict(settings)
        ) as r:
            state, store = r.get_validation_state(), json.loads(r.json())
        assert state == "Trusted"
        manifest = store["manifests"][store["active_manifest"]]
        (actions,) = [a for a in manifest["assertions"] if a["label"] == "c2pa.actions.v2"]
        assert [a["action"] for a in actions["data"]["actions"]][-1] == "c2pa.resized"
        (parent,) = [i for i in manifest["ingredients"] if i["relationship"] == "parentOf"]
        assert parent["active_manifest"] == image["manifestLabel"], "the original, with its own manifest"
        assert len(answer.content) < len(original)
    # Reads within the URL window answer the same URLs, so a gallery's browser keeps them.
    again = api("GET", f"/api/images/generations/{generation['id']}").json()["outputImages"][0]
    listed = api("GET", f"/api/images/generations?id={generation['id']}").json()["results"][0]
    for read in (again, listed["outputImages"][0]):
        assert [v["url"] for v in read["variants"]] == [v["url"] for v in image["variants"]] or (
            _expires(read["url"]) - _expires(image["url"]) == URL_STABLE_SECONDS
        ), "the same URLs, unless a window boundary fell between the reads"

    assert api("DELETE", f"/api/images/generations/{generation['id']}").status_code == 200
    objects = platform.log_dir / "objects"
    variant_files = [p for p in objects.rglob("*.webp") if image["sha256"] in p.name]
    assert len(variant_files) == 2, "stored under keys derived from the original's"
    deadline = time.monotonic() + 30
    while any(p.exists() for p in variant_files) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(p.exists() for p in variant_files), "swept with the original"


def test_a_gallery_page_of_fifty_thumbnails_moves_at_most_a_few_megabytes(api):
    generation = generate(api, prompt="a detailed mountain lake at dawn", width=1024, height=1024, n=4)
    originals = [len(fetch(image)) for image in generation["outputImages"]]
    thumbnails = [len(requests.get(image["variants"][0]["url"], timeout=10).content)
                  for image in generation["outputImages"]]  # fmt: skip
    # A page of 50 shows each image's narrowest variant.
    page = 50 * max(thumbnails)
    assert page < 3 * 1024 * 1024, (thumbnails, page)
    assert max(thumbnails) * 5 < min(originals), (thumbnails, originals)
