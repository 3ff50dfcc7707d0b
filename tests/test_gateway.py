"""The real Envoy in front of the services: what a REST, gRPC, gRPC-Web or browser client sees of it."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import socket
import struct
import time
import uuid

import grpc
import psutil
import psycopg
import pytest
import requests
import yaml
from google.api import httpbody_pb2
from imagegen.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from imagegen.generator.v1 import generator_pb2, generator_pb2_grpc
from imagegen.storage.v1 import storage_pb2, storage_pb2_grpc

from gateway.config import GATEWAY_DIR
from tests.conftest import rest_client, running_platform
from tools.supervisor import Platform

BOOTSTRAP_KEY = "sk_gateway_" + uuid.uuid4().hex
APP_ORIGIN = "http://app.example"
MAX_BODY = 12 * 1024 * 1024


@pytest.fixture(scope="module")
def platform(pg, tmp_path_factory):
    with running_platform(
        pg,
        tmp_path_factory,
        BOOTSTRAP_KEY,
        IMAGEGEN_CORS_ALLOWED_ORIGINS=f"{APP_ORIGIN}, https://other.example",
        # The per-call log lines carry the deadline each call arrived with.
        IMAGEGEN_LOG_LEVEL="DEBUG",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def api(platform):
    return rest_client(platform, BOOTSTRAP_KEY)


@pytest.fixture(scope="module")
def image(api) -> dict:
    created = api("POST", "/api/images/generations", json={"prompt": "a gateway", "width": 64, "height": 64})
    assert created.status_code == 200, created.text
    return created.json()["outputImages"][0]


def _count_generations(platform) -> int:
    with psycopg.connect(platform.database_url) as conn:
        return conn.execute("SELECT count(*) FROM generations").fetchone()[0]


def _log_entries(log_file, **wanted) -> list[dict]:
    """Entries of a JSON-lines log with these fields; Envoy flushes its access log about once a second."""
    deadline = time.monotonic() + 10
    while True:
        lines = log_file.read_text().splitlines() if log_file.exists() else []
        entries = [json.loads(line) for line in lines if line.startswith("{")]
        found = [e for e in entries if all(e.get(k) == v for k, v in wanted.items())]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _grpc_web(platform, path: str, message: bytes, key: str | None = BOOTSTRAP_KEY) -> requests.Response:
    headers = {"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    frame = b"\x00" + struct.pack(">I", len(message)) + message
    return requests.post(platform.gateway_url + path, data=frame, headers=headers, timeout=10)


def _grpc_web_status(answer: requests.Response) -> str:
    """grpc-status of a gRPC-Web reply: a header when trailers-only, else the trailer frame."""
    if "grpc-status" in answer.headers:
        return answer.headers["grpc-status"]
    body, offset = answer.content, 0
    while offset < len(body):
        flags, length = body[offset], struct.unpack(">I", body[offset + 1 : offset + 5])[0]
        frame = body[offset + 5 : offset + 5 + length]
        if flags & 0x80:
            trailers = dict(line.split(":", 1) for line in frame.decode().strip().split("\r\n"))
            return trailers["grpc-status"].strip()
        offset += 5 + length
    raise AssertionError("no grpc-status in the gRPC-Web reply")


def test_openapi_json_is_the_committed_document(platform):
    answer = requests.get(platform.gateway_url + "/openapi.json", timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json() == yaml.safe_load((GATEWAY_DIR / "openapi.yaml").read_text())


def test_forty_large_bodies_with_bad_keys_at_once_leave_the_gateways_memory_where_it_was(platform):
    """The README's figures: refused bodies cost the gateway a few MiB (they took it from 68 to 800 MiB).
    Run before the module's other large bodies, whose freed pages Envoy's allocator keeps."""
    envoy = psutil.Process(platform.processes["gateway"].pid)
    body = b"{" + b" " * (11 * 2**20) + b"}"
    baseline = envoy.memory_info().rss

    def send(client: int) -> int:
        headers = {"Authorization": f"Bearer sk_no_such_key_{client}", "Content-Type": "application/json"}
        return requests.post(
            platform.gateway_url + "/api/images/generations", data=body, headers=headers
        ).status_code

    peak = baseline
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        answers = [pool.submit(send, client) for client in range(40)]
        while not all(answer.done() for answer in answers):
            peak = max(peak, envoy.memory_info().rss)
            time.sleep(0.02)
    assert [answer.result() for answer in answers] == [401] * 40
    # While the key is checked, each connection is read up to its buffer limit and no further (and a
    # read may overshoot it by one socket read): 40 of them hold at most twice the limit each, where
    # holding the bodies took 740 MiB.
    listener = yaml.safe_load((GATEWAY_DIR / "envoy.yaml").read_text())["static_resources"]["listeners"][0]
    bound = 40 * 2 * listener["per_connection_buffer_limit_bytes"]
    assert peak - baseline < bound, (baseline, peak)
    assert envoy.memory_info().rss - baseline < bound


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/api/images/generations", "application/json", json.dumps({"prompt": "x" * (MAX_BODY + 1)})),
        ("/api/images/generations", "application/json", json.dumps({"prompt": "x" * (40 * 1024 * 1024)})),
        ("/api/provenance:verify", "image/png", b"\x89PNG" + b"\x00" * MAX_BODY),
        ("/v1/images/generations", "application/json", json.dumps({"prompt": "x" * (MAX_BODY + 1)})),
    ],
)
def test_a_body_over_the_limit_is_413_json_and_reaches_no_service(api, platform, path, content_type, body):
    before = _count_generations(platform)
    request_id = "big-" + uuid.uuid4().hex
    answer = api("POST", path, data=body, headers={"Content-Type": content_type, "X-Request-Id": request_id})
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["code"] == 3 and "Too Large" in answer.json()["message"]
    assert _count_generations(platform) == before
    (logged,) = _log_entries(platform.log_dir / "gateway-access.log", requestId=request_id)
    assert logged["status"] == 413 and logged["upstreamHost"] is None, "no service saw the body"
    just_under = api("POST", "/api/images/generations", json={"prompt": "y" * (MAX_BODY - 64)})
    assert just_under.status_code == 400 and "prompt" in just_under.json()["message"], "the service decides"


def _answer_before_the_body(
    platform,
    key: str,
    framing: str,
    wait: float = 5.0,
    path: str = "/api/images/generations",
    content_type: str = "application/json",
) -> bytes:
    """Sends a create's headers declaring a large body (`framing`: a Content-Length or chunked) and none
    of the body, and reads what Envoy answers meanwhile (b"" if nothing came within `wait` seconds)."""
    host, port = platform.gateway_url.removeprefix("http://").rsplit(":", 1)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: {content_type}\r\n{framing}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=wait) as conn:
        conn.sendall(head.encode())
        if framing.startswith("Transfer-Encoding"):
            conn.sendall(b"400\r\n" + b"{" + b" " * 1023 + b"\r\n")
        received = b""
        try:
            while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pass
        return received


def test_a_chunked_body_over_the_limit_is_413_and_reaches_no_service(api, platform):
    """No length declared: the buffer holds the body until it passes the limit."""

    def chunks():
        yield b'{"name": "'
        for _ in range(MAX_BODY // 2**16 + 1):
            yield b"x" * 2**16
        yield b'"}'

    request_id = "chunked-" + uuid.uuid4().hex
    answer = api(
        "POST",
        "/api/models",
        data=chunks(),
        headers={"Content-Type": "application/json", "X-Request-Id": request_id},
    )
    assert answer.status_code == 413 and answer.json()["code"] == 3
    (logged,) = _log_entries(platform.log_dir / "gateway-access.log", requestId=request_id)
    assert logged["upstreamHost"] is None, "no service saw the body"


@pytest.mark.parametrize("framing", ["Content-Length: 11534336", "Transfer-Encoding: chunked"])
def test_a_large_body_with_a_bad_key_is_refused_before_it_is_read(platform, framing):
    """40 such bodies at once took Envoy past 800 MiB while it held them for a service to refuse
    (`python -m bench.gateway_memory`); the catalog now refuses the key before the body is read."""
    answered = _answer_before_the_body(platform, "sk_no_such_key", framing)
    head, _, body = answered.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), answered[:200]
    assert json.loads(body)["code"] == 16 and "not valid" in json.loads(body)["message"]
    assert b"x-imagegen-local-reply" not in head.lower()


def test_a_large_grpc_web_message_with_a_bad_key_is_refused_unread_with_a_grpc_status(platform):
    answered = _answer_before_the_body(
        platform,
        "sk_no_such_key",
        "Content-Length: 2097152",
        path="/imagegen.generator.v1.GeneratorService/CreateGeneration",
        content_type="application/grpc-web+proto",
    )
    # As Envoy answers gRPC-Web calls itself: the HTTP status (401) and the gRPC one agree.
    head = answered.partition(b"\r\n\r\n")[0].lower()
    assert b"grpc-status: 16" in head and b"content-type: application/grpc-web" in head, answered[:300]


def test_a_grpc_create_with_a_bad_key_never_reaches_the_generator(platform):
    """gRPC sends no length: a create is checked before its message is read whatever its size (40
    refused 11 MiB creates took Envoy to 460 MiB and the generator to 1.8 GB before)."""
    create = generator_pb2.CreateGenerationRequest(prompt="a large create", input="{" + " " * 2**21 + "}")
    request_id = "grpc-bad-key-" + uuid.uuid4().hex
    metadata = (("authorization", "Bearer sk_no_such_key"), ("x-request-id", request_id))
    target = platform.gateway_url.removeprefix("http://")
    with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as refused:
        generator_pb2_grpc.GeneratorServiceStub(channel).CreateGeneration(
            create, metadata=metadata, timeout=10
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not valid" in refused.value.details()
    (logged,) = _log_entries(platform.log_dir / "gateway-access.log", requestId=request_id)
    assert logged["upstreamHost"] is None, "the generator never saw the message"


def test_a_create_near_the_limit_is_answered_with_its_request(api):
    """A generation answers with its request (`requestBody`), so its answer is larger than the body: an
    11 MiB create was refused with gRPC's 16 MiB send limit (code 8, which REST saw as 429)."""
    body = b'{"prompt": "a large create", "width": 64, "height": 64' + b" " * (11 * 2**20) + b"}"
    answer = api("POST", "/api/images/generations", data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.json()["status"] == "completed", answer.text[:300]
    assert base64.b64decode(answer.json()["requestBody"]) == body


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(platform):
    answered = _answer_before_the_body(platform, BOOTSTRAP_KEY, f"Content-Length: {MAX_BODY + 1}")
    head, _, body = answered.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answered[:200]
    assert json.loads(body) == {"code": 3, "message": "Payload Too Large"}


def test_a_large_body_with_a_live_key_is_read_and_costs_no_token_of_its_rate(api, platform):
    # Envoy waits for the body of a live key: the check lets it through.
    assert _answer_before_the_body(platform, BOOTSTRAP_KEY, "Content-Length: 11534336", wait=1.5) == b""
    project = api("GET", "/api/caller").json()["projectId"]
    made = api(
        "POST",
        f"/api/projects/{project}/keys",
        json={"name": "one", "rateLimit": {"requestsPerSecond": 0.01}},
    ).json()
    one_request = rest_client(platform, made["key"])
    # The key's one token goes to the create itself (2 MiB, spaces mostly), not to the check before it.
    body = b'{"prompt": "a large body", "width": 64, "height": 64' + b" " * (2 * 1024 * 1024) + b"}"
    answer = one_request(
        "POST", "/api/images/generations", data=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 200 and answer.json()["status"] == "completed", answer.text
    assert one_request("GET", "/api/models").status_code == 429


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "says"),
    [
        ("GET", "/api/nothing/here", None, 404, 5, "Could not resolve /api/nothing/here"),
        ("PUT", "/api/images/generations", b"{}", 404, 5, "Could not resolve"),
        # Envoy's own refusals above and below; the create's JSON is the generator's to read.
        ("POST", "/api/images/generations", b'{"prompt": "x"', 400, 3, "the body is not valid JSON"),
        ("POST", "/api/images/generations", b'{"prompt": "x", "n": "two"}', 400, 3, "parse n field"),
        ("POST", "/api/images/generations", b'{"prompt": "x", "steps": 20}', 400, 3, "unknown field 'steps'"),
        ("GET", "/api/images/generations?pageSize=ten", None, 400, 3, "pageSize: invalid value"),
        (
            "POST",
            "/api/models",
            b'{"name": "m", "servers": [{"url": "http://m", "maxConcurrency": "x"}]}',
            400,
            3,
            "servers[0].maxConcurrency: invalid value",
        ),
        ("POST", "/api/models", b'{"name": "m", "upstreamModel": {}}', 400, 3, "for type upstreamModel"),
    ],
)
def test_every_envoy_error_is_status_json_naming_json_fields(api, method, path, body, status, code, says):
    answer = api(method, path, data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["code"] == code and says in answer.json()["message"], answer.text
    assert "_" not in answer.json()["message"].replace("TYPE_", ""), "JSON names, not proto names"


def test_empty_image_streams_have_no_event_stream_type_and_watches_are_not_cached(api, image):
    url = image["permanentUrl"]
    first = requests.get(url, timeout=10)
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    unchanged = requests.get(url, headers={"If-None-Match": first.headers["etag"]}, timeout=10)
    assert unchanged.status_code == 304 and "content-type" not in unchanged.headers
    past_the_end = requests.get(url, headers={"Range": "bytes=99999999-"}, timeout=10)
    assert past_the_end.status_code == 416 and past_the_end.headers["content-range"].startswith("bytes */")
    assert "content-type" not in past_the_end.headers
    watch = api("GET", f"/api/images/generations/{image['imageGenerationId']}:watch", stream=True)
    with watch:
        assert watch.status_code == 200
        assert watch.headers["content-type"] == "text/event-stream"
        assert watch.headers["cache-control"] == "no-cache"
        assert next(watch.iter_lines()).startswith(b"data: {")


def test_the_status_filter_acts_on_rest_only(platform, image):
    key = image["permanentUrl"].rsplit("/", 1)[1]
    with grpc.insecure_channel(platform.gateway_url.removeprefix("http://")) as channel:
        stub = generator_pb2_grpc.ImageServiceStub(channel)
        call = stub.GetPermanentImage(
            generator_pb2.GetPermanentImageRequest(key=key),
            metadata=[("range", "bytes=99999999-")],
            timeout=10,
        )
        assert list(call) == [] and call.code() == grpc.StatusCode.OK
        assert dict(call.initial_metadata())["x-imagegen-status"] == "416"


def test_rest_replies_carry_no_grpc_headers_but_grpc_web_replies_do(api, platform, image):
    answers = [
        api("GET", "/api/models"),
        api("GET", "/api/images/generations/img_missing"),
        api("GET", "/api/images/generations?pageSize=ten"),
        requests.get(image["permanentUrl"], timeout=10),
    ]
    assert [a.status_code for a in answers] == [200, 404, 400, 200]
    for answer in answers:
        assert not [h for h in answer.headers if h.lower().startswith("grpc-")], answer.headers
    web = _grpc_web(platform, "/imagegen.catalog.v1.CatalogService/ListModels", b"")
    assert web.status_code == 200 and web.headers["content-type"].startswith("application/grpc-web")
    assert _grpc_web_status(web) == "0"
    listed = catalog_pb2.ListModelsResponse.FromString(
        web.content[5 : 5 + struct.unpack(">I", web.content[1:5])[0]]
    )
    assert [m.name for m in listed.models] == ["procedural"]


def test_browsers_on_allowed_origins_may_call_the_api(platform):
    url = platform.gateway_url + "/api/images/generations"
    asked = "authorization, content-type, idempotency-key, prefer, x-model, x-user"
    preflight = requests.options(
        url,
        timeout=10,
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": asked,
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    allowed = {h.strip() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "prefer", "x-model", "x-user", "x-async",
            "x-priority", "x-grpc-web", "connect-protocol-version"} <= allowed  # fmt: skip
    page = {"Origin": APP_ORIGIN, "Authorization": f"Bearer {BOOTSTRAP_KEY}"}
    created = requests.post(
        url, timeout=30, json={"prompt": "from a page", "width": 64, "height": 64}, headers=page
    )
    assert created.status_code == 200 and created.json()["status"] == "completed"
    assert created.headers["access-control-allow-origin"] == APP_ORIGIN
    exposed = {h.strip() for h in created.headers["access-control-expose-headers"].split(",")}
    assert {"retry-after", "grpc-status", "grpc-message"} <= exposed
    evil = "http://evil.example"
    stranger = requests.options(
        url, timeout=10, headers={"Origin": evil, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in stranger.headers
    refused = requests.get(url, headers={**page, "Origin": evil}, timeout=10)
    assert "access-control-allow-origin" not in refused.headers


def test_grpc_and_grpc_web_share_the_port_and_reach_public_services_only(platform):
    target = platform.gateway_url.removeprefix("http://")
    auth = [("authorization", f"Bearer {BOOTSTRAP_KEY}")]
    with grpc.insecure_channel(target) as channel:
        models = catalog_pb2_grpc.CatalogServiceStub(channel).ListModels(
            catalog_pb2.ListModelsRequest(), metadata=auth
        )
        assert [m.name for m in models.models] == ["procedural"]
        internal_calls = [
            lambda: catalog_pb2_grpc.CatalogInternalServiceStub(channel).GetGeneration(
                catalog_pb2.GetGenerationRequest(), metadata=auth, timeout=10),
            lambda: storage_pb2_grpc.StorageInternalServiceStub(channel).SignUrls(
                storage_pb2.SignUrlsRequest(), metadata=auth, timeout=10),
        ]  # fmt: skip
        for call in internal_calls:
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    for path in ("/imagegen.catalog.v1.CatalogInternalService/GetGeneration",
                 "/imagegen.storage.v1.StorageInternalService/SignUrls"):  # fmt: skip
        assert _grpc_web_status(_grpc_web(platform, path, b"")) == "12"
        rest = requests.post(platform.gateway_url + path, json={}, timeout=10)
        assert rest.status_code == 404 and rest.json()["code"] == 5


def test_internal_services_answer_only_the_platform_s_own_services_even_on_their_own_ports(platform, image):
    auth = [("authorization", f"Bearer {BOOTSTRAP_KEY}")]
    generation_id = image["imageGenerationId"]
    project_id = image["projectId"]
    with grpc.insecure_channel(platform.target("catalog")) as channel:
        # The public service on the same port answers an API key as ever.
        assert catalog_pb2_grpc.CatalogServiceStub(channel).ListModels(
            catalog_pb2.ListModelsRequest(), metadata=auth
        )
        stub = catalog_pb2_grpc.CatalogInternalServiceStub(channel)
        request = catalog_pb2.GetGenerationRequest(project_id=project_id, id=generation_id)
        for metadata in (auth, [*auth, ("x-imagegen-internal-token", "guessed")]):
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetGeneration(request, metadata=metadata, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        token = (platform.log_dir / "internal-token").read_text()
        answer = stub.GetGeneration(request, metadata=[("x-imagegen-internal-token", token)], timeout=10)
        assert answer.id == generation_id
    with grpc.insecure_channel(platform.target("storage")) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            storage_pb2_grpc.StorageInternalServiceStub(channel).SignUrls(
                storage_pb2.SignUrlsRequest(keys=[]), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_access_log_has_a_json_line_per_request_and_no_credential(api, platform, image):
    signed = requests.get(image["url"], timeout=10)
    assert signed.status_code == 200
    requests.get(image["permanentUrl"], timeout=10)
    request_id = "rid-" + uuid.uuid4().hex
    listed = api("GET", "/api/images/generations?pageSize=2", headers={"X-Request-Id": request_id})
    assert listed.status_code == 200
    log_path = platform.log_dir / "gateway-access.log"
    (line,) = _log_entries(log_path, requestId=request_id)
    assert line["method"] == "GET" and line["path"] == "/api/images/generations" and line["status"] == 200
    assert line["upstream"] == "generator" and isinstance(line["durationMs"], int)
    assert int(line["upstreamMs"]) <= line["durationMs"]
    text = log_path.read_text()
    signature = image["url"].split("signature=")[1]
    permanent_key = image["permanentUrl"].rsplit("/", 1)[1].split(".")[0]
    for secret in (signature, permanent_key, BOOTSTRAP_KEY, "expires="):
        assert secret not in text
    assert _log_entries(log_path, path="/api/permanent/***", status=200)
    assert _log_entries(log_path, path="/api/files/***", status=200), "a file's key is its permanent key"
    # The id Envoy passed on is the one the service logged the call under.
    generator_lines = _log_entries(platform.log_dir / "generator.log", request_id=request_id)
    assert generator_lines and generator_lines[0]["service"] == "generator"


def test_every_call_carries_its_routes_deadline_and_a_shorter_caller_deadline_wins(api, platform):
    request_id = "deadline-" + uuid.uuid4().hex
    created = api("POST", "/api/images/generations", json={"prompt": "on time", "width": 64, "height": 64},
                  headers={"X-Request-Id": request_id})  # fmt: skip
    assert created.status_code == 200
    (done,) = _log_entries(platform.log_dir / "generator.log", request_id=request_id, msg="rpc done")
    assert 110 < done["deadline_s"] <= 120, "the create route's 120 s reached the generator"

    started = time.monotonic()
    slow_id = "slow-" + uuid.uuid4().hex
    slow = api("POST", "/api/images/generations", headers={"grpc-timeout": "300m", "X-Request-Id": slow_id},
               json={"prompt": "too slow", "n": 4, "width": 2048, "height": 2048})  # fmt: skip
    assert time.monotonic() - started < 5
    assert slow.status_code == 504 and slow.headers["content-type"] == "application/json"
    assert slow.json()["code"] == 4
    (done,) = _log_entries(platform.log_dir / "generator.log", request_id=slow_id, msg="rpc done")
    assert 0 < done["deadline_s"] <= 0.3, "the caller's 300 ms reached the generator"
    deadline = time.monotonic() + 30
    while True:
        (generation,) = api("GET", "/api/images/generations?pageSize=1").json()["results"]
        if generation["status"] != "processing" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert generation["prompt"] == "too slow" and generation["status"] == "cancelled", generation


def test_statuses_from_metadata_hold_under_concurrency(image):
    """The Python gateway lost x-imagegen-status in 1-7% of concurrent calls (304 and 416 became 200)."""
    url = image["permanentUrl"]
    etag = requests.get(url, timeout=10).headers["etag"]
    asks = [
        ({"If-None-Match": etag}, 304),
        ({"Range": "bytes=99999999-"}, 416),
        ({"Range": "bytes=0-9"}, 206),
    ]

    def ask(index: int) -> tuple[int, int]:
        headers, expected = asks[index % len(asks)]
        return requests.get(url, headers=headers, timeout=10).status_code, expected

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(300)))
    wrong = [answer for answer in answers if answer[0] != answer[1]]
    assert wrong == []


def test_an_id_envoy_makes_up_is_the_one_the_service_logs(api, platform):
    missing = "img_" + uuid.uuid4().hex[:20]
    assert api("GET", f"/api/images/generations/{missing}").status_code == 404
    (line,) = _log_entries(platform.log_dir / "gateway-access.log", path=f"/api/images/generations/{missing}")
    assert len(line["requestId"]) == 36, "a UUID Envoy generated"
    assert _log_entries(platform.log_dir / "generator.log", request_id=line["requestId"])


def test_a_service_that_is_down_is_503_json_and_back_when_it_returns(platform, image):
    """Last in this module: it stops storage and starts it again on the same port."""
    platform.stop_one("storage")
    try:
        down = requests.get(image["url"], timeout=10)
        assert down.status_code == 503 and down.headers["content-type"] == "application/json"
        assert down.json()["code"] == 14
    finally:
        platform.restart("storage", platform.log_dir)
    deadline = time.monotonic() + 30
    while (back := requests.get(image["url"], timeout=10)).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert back.status_code == 200 and back.headers["content-type"] == "image/png"


def test_no_log_line_carries_a_key_a_signature_or_a_permanent_url_key(api, platform, image):
    marker = "sk_" + "Z" * 9000
    hostile = [
        ("GET", "/api/models", {"Authorization": f"Bearer {marker}"}),
        ("GET", "/api/models", {"Authorization": f"Basic {marker}"}),
        ("POST", "/api/images/generations", {"Authorization": f"Bearer {marker[:200]}"}),
        ("GET", "/api/credits?user=x", {"Authorization": f"Bearer {BOOTSTRAP_KEY}X"}),
    ]
    for method, path, headers in hostile:
        answer = requests.request(method, platform.gateway_url + path, headers=headers, json={}, timeout=10)
        assert answer.status_code in (400, 401, 429, 431), (path, answer.status_code)
    signature = image["url"].rpartition("signature=")[2]
    permanent_key = image["permanentUrl"].rpartition("/")[2].split(".")[0]
    assert requests.get(image["url"], timeout=10).status_code == 200
    assert requests.get(image["permanentUrl"], timeout=10).status_code == 200
    assert requests.get(image["url"].replace(signature, "0" * len(signature)), timeout=10).status_code in (
        403,
        404,
    )
    time.sleep(0.5)  # the access log is written as requests end
    logs = "".join(path.read_text(errors="replace") for path in platform.log_dir.glob("*.log"))
    for secret in (marker[:40], BOOTSTRAP_KEY, signature, permanent_key):
        assert secret not in logs, secret[:20]


def test_a_client_that_never_finishes_its_headers_is_cut_off(platform):
    host, _, port = platform.gateway_url.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(port)), timeout=30) as slow:
        slow.sendall(b"GET /api/models HTTP/1.1\r\nHost: imagegen\r\n")  # and never the blank line
        started = time.monotonic()
        answer = slow.recv(4096)
        while answer and not answer.endswith(b"\r\n\r\n") and b"408" not in answer:
            answer += slow.recv(4096)
        took = time.monotonic() - started
    assert took < 15, "the header timeout (10 s) closed it"
    assert answer == b"" or b" 408 " in answer.split(b"\r\n")[0], answer[:200]


def test_a_query_parameter_the_api_does_not_know_is_a_400_naming_it(api):
    answer = api("GET", "/api/images/generations?stauts=completed")
    assert answer.status_code == 400 and "stauts" in answer.json()["message"], answer.text
    assert api("GET", "/api/images/generations?status=completed&pageSize=2").status_code == 200


class _StoppingStorage(storage_pb2_grpc.StorageServiceServicer):
    """Answers its first file read as a gRPC server that began to stop as the call arrived does
    (grpc/grpc#41785: CANCELLED), and later ones with the file."""

    def __init__(self):
        self.reads: list[str] = []

    def GetFile(self, request, context):
        self.reads.append(request.key)
        if len(self.reads) == 1:
            context.abort(grpc.StatusCode.CANCELLED, "CANCELLED")
        yield httpbody_pb2.HttpBody(content_type="image/png", data=b"\x89PNG the file")


@pytest.mark.starts_processes
def test_a_file_read_a_stopping_storage_cancelled_is_sent_again_not_answered_499(tmp_path):
    storage = _StoppingStorage()
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    storage_pb2_grpc.add_StorageServiceServicer_to_server(storage, server)
    storage_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    gateway = Platform(env={})
    try:
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            nobody = closed.getsockname()[1]
        gateway.ports.update({"storage": storage_port, "generator": nobody, "catalog": nobody})
        gateway.start_gateway(0, tmp_path)
        answer = requests.get(f"{gateway.gateway_url}/api/files/{'a' * 64}.png", timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.content == b"\x89PNG the file"
        assert storage.reads == [f"{'a' * 64}.png"] * 2, "read once, cancelled, and once again"
    finally:
        gateway.stop()
        server.stop(0)
