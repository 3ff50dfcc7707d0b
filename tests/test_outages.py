"""Failing parts under a running platform (Envoy, services) with a Postgres of its own: with Postgres
away, requests that need it answer 503 with Retry-After at once instead of hanging or crashing, signed
downloads keep working, and everything recovers by itself; a blob a dying worker left in storage with
no row is found and swept, so storage and catalog agree."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import requests
from imagegen.storage.v1 import storage_pb2, storage_pb2_grpc

from services.common import internal
from services.common import server as lifecycle
from tests.conftest import FAST_BLOB_SWEEPS, platform_on_own_postgres, rest_client
from tests.fakes import png

pytestmark = pytest.mark.starts_processes
KEY = "sk_outages_" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def outage(tmp_path_factory):
    with platform_on_own_postgres(tmp_path_factory, KEY, **FAST_BLOB_SWEEPS) as platform:
        yield platform, platform.postgres


def test_postgres_away_answers_503_with_retry_after_at_once_and_recovers_alone(outage):
    platform, postgres = outage
    api = rest_client(platform, KEY)
    made = api("POST", "/api/images/generations", json={"prompt": "a harbour", "width": 64, "height": 64})
    assert made.status_code == 200, made.text
    signed = made.json()["outputImages"][0]["url"]

    postgres.stop()
    try:
        for method, path, body in (
            ("GET", "/api/models", None),
            ("GET", "/api/credits?user=someone", None),
            ("POST", "/api/images/generations", {"prompt": "a lake", "width": 64, "height": 64}),
        ):
            started = time.monotonic()
            answer = api(method, path, json=body)
            took = time.monotonic() - started
            assert answer.status_code == 503, (path, answer.status_code, answer.text)
            assert int(answer.headers.get("retry-after", 0)) >= 1 and took < 3, (
                path,
                took,
                answer.headers,
                answer.text,
            )
            assert answer.json()["code"] == 14
        # Bytes need no catalog: a signed URL still downloads.
        assert requests.get(signed, timeout=10).status_code == 200
    finally:
        postgres.start()

    deadline = time.monotonic() + 20
    while api("GET", "/api/models").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.3)
    again = api("POST", "/api/images/generations", json={"prompt": "a river", "width": 64, "height": 64})
    assert again.status_code == 200 and again.json()["status"] == "completed", again.text
    assert all(process.poll() is None for process in platform.processes.values()), "no service restarted"


def test_a_blob_no_row_knows_is_found_and_swept_and_known_ones_stay(outage, tmp_path):
    platform, _ = outage
    api = rest_client(platform, KEY)
    kept = api("POST", "/api/images/generations", json={"prompt": "a pier", "width": 64, "height": 64})
    assert kept.status_code == 200, kept.text
    # What a worker that died between storing and answering leaves: bytes in storage, no row.
    orphan = png("an orphan", 3, 64, 64)

    async def store() -> str:
        internal.configure((platform.log_dir / "internal-token").read_text())
        async with lifecycle.internal_channel(platform.target("storage")) as channel:
            stub = storage_pb2_grpc.StorageInternalServiceStub(channel)
            answer = await stub.PutSmallObjects(
                storage_pb2.PutSmallObjectsRequest(
                    objects=[
                        storage_pb2.SmallObject(
                            info=storage_pb2.ObjectInfo(content_type="image/png"), data=orphan
                        )
                    ]
                )
            )
        return answer.objects[0].key

    key = asyncio.run(store())
    objects = platform.log_dir / "objects"
    deadline = time.monotonic() + 30
    while (objects / key[:2] / key).exists() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not (objects / key[:2] / key).exists(), "the orphan was found and swept"
    known = kept.json()["outputImages"][0]
    assert requests.get(known["url"], timeout=10).status_code == 200, "what a row names stays"
