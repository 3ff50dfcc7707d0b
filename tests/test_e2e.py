"""The platform as processes (Envoy, catalog, storage, generator) over REST and gRPC."""

from __future__ import annotations

import io
import json
import signal
import time
import uuid

import grpc
import psycopg
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from imagegen.generator.v1 import generator_pb2, generator_pb2_grpc
from PIL import Image

from services.storage.domain import URL_STABLE_SECONDS
from tests.conftest import create_project, running_platform
from tools.supervisor import Platform

BOOTSTRAP_KEY = "sk_e2e_bootstrap_" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def platform(pg, tmp_path_factory):
    with running_platform(
        pg,
        tmp_path_factory,
        BOOTSTRAP_KEY,
        IMAGEGEN_UNUSED_BLOB_GRACE_SECONDS="0.5",
        IMAGEGEN_BLOB_SWEEP_INTERVAL_SECONDS="0.2",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def api(platform):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {BOOTSTRAP_KEY}"
    base = platform.gateway_url

    def call(method: str, path: str, **kwargs) -> requests.Response:
        return session.request(method, base + path, timeout=60, **kwargs)

    return call


def _count_generations(platform) -> int:
    with psycopg.connect(platform.database_url) as conn:
        return conn.execute("SELECT count(*) FROM generations").fetchone()[0]


def test_create_is_synchronous_and_answers_the_stored_images(api):
    answer = api("POST", "/api/images/generations", json={
        "prompt": "a misty lake at sunset", "user": "alice", "n": 2, "width": 128, "height": 64, "seed": 42,
        "negativePrompt": "people",
    })  # fmt: skip
    assert answer.status_code == 200, answer.text
    generation = answer.json()
    assert generation["id"].startswith("img_") and generation["status"] == "completed"
    assert generation["projectId"].startswith("pro_") and generation["modelId"].startswith("mod_")
    assert generation["serverId"].startswith("srv_") and generation["model"] == "procedural"
    assert (generation["user"], generation["seed"], generation["negativePrompt"]) == ("alice", 42, "people")
    images = generation["outputImages"]
    assert len(images) == 2 and images[0]["sha256"] != images[1]["sha256"]
    for image in images:
        assert image["id"].startswith("ima_") and image["imageGenerationId"] == generation["id"]
        fetched = requests.get(image["url"], timeout=10)  # no key: the signature is the credential
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(fetched.content)).size == (128, 64)


def test_same_prompt_seed_and_size_give_the_same_pixels_in_files_of_their_own(api):
    body = {"prompt": "twin peaks", "seed": 7, "width": 64, "height": 64}
    first = api("POST", "/api/images/generations", json=body).json()
    second = api("POST", "/api/images/generations", json=body).json()
    assert first["id"] != second["id"]
    files = [requests.get(g["outputImages"][0]["url"], timeout=10).content for g in (first, second)]
    pixels = [Image.open(io.BytesIO(f)).convert("RGB").tobytes() for f in files]
    assert pixels[0] == pixels[1]
    # Each file carries its own signed manifest, so its bytes (and permanent URL) are its own.
    assert first["outputImages"][0]["sha256"] != second["outputImages"][0]["sha256"]
    assert first["outputImages"][0]["manifestLabel"] != second["outputImages"][0]["manifestLabel"]


def test_meteron_headers_supply_model_and_user(api):
    answer = api(
        "POST", "/api/images/generations", json={"prompt": "x", "width": 64, "height": 64},
        headers={"X-Model": "procedural", "X-User": "header-user"},
    )  # fmt: skip
    assert answer.status_code == 200 and answer.json()["user"] == "header-user"


def test_list_get_and_delete(api):
    user = "lister-" + uuid.uuid4().hex[:8]
    ids = [
        api(
            "POST",
            "/api/images/generations",
            json={"prompt": f"p{i}", "user": user, "width": 64, "height": 64},
        ).json()["id"]
        for i in range(5)
    ]
    page = api("GET", f"/api/images/generations?user={user}&pageSize=2").json()
    assert [g["id"] for g in page["results"]] == ids[::-1][:2]
    assert page["pagination"]["pageSize"] == 2 and page["pagination"]["previousPageToken"] == ""
    token = page["pagination"]["nextPageToken"]
    second = api("GET", f"/api/images/generations?user={user}&pageSize=2&pageToken={token}").json()
    assert [g["id"] for g in second["results"]] == ids[::-1][2:4]
    assert api("GET", f"/api/images/generations?user={user}&status=failed").json()["results"] == []
    assert len(api("GET", f"/api/images/generations?user={user}&status=completed&model=procedural")
               .json()["results"]) == 5  # fmt: skip

    one = api("GET", f"/api/images/generations/{ids[0]}").json()
    first_url = one["outputImages"][0]["url"]
    time.sleep(1.1)
    again = api("GET", f"/api/images/generations/{ids[0]}").json()
    # Signed on every read, as of the URL window: the same URL for a while, so browsers cache the image.
    window = int(time.time()) // URL_STABLE_SECONDS
    if window == int(time.time() - 1.2) // URL_STABLE_SECONDS:
        assert again["outputImages"][0]["url"] == first_url
    assert requests.get(again["outputImages"][0]["url"], timeout=10).status_code == 200

    assert api("DELETE", f"/api/images/generations/{ids[0]}").status_code == 200
    assert api("GET", f"/api/images/generations/{ids[0]}").status_code == 404
    assert api("DELETE", f"/api/images/generations/{ids[0]}").status_code == 404
    # The blob goes once the sweep finds it unused for the grace period (0.5 s here).
    deadline = time.monotonic() + 10
    while requests.get(first_url, timeout=10).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert requests.get(first_url, timeout=10).status_code == 404, "the image went with its generation"


BAD_CREATES = [
    ({"prompt": ""}, 400, "prompt"),
    ({"prompt": "   "}, 400, "prompt"),
    ({"prompt": "x" * 4001}, 400, "4000"),
    ({"prompt": "x", "width": 32}, 400, "width"),
    ({"prompt": "x", "height": 4096}, 400, "height"),
    ({"prompt": "x", "width": 100}, 400, "multiple of 8"),
    ({"prompt": "x", "n": 5}, 400, "n must be"),
    ({"prompt": "x", "n": -1}, 400, "n must be"),
    ({"prompt": "x", "model": "no-such-model"}, 404, "procedural"),
    ({"prompt": "x", "width": "wide"}, 400, "width"),
]


@pytest.mark.parametrize(("body", "status", "mentions"), BAD_CREATES)
def test_bad_creates_get_a_clear_4xx_and_record_nothing(api, platform, body, status, mentions):
    before = _count_generations(platform)
    answer = api("POST", "/api/images/generations", json=body)
    assert answer.status_code == status, answer.text
    assert mentions in answer.text
    if answer.headers["content-type"].startswith("application/json"):
        assert answer.json()["code"] in (3, 5)
    assert _count_generations(platform) == before


@pytest.mark.parametrize(
    ("query", "mentions"),
    [("status=done", "status"), ("pageToken=not-a-token", "pageToken"), ("pageSize=-4", "pageSize"),
     ("pageSize=ten", "pageSize")],
)  # fmt: skip
def test_bad_list_queries_are_400(api, query, mentions):
    answer = api("GET", f"/api/images/generations?{query}")
    assert answer.status_code == 400 and mentions in answer.text


def test_malformed_json_oversized_bodies_and_unknown_paths(api, platform):
    before = _count_generations(platform)
    broken = api(
        "POST",
        "/api/images/generations",
        data=b'{"prompt": "x"',
        headers={"Content-Type": "application/json"},
    )
    assert broken.status_code == 400 and broken.json()["code"] == 3
    huge = api("POST", "/api/images/generations", data=json.dumps({"prompt": "x" * (13 * 1024 * 1024)}))
    assert huge.status_code == 413 and huge.json()["code"] == 3
    nowhere = api("GET", "/api/nothing/here")
    assert nowhere.status_code == 404 and nowhere.json()["code"] == 5
    assert _count_generations(platform) == before


def test_missing_or_wrong_keys_are_401_with_a_status_body(platform):
    url = platform.gateway_url + "/api/images/generations"
    for headers in ({}, {"Authorization": "Bearer sk_wrong"}, {"Authorization": "Basic abc"}):
        answer = requests.post(url, json={"prompt": "x"}, headers=headers, timeout=10)
        assert answer.status_code == 401
        assert answer.json()["code"] == 16 and "Bearer" in answer.json()["message"]


def test_projects_never_see_each_others_generations(api, platform):
    _, other_key = create_project(platform.database_url, "other")
    other = {"Authorization": f"Bearer {other_key}"}
    mine = api("POST", "/api/images/generations", json={"prompt": "mine", "width": 64, "height": 64}).json()
    url = platform.gateway_url + "/api/images/generations"
    assert requests.get(f"{url}/{mine['id']}", headers=other, timeout=10).status_code == 404
    assert requests.delete(f"{url}/{mine['id']}", headers=other, timeout=10).status_code == 404
    assert requests.get(url, headers=other, timeout=10).json()["results"] == []
    assert api("GET", f"/api/images/generations/{mine['id']}").status_code == 200


def test_grpc_clients_use_the_same_key_and_services_offer_health_and_reflection(platform):
    with grpc.insecure_channel(platform.target("generator")) as channel:
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        created = stub.CreateGeneration(
            generator_pb2.CreateGenerationRequest(prompt="over grpc", width=64, height=64),
            metadata=(("authorization", f"Bearer {BOOTSTRAP_KEY}"),),
        )
        assert created.status == "completed" and created.output_images[0].url
        with pytest.raises(grpc.RpcError) as error:
            stub.GetGeneration(generator_pb2.GetGenerationRequest(id=created.id))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for name in ("generator", "catalog", "storage"):
        with grpc.insecure_channel(platform.target(name)) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            # Both reflection protocols: v1 (grpcurl and Postman ask it first) and v1alpha. Their
            # messages are the same under another package name.
            for package in ("grpc.reflection.v1", "grpc.reflection.v1alpha"):
                reflect = channel.stream_stream(
                    f"/{package}.ServerReflection/ServerReflectionInfo",
                    request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                    response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
                )
                answers = reflect(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
                names = {s.name for s in next(answers).list_services_response.service}
                assert f"imagegen.{name}.v1" in " ".join(names), package
                assert "grpc.reflection.v1.ServerReflection" in names


def test_internal_rpcs_are_not_reachable_through_the_gateway(platform):
    answer = requests.post(
        platform.gateway_url + "/imagegen.catalog.v1.CatalogInternalService/Authenticate", json={}, timeout=10
    )
    assert answer.status_code == 404


def test_sigterm_lets_an_in_flight_generation_finish_then_stops(pg, tmp_path):
    key = "sk_drain_" + uuid.uuid4().hex
    running = Platform(
        env={
            "IMAGEGEN_DATABASE_URL": pg.create_database(),
            "IMAGEGEN_VAR_DIR": str(tmp_path),
            "IMAGEGEN_BOOTSTRAP_API_KEY": key,
        }
    )
    try:
        for name in ("catalog", "storage", "generator"):
            running._start_one(name, 0, tmp_path)
        with grpc.insecure_channel(running.target("generator")) as channel:
            stub = generator_pb2_grpc.GeneratorServiceStub(channel)
            # Four 2048x2048 renders take long enough to still be running when SIGTERM arrives.
            in_flight = stub.CreateGeneration.future(
                generator_pb2.CreateGenerationRequest(prompt="slow", n=4, width=2048, height=2048),
                metadata=(("authorization", f"Bearer {key}"),),
                timeout=60,
            )
            time.sleep(0.3)
            assert not in_flight.done()
            generator = running.processes["generator"]
            generator.send_signal(signal.SIGTERM)
            finished = in_flight.result()
            assert finished.status == "completed" and len(finished.output_images) == 4
            assert generator.wait(30) == 0
        assert running.stop_one("catalog", signal.SIGTERM, timeout=15) == 0
        assert running.stop_one("storage", signal.SIGTERM, timeout=15) == 0
    finally:
        running.stop()


def test_request_ids_are_carried_across_services_in_structured_logs(api, platform):
    request_id = "rid-" + uuid.uuid4().hex
    answer = api("POST", "/api/images/generations", json={"prompt": "x", "model": "nope"},
                 headers={"X-Request-Id": request_id})  # fmt: skip
    assert answer.status_code == 404
    time.sleep(0.2)
    for name in ("generator", "catalog"):
        entries = [json.loads(line) for line in (platform.log_dir / f"{name}.log").read_text().splitlines()
                   if line.startswith("{")]  # fmt: skip
        mine = [e for e in entries if e.get("request_id") == request_id]
        assert mine and mine[0]["service"] == name and mine[0]["code"] == "NOT_FOUND", name
