"""Two of each service (generators, catalogs, storage services) on one Postgres and one S3 bucket, behind
one Envoy. One replica of each is SIGKILLed under a mixed load of sync and async generations: every
generation acknowledged to a client ends `completed` exactly once, its images are in the bucket and the
catalog agrees, credits are spent exactly once per image, a `:watch` whose catalog died carries on through
the other, and the sync job of the killed generator still completes. Then Postgres restarts under the
replicas: a clear 503 while it is away, and everything recovers by itself."""

from __future__ import annotations

import concurrent.futures
import signal
import threading
import time
import uuid

import grpc
import psycopg
import pytest
import requests
from imagegen.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from imagegen.generator.v1 import generator_pb2, generator_pb2_grpc
from minio import Minio

from tests.conftest import FAST_BLOB_SWEEPS, platform_on_own_postgres, rest_client
from tests.fakes import FakeModelServer
from tests.infra import S3_ACCESS_KEY, S3_SECRET_KEY

pytestmark = pytest.mark.starts_processes
KEY = "sk_replicas_" + uuid.uuid4().hex
AUTH = (("authorization", f"Bearer {KEY}"),)
USERS = [f"user-{n}" for n in range(4)]
CREDITS = 100
KILLED = ["catalog-2", "storage-2", "generator-2"]
TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, s3):
    bucket = s3.new_bucket_name()
    fake = FakeModelServer(delay=0.5)
    # The watched generations and the one held by the killed generator run 6 s, across the kills. With
    # 3 s, one CI run and 1 of 6 local runs had no watch lose its catalog (11 to 15 of 24 do in the
    # others), most likely because the kills came after the watched jobs had finished.
    slow = FakeModelServer(delay=6)
    try:
        with platform_on_own_postgres(
            tmp_path_factory,
            KEY,
            replicas={"generator": 2, "catalog": 2, "storage": 2},
            IMAGEGEN_STORAGE_BACKEND="s3",
            IMAGEGEN_S3_ENDPOINT=s3.endpoint,
            IMAGEGEN_S3_ACCESS_KEY=S3_ACCESS_KEY,
            IMAGEGEN_S3_SECRET_KEY=S3_SECRET_KEY,
            IMAGEGEN_S3_BUCKET=bucket,
            # A killed generator's jobs go back to the queue 3 s after its last heartbeat.
            IMAGEGEN_WORKER_LEASE_SECONDS="3",
            # Blobs a killed replica stored with no row to name them are found and swept within seconds.
            **FAST_BLOB_SWEEPS,
        ) as platform:
            platform.bucket = bucket
            api = rest_client(platform, KEY)
            made = api("POST", "/api/models", json={
                "name": "gpu", "provider": "openai", "upstreamModel": "gpu-model", "pricePerImage": 1,
                "servers": [{"url": f"{fake.url}/v1", "maxConcurrency": 4}]})  # fmt: skip
            assert made.status_code == 200, made.text
            made = api("POST", "/api/models", json={
                "name": "slow-gpu", "provider": "openai", "upstreamModel": "gpu-model",
                "servers": [{"url": f"{slow.url}/v1", "maxConcurrency": 8}]})  # fmt: skip
            assert made.status_code == 200, made.text
            for user in USERS:
                assert api("PUT", "/api/credits", json={"user": user, "amount": CREDITS}).status_code == 200
            yield platform, platform.postgres, fake, s3
    finally:
        fake.stop()
        slow.stop()


def _body(prompt: str, user: str, model: str = "gpu") -> dict:
    return {"prompt": prompt, "model": model, "user": user, "width": 64, "height": 64}


def _until_acknowledged(api, body: dict, headers: dict) -> dict:
    """What a careful client does: the same Idempotency-Key again until an answer with the generation."""
    for _ in range(60):
        try:
            answer = api("POST", "/api/images/generations", json=body, headers=headers)
        except requests.ConnectionError:
            time.sleep(0.25)
            continue
        if answer.status_code == 200:
            return answer.json()
        assert answer.status_code in (502, 503, 504), answer.text
        time.sleep(0.25)
    raise AssertionError(f"never acknowledged: {body}")


def _until_finished(api, generation_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = api("GET", f"/api/images/generations/{generation_id}")
        if answer.status_code == 200 and answer.json()["status"] in TERMINAL:
            return answer.json()
        time.sleep(0.2)
    raise AssertionError(f"{generation_id} did not finish: {answer.status_code} {answer.text}")


def _one_client(platform, n: int) -> dict:
    """A sync or an async create (every other one), then the generation as it ended."""
    api = rest_client(platform, KEY)
    headers = {"Idempotency-Key": f"load-{n}"}
    if n % 2:
        headers["X-Async"] = "true"
    acknowledged = _until_acknowledged(api, _body(f"a room, take {n}", USERS[n % len(USERS)]), headers)
    finished = acknowledged
    if acknowledged["status"] not in TERMINAL:
        finished = _until_finished(api, acknowledged["id"])
    return {
        "n": n,
        "id": acknowledged["id"],
        "status": finished["status"],
        "images": finished["outputImages"],
    }


def _watch(platform, generation_id: str, seen: list) -> None:
    """A `:watch` held on the first generator (which stays up) by gRPC; its catalog may be the one killed."""
    with grpc.insecure_channel(platform.target("generator")) as channel:
        stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        for update in stub.WatchGeneration(
            generator_pb2.WatchGenerationRequest(id=generation_id), metadata=AUTH, timeout=60
        ):
            seen.append(update.status)


def _answers(platform, replica: str) -> bool:
    """Whether this catalog replica answers a call that needs its database."""
    with grpc.insecure_channel(platform.target(replica)) as channel:
        try:
            catalog_pb2_grpc.CatalogServiceStub(channel).ListModels(
                catalog_pb2.ListModelsRequest(), metadata=AUTH, timeout=3
            )
        except grpc.RpcError:
            return False
    return True


def _rows(platform, query: str, *args) -> list[tuple]:
    with psycopg.connect(platform.database_url) as conn:
        return conn.execute(query, args).fetchall()


def test_a_replica_of_each_service_killed_mid_load_loses_and_repeats_nothing(cluster):
    platform, _, fake, s3 = cluster
    api = rest_client(platform, KEY)

    # Held open before the kills on the first generator, whose calls alternate between the catalogs
    # (round robin, interleaved with its worker's own calls): with four watches of each generation,
    # some are all but certain to be on the catalog killed.
    watched = [
        _until_acknowledged(api, _body(f"a watched room {n}", USERS[0], "slow-gpu"), {"X-Async": "true"})[
            "id"
        ]
        for n in range(6)
    ]
    seen: dict[tuple[str, int], list] = {(i, copy): [] for i in watched for copy in range(4)}
    watchers = [
        threading.Thread(target=_watch, args=(platform, i, statuses)) for (i, _), statuses in seen.items()
    ]
    for watcher in watchers:
        watcher.start()

    # A sync create held by the second generator itself, whose worker runs it: that generator is killed.
    held_error: list = []

    def held_by_the_killed_generator() -> None:
        with grpc.insecure_channel(platform.target("generator-2")) as channel:
            stub = generator_pb2_grpc.GeneratorServiceStub(channel)
            try:
                stub.CreateGeneration(
                    generator_pb2.CreateGenerationRequest(
                        prompt="held by the killed generator",
                        model="slow-gpu",
                        user=USERS[1],
                        width=64,
                        height=64,
                    ),
                    metadata=AUTH,
                    timeout=60,
                )
            except grpc.RpcError as exc:
                held_error.append(exc.code())

    held = threading.Thread(target=held_by_the_killed_generator)
    held.start()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        clients = [pool.submit(_one_client, platform, n) for n in range(32)]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            running = _rows(
                platform,
                "SELECT status FROM generations WHERE prompt = 'held by the killed generator'",
            )
            if running and running[0][0] == "processing":
                break
            time.sleep(0.05)
        assert running == [("processing",)], "the second generator's own worker runs the held job"
        for name in KILLED:
            assert platform.stop_one(name, signal.SIGKILL) == -signal.SIGKILL
        outcomes = [client.result(timeout=120) for client in clients]
    held.join(60)
    for watcher in watchers:
        watcher.join(60)

    assert held_error == [grpc.StatusCode.UNAVAILABLE], "its client saw its generator go"
    (held_id,) = _rows(platform, "SELECT id FROM generations WHERE prompt = 'held by the killed generator'")
    assert _until_finished(api, held_id[0])["status"] == "completed", "the killed generator's sync job"

    # Every acknowledged generation completed, each once: the enqueues a dying catalog left unanswered
    # and the clients' own repeats made nothing twice.
    assert [o["status"] for o in outcomes] == ["completed"] * len(outcomes), outcomes
    assert len({o["id"] for o in outcomes}) == len(outcomes)
    acknowledged = {o["id"] for o in outcomes} | set(watched) | {held_id[0]}
    created = _rows(platform, "SELECT id, status FROM generations")
    assert {row[0] for row in created} == acknowledged and len(created) == len(acknowledged)
    for generation_id in watched:
        _until_finished(api, generation_id)

    # Each watch went on to `completed` (a job the killed generator ran shows `pending` again, as it
    # was); some of them lost their catalog and carried on through the other.
    for (generation_id, _), statuses in seen.items():
        assert statuses and statuses[-1] == "completed" and statuses.count("completed") == 1, (
            generation_id,
            statuses,
        )
    reopened = (platform.log_dir / "generator.log").read_text().count("watch reopened")
    assert reopened >= 1, "a watch lost its catalog and carried on through the other"

    # Credits: one per image of a priced generation that completed, spent once.
    for user in USERS:
        (spent,) = _rows(
            platform,
            "SELECT count(*) FROM output_images i JOIN generations g ON g.id = i.generation_id"
            " WHERE g.end_user = %s AND g.status = 'completed' AND g.model_name = 'gpu'",
            user,
        )
        balance = api("GET", f"/api/credits?user={user}").json()["balance"]
        assert int(balance) == CREDITS - spent[0], (user, balance, spent)

    # The bucket and the catalog agree: every image is there, and what no row names is swept.
    keys = {row[0] for row in _rows(platform, "SELECT storage_key FROM output_images")}
    assert len(keys) == len(acknowledged)
    bucket = Minio(s3.endpoint, access_key=S3_ACCESS_KEY, secret_key=S3_SECRET_KEY, secure=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stored = {item.object_name for item in bucket.list_objects(platform.bucket, recursive=True)}
        if stored == keys:
            break
        assert keys <= stored, keys - stored
        time.sleep(0.5)
    assert stored == keys, stored - keys
    assert all(platform.processes[name].poll() is None for name in ("generator", "catalog", "storage"))


def test_postgres_restarts_under_replicas_with_a_clear_503_and_recovers(cluster):
    platform, postgres, _, _ = cluster
    for name in KILLED:
        if name not in platform.processes:
            platform.restart(name, log_dir=platform.log_dir)
    api = rest_client(platform, KEY)
    postgres.stop()
    try:
        for _ in range(4):  # every replica of the catalog and the generator answers
            started = time.monotonic()
            answer = api("GET", "/api/models")
            assert answer.status_code == 503 and time.monotonic() - started < 3, answer.text
            assert int(answer.headers.get("retry-after", 0)) >= 1
            created = api("POST", "/api/images/generations", json=_body("while away", USERS[2]))
            assert created.status_code == 503, created.text
    finally:
        postgres.start()
    # Each catalog reconnects on its own schedule; once both answer again, creates through either do.
    deadline = time.monotonic() + 30
    while not all(_answers(platform, replica) for replica in ("catalog", "catalog-2")):
        assert time.monotonic() < deadline, "a catalog did not reconnect to Postgres by itself"
        time.sleep(0.3)
    for n in range(4):
        again = api("POST", "/api/images/generations", json=_body(f"after the restart {n}", USERS[2]))
        assert again.status_code == 200 and again.json()["status"] == "completed", again.text
    assert all(process.poll() is None for process in platform.processes.values()), "no service restarted"
    assert len(platform.processes) == 7
