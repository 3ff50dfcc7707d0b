"""Postgres going away under a running platform (Envoy, services) with a Postgres of its own: requests
that need it answer 503 with Retry-After at once instead of hanging or crashing, signed downloads keep
working, and everything recovers by itself when it is back."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.conftest import rest_client
from tools.embedded_pg import EmbeddedPostgres
from tools.supervisor import Platform

pytestmark = pytest.mark.starts_processes
KEY = "sk_outages_" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def outage(tmp_path_factory):
    var = tmp_path_factory.mktemp("outage")
    postgres = EmbeddedPostgres(var / "postgres", durable=False).start()
    platform = Platform(
        env={
            "IMAGEGEN_DATABASE_URL": postgres.create_database("imagegen"),
            "IMAGEGEN_BOOTSTRAP_API_KEY": KEY,
            "IMAGEGEN_VAR_DIR": str(var),
            "IMAGEGEN_OUTBOUND_PUBLIC": "false",
        }
    )
    try:
        platform.start(log_dir=var)
        yield platform, postgres
    finally:
        platform.stop()
        postgres.stop()


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
