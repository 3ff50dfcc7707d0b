"""The queue through the whole platform as processes: async jobs, watch over SSE, models and routing
against loopback model servers, failover, cancel, deadlines, webhooks, idempotency, and a SIGKILLed
generator whose job completes elsewhere."""

from __future__ import annotations

import json
import signal
import time
import uuid

import grpc
import psycopg
import pytest
import requests
from imagegen.generator.v1 import generator_pb2, generator_pb2_grpc
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.conftest import running_platform
from tests.fakes import FakeModelServer, WebhookReceiver
from tools.embedded_pg import free_port

KEY = "sk_queue_e2e_" + uuid.uuid4().hex
TERMINAL = ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
def platform(pg, tmp_path_factory):
    # Short leases, retries and webhook backoff, so failures play out in seconds.
    with running_platform(
        pg,
        tmp_path_factory,
        KEY,
        IMAGEGEN_WORKER_LEASE_SECONDS="2",
        IMAGEGEN_WORKER_HEARTBEAT_SECONDS="0.3",
        IMAGEGEN_QUEUE_RETRY_BASE_SECONDS="0.05",
        IMAGEGEN_SERVER_BENCH_AFTER_FAILURES="2",
        IMAGEGEN_SERVER_BENCH_SECONDS="120",
        IMAGEGEN_WEBHOOK_RETRY_UNIT_SECONDS="0.1",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def api(platform):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {KEY}"

    def call(method: str, path: str, **kwargs) -> requests.Response:
        return session.request(method, platform.gateway_url + path, timeout=60, **kwargs)

    return call


@pytest.fixture
def fake():
    server = FakeModelServer()
    yield server
    server.stop()


def _model(api, provider: str, servers: list[dict], upstream: str = "") -> dict:
    name = f"{provider}-{uuid.uuid4().hex[:6]}"
    answer = api("POST", "/api/models", json={
        "name": name, "provider": provider, "upstreamModel": upstream, "servers": servers,
    })  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()


def _wait(api, generation_id: str, statuses=TERMINAL, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        generation = api("GET", f"/api/images/generations/{generation_id}").json()
        if generation["status"] in statuses or time.monotonic() > deadline:
            return generation
        time.sleep(0.05)


def test_async_generation_is_pending_at_once_and_watch_streams_it_as_server_sent_events(api):
    created = api("POST", "/api/images/generations", json={"prompt": "a harbour at night", "width": 64,
                  "height": 64}, headers={"X-Async": "true", "X-Priority": "high"})  # fmt: skip
    assert created.status_code == 200, created.text
    generation = created.json()
    assert (generation["status"], generation["priority"], generation["outputImages"]) == (
        "pending",
        "high",
        [],
    )
    with api("GET", f"/api/images/generations/{generation['id']}:watch", stream=True) as watch:
        assert watch.status_code == 200
        assert watch.headers["content-type"].startswith("text/event-stream")
        events = [
            json.loads(line[len(b"data: ") :]) for line in watch.iter_lines() if line.startswith(b"data: ")
        ]
    assert events[-1]["status"] == "completed" and events[-1]["outputImages"][0]["url"]
    assert all(e["id"] == generation["id"] for e in events)
    assert [e["status"] for e in events] == sorted({e["status"] for e in events}, key=[
        "pending", "processing", "completed"].index), "each change once, in order"  # fmt: skip
    body_async = api("POST", "/api/images/generations", json={"prompt": "x", "async": True}).json()
    assert body_async["status"] in ("pending", "processing")


def test_models_are_managed_over_rest_and_keys_never_come_back(api, platform, fake):
    model = _model(api, "openai", [{"url": f"{fake.url}/v1", "apiKey": "sk-upstream", "maxConcurrency": 2}],
                   upstream="dall-e-3")  # fmt: skip
    assert model["id"].startswith("mod_") and model["servers"][0]["id"].startswith("srv_")
    assert "sk-upstream" not in json.dumps(model) and "apiKey" not in model["servers"][0]
    name = model["name"]
    assert api("GET", f"/api/models/{name}").json()["servers"][0]["maxConcurrency"] == 2
    assert api("POST", "/api/models", json={"name": name, "provider": "openai", "servers": [
        {"url": fake.url}]}).status_code == 409  # fmt: skip
    bad = api("POST", "/api/models", json={"name": "x", "provider": "dalle", "servers": [{"url": fake.url}]})
    assert bad.status_code == 400 and "provider must be one of" in bad.json()["message"]
    generated = api("POST", "/api/images/generations", json={"prompt": "a fox", "model": name, "width": 64,
                    "height": 64}).json()  # fmt: skip
    assert generated["status"] == "completed" and generated["serverId"] == model["servers"][0]["id"]
    assert fake.stats.headers[-1]["Authorization"] == "Bearer sk-upstream"
    secret = api("GET", "/api/webhooks/default/secret").json()["key"]
    with psycopg.connect(platform.database_url) as conn:
        (stored,) = conn.execute(
            "SELECT api_key FROM model_servers WHERE model_id = %s", (model["id"],)
        ).fetchone()
        (hook,) = conn.execute(
            "SELECT webhook_secret FROM projects WHERE webhook_secret IS NOT NULL"
        ).fetchone()
    assert stored.startswith("sealed:v1:") and "sk-upstream" not in stored, "sealed at rest"
    assert secret.startswith("whsec_") and hook.startswith("sealed:v1:") and secret not in hook
    refused = api("POST", "/api/images/generations", json={"prompt": "forbidden fox", "model": name}).json()
    assert refused["status"] == "failed" and "safety system" in refused["reason"]
    replaced = api("PUT", f"/api/models/{name}/servers", json={"servers": [{"url": f"{fake.url}/v2"}]}).json()
    assert [s["url"] for s in replaced["servers"]] == [f"{fake.url}/v2"]
    assert api("DELETE", f"/api/models/{name}").status_code == 200
    assert api("GET", f"/api/models/{name}").status_code == 404
    assert api("GET", f"/api/images/generations/{generated['id']}").json()["model"] == name, (
        "records outlive it"
    )


def test_with_one_of_two_servers_down_every_job_completes_on_the_other_within_its_max_concurrency(api, fake):
    fake.delay = 0.15
    dead = f"http://127.0.0.1:{free_port()}"
    model = _model(api, "automatic1111", [{"url": dead, "maxConcurrency": 4},
                                          {"url": fake.url, "maxConcurrency": 2}])  # fmt: skip
    live_id = model["servers"][1]["id"]
    ids = [
        api(
            "POST",
            "/api/images/generations",
            json={"prompt": f"job {i}", "model": model["name"], "width": 64, "height": 64, "async": True},
        ).json()["id"]  # fmt: skip
        for i in range(12)
    ]
    finished = [_wait(api, generation_id) for generation_id in ids]
    assert [g["status"] for g in finished] == ["completed"] * 12, [g["reason"] for g in finished]
    assert {g["serverId"] for g in finished} == {live_id}
    assert all(len(g["outputImages"]) == 1 for g in finished)
    assert fake.stats.max_in_flight == 2, "the live server ran at its maxConcurrency, never above"
    servers = api("GET", f"/api/models/{model['name']}").json()["servers"]
    assert [s["status"] for s in servers] == ["benched", "healthy"]
    assert "ClientConnectorError" in servers[0]["lastError"] or "Connect" in servers[0]["lastError"]


def test_cancel_stops_the_job_and_frees_the_server(api, fake):
    fake.delay = 30
    model = _model(api, "replicate", [{"url": f"{fake.url}/v1", "apiKey": "r8"}], upstream="owner/slow")
    generation = api("POST", "/api/images/generations", json={"prompt": "slow", "model": model["name"],
                     "async": True}).json()  # fmt: skip
    assert _wait(api, generation["id"], ("processing",))["status"] == "processing"
    time.sleep(0.3)
    cancelled = api("POST", f"/api/images/generations/{generation['id']}:cancel", json={})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    deadline = time.monotonic() + 10
    while fake.stats.cancels == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fake.stats.cancels == 1, "the prediction was cancelled upstream"
    again = api("POST", f"/api/images/generations/{generation['id']}:cancel", json={})
    assert again.status_code == 400 and "already cancelled" in again.json()["message"]


def test_a_sync_caller_who_gives_up_cancels_its_job(platform, fake):
    fake.delay = 30
    headers = {"Authorization": f"Bearer {KEY}"}
    model = requests.post(f"{platform.gateway_url}/api/models", headers=headers, timeout=10, json={
        "name": "slow-sync", "provider": "replicate", "upstreamModel": "owner/slow",
        "servers": [{"url": f"{fake.url}/v1"}]}).json()  # fmt: skip
    with grpc.insecure_channel(platform.target("generator")) as channel:
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.CreateGeneration(
                generator_pb2.CreateGenerationRequest(prompt="slow", model=model["name"]),
                metadata=(("authorization", f"Bearer {KEY}"),),
                timeout=1.5,
            )
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 10
    while fake.stats.cancels == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fake.stats.cancels == 1, "the model server stopped working for nobody"
    while time.monotonic() < deadline:
        listed = requests.get(f"{platform.gateway_url}/api/images/generations?model=slow-sync",
                              headers=headers, timeout=10).json()["results"]  # fmt: skip
        if listed[0]["status"] != "processing":
            break
        time.sleep(0.1)
    assert [g["status"] for g in listed] == ["cancelled"], "not retried: nobody waits for it"
    assert fake.stats.requests == 1


def test_webhooks_are_signed_per_standard_webhooks_and_retried_until_delivered(api):
    receiver = WebhookReceiver([500, 503])
    try:
        secret = api("GET", "/api/webhooks/default/secret").json()["key"]
        assert (
            secret.startswith("whsec_") and api("GET", "/api/webhooks/default/secret").json()["key"] == secret
        )
        generation = api("POST", "/api/images/generations", json={"prompt": "hook", "width": 64, "height": 64,
                         "callbackUrl": receiver.url}).json()  # fmt: skip
        deadline = time.monotonic() + 20
        while len(receiver.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(receiver.received) == 3, "two failures, then delivered"
        verifier = Webhook(secret)
        for headers, body in receiver.received:
            payload = verifier.verify(body, headers)
            assert payload["id"] == generation["id"] and payload["status"] == "completed"
            assert payload["outputImages"][0]["url"]
        assert len({h["webhook-id"] for h, _ in receiver.received}) == 1, "one message id across retries"
        forged = dict(receiver.received[0][0], **{"webhook-signature": "v1,AAAA"})
        with pytest.raises(WebhookVerificationError):
            verifier.verify(receiver.received[0][1], forged)
        time.sleep(0.5)
        assert len(receiver.received) == 3, "nothing after a 2xx"
    finally:
        receiver.stop()


def test_idempotency_key_returns_the_same_generation_and_refuses_a_different_body(api, platform):
    key = uuid.uuid4().hex
    body = {"prompt": "only once", "width": 64, "height": 64}
    first = api("POST", "/api/images/generations", json=body, headers={"Idempotency-Key": key}).json()
    again = api("POST", "/api/images/generations", json=body, headers={"Idempotency-Key": key}).json()
    assert again["id"] == first["id"] and again["status"] == "completed"
    different = api("POST", "/api/images/generations", json={**body, "prompt": "other"},
                    headers={"Idempotency-Key": key})  # fmt: skip
    assert different.status_code == 409 and "different request" in different.json()["message"]
    with psycopg.connect(platform.database_url) as conn:
        count = conn.execute("SELECT count(*) FROM generations WHERE prompt = 'only once'").fetchone()[0]
    assert count == 1


def test_bad_queue_input_is_refused_and_records_nothing(api, platform):
    with psycopg.connect(platform.database_url) as conn:
        before = conn.execute("SELECT count(*) FROM generations").fetchone()[0]
    for body, headers, field in [
        ({"prompt": "x", "priority": "urgent"}, {}, "priority"),
        ({"prompt": "x"}, {"X-Priority": "asap"}, "priority"),
        ({"prompt": "x", "callbackUrl": "ftp://example.com/hook"}, {}, "callbackUrl"),
        ({"prompt": "x"}, {"Idempotency-Key": "k" * 300}, "Idempotency-Key"),
    ]:
        answer = api("POST", "/api/images/generations", json=body, headers=headers)
        assert answer.status_code == 400 and field in answer.json()["message"], answer.text
    with psycopg.connect(platform.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM generations").fetchone()[0] == before


def test_a_sync_create_fails_over_from_a_dead_server_within_its_deadline(api, fake):
    """A server failure is the server's whoever waits: the sync job goes to the next server."""
    dead = f"http://127.0.0.1:{free_port()}"
    # Both idle, the first server is tried first: the dead one.
    model = _model(api, "automatic1111", [{"url": dead}, {"url": fake.url}])
    body = {"prompt": "fail over", "model": model["name"], "width": 64, "height": 64}
    created = api("POST", "/api/images/generations", headers={"grpc-timeout": "20S"}, json=body)
    assert created.status_code == 200, created.text
    generation = created.json()
    assert generation["status"] == "completed", generation["reason"]
    assert generation["serverId"] == model["servers"][1]["id"] and len(generation["outputImages"]) == 1
    dead_server = api("GET", f"/api/models/{model['name']}").json()["servers"][0]
    assert dead_server["lastError"], "the dead server was tried, and its failure counted against it"


def test_a_sync_callers_deadline_that_passes_cancels_its_job_through_the_gateway(api, fake):
    fake.delay = 3  # the model server holds the request past the deadline; the job is gone by then
    model = _model(api, "automatic1111", [{"url": fake.url}])
    started = time.monotonic()
    answer = api("POST", "/api/images/generations", headers={"grpc-timeout": "1S"},
                 json={"prompt": "too slow", "model": model["name"], "width": 64, "height": 64})  # fmt: skip
    assert answer.status_code == 504 and answer.json()["code"] == 4
    assert time.monotonic() - started < 5
    listed = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listed = api("GET", f"/api/images/generations?model={model['name']}").json()["results"]
        if listed and listed[0]["status"] == "cancelled":
            break
        time.sleep(0.1)
    assert [g["status"] for g in listed] == ["cancelled"], "not retried: nobody waits for it"
    assert fake.stats.requests == 1


@pytest.mark.parametrize("prefer", ["wait=1", "respond-async, wait=1", 'wait="1"'])
def test_prefer_wait_answers_the_generation_as_it_stands_and_the_job_goes_on(api, fake, prefer):
    fake.delay = 2.5
    model = _model(api, "automatic1111", [{"url": fake.url}])
    started = time.monotonic()
    answer = api("POST", "/api/images/generations", headers={"Prefer": prefer},
                 json={"prompt": "slow", "model": model["name"], "width": 64, "height": 64})  # fmt: skip
    waited = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] in ("pending", "processing") and 0.9 < waited < 2.4
    done = _wait(api, answer.json()["id"])
    assert done["status"] == "completed" and len(done["outputImages"]) == 1


def test_prefer_wait_answers_as_soon_as_the_job_finishes(api):
    started = time.monotonic()
    answer = api("POST", "/api/images/generations", headers={"Prefer": "wait"},
                 json={"prompt": "quick", "width": 64, "height": 64})  # fmt: skip
    assert answer.status_code == 200 and answer.json()["status"] == "completed"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("prefer", ["wait=0", "wait=61", "wait=abc", "wait=1.5"])
def test_a_bad_prefer_wait_is_400_and_queues_nothing(api, platform, prefer):
    with psycopg.connect(platform.database_url) as conn:
        before = conn.execute("SELECT count(*) FROM generations").fetchone()[0]
    answer = api("POST", "/api/images/generations", headers={"Prefer": prefer}, json={"prompt": "x"})
    assert answer.status_code == 400 and "Prefer: wait" in answer.json()["message"]
    with psycopg.connect(platform.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM generations").fetchone()[0] == before


def test_a_sync_job_takes_a_free_server_at_once_but_never_ahead_of_a_job_already_waiting(api, fake):
    """A sync create may be leased to its own generator's worker as it is queued; only when no earlier
    job of the model waits, so the queue's order holds."""
    fake.delay = 0.6
    model = _model(api, "automatic1111", [{"url": fake.url, "maxConcurrency": 1}])
    body = {"model": model["name"], "width": 64, "height": 64}
    busy = api("POST", "/api/images/generations", json={**body, "prompt": "first", "async": True}).json()
    assert _wait(api, busy["id"], ("processing",))["status"] == "processing"
    waiting = api("POST", "/api/images/generations", json={**body, "prompt": "second", "async": True}).json()
    late = api("POST", "/api/images/generations", json={**body, "prompt": "third"})
    assert late.status_code == 200 and late.json()["status"] == "completed", late.text
    assert _wait(api, waiting["id"])["status"] == "completed"
    assert [b["prompt"] for b in fake.stats.bodies] == ["first", "second", "third"]
    assert fake.stats.max_in_flight == 1
    # With the server free and nothing waiting, a sync job starts at once.
    started = time.monotonic()
    alone = api("POST", "/api/images/generations", json={**body, "prompt": "fourth"})
    assert alone.json()["status"] == "completed" and time.monotonic() - started < fake.delay + 1.0


def test_a_sigkilled_generators_job_completes_on_another_with_one_set_of_images(api, platform, fake):
    """Last in this module: it replaces the generator process."""
    fake.delay = 3
    model = _model(api, "automatic1111", [{"url": fake.url, "maxConcurrency": 4}])
    generation = api("POST", "/api/images/generations", json={"prompt": "survivor", "model": model["name"],
                     "n": 2, "width": 64, "height": 64, "async": True}).json()  # fmt: skip
    assert _wait(api, generation["id"], ("processing",))["status"] == "processing"
    victim = platform.processes["generator"]
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    platform._start_one("generator", platform.ports["generator"], platform.log_dir)  # where the gateway looks
    fake.delay = 0
    done = _wait(api, generation["id"], timeout=30)
    assert done["status"] == "completed", done
    assert len(done["outputImages"]) == 2
    assert fake.stats.requests == 2, "the first attempt died with its worker; the second ran it"
    with psycopg.connect(platform.database_url) as conn:
        images = conn.execute(
            "SELECT count(*) FROM output_images WHERE generation_id = %s", (generation["id"],)
        ).fetchone()[0]
        jobs = conn.execute(
            "SELECT count(*) FROM jobs WHERE generation_id = %s", (generation["id"],)
        ).fetchone()[0]
    assert (images, jobs) == (2, 0)


def test_a_storage_outage_delays_jobs_but_fails_none_and_blames_no_server(api, platform, fake):
    """The issue's case: storage away for 15 s under 300 async jobs."""
    model = _model(api, "openai", [{"url": f"{fake.url}/v1", "maxConcurrency": 8}])["name"]
    fake.delay = 0.05
    created = [
        api("POST", "/api/images/generations", json={"prompt": f"lake {i}", "model": model, "async": True})
        for i in range(300)
    ]
    assert all(c.status_code == 200 for c in created), [c.text for c in created if c.status_code != 200]
    platform.restart("storage", platform.log_dir, down_for=15)
    ids = [c.json()["id"] for c in created]
    deadline = time.monotonic() + 90
    while True:  # read from Postgres: 300 polls through the API would spend the key's request rate
        with psycopg.connect(platform.database_url) as conn:
            rows = conn.execute(
                "SELECT status, reason FROM generations WHERE id = ANY(%s)", (ids,)
            ).fetchall()
        if all(status in TERMINAL for status, _ in rows) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [status for status, _ in rows] == ["completed"] * len(ids), {reason for _, reason in rows}
    servers = api("GET", f"/api/models/{model}").json()["servers"]
    assert [(s["status"], s["lastError"]) for s in servers] == [("healthy", "")]
