"""Projects and keys, per-user limits, credits and usage, through the REST gateway of the running
platform: admin-only management, publishable keys held to their user, limits exact under 100
simultaneous requests, and quota and credits given back when a generation does not complete."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.conftest import rest_client, running_platform

ADMIN_KEY = "sk_accounts_" + uuid.uuid4().hex
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
# Connection refused at once: jobs on this server retry until cancelled, so they stay unfinished.
DEAD_SERVER = [{"url": "http://127.0.0.1:9", "maxConcurrency": 1}]


@pytest.fixture(scope="module")
def platform(pg, tmp_path_factory):
    with running_platform(pg, tmp_path_factory, ADMIN_KEY, IMAGEGEN_QUEUE_RETRY_BASE_SECONDS="5") as running:
        yield running


@pytest.fixture(scope="module")
def admin(platform):
    return rest_client(platform, ADMIN_KEY)


@pytest.fixture(scope="module")
def project(platform, admin):
    """A fresh project, its secret key's client, and a publishable key for user `browser-user`."""
    created = admin("POST", "/api/projects", json={"name": "shop"})
    assert created.status_code == 200, created.text
    project_id = created.json()["id"]
    secret = admin("POST", f"/api/projects/{project_id}/keys", json={"name": "backend", "kind": "secret"})
    publishable = admin(
        "POST",
        f"/api/projects/{project_id}/keys",
        json={"name": "web", "kind": "publishable", "user": "browser-user"},
    )
    assert secret.status_code == publishable.status_code == 200, (secret.text, publishable.text)
    return {
        "id": project_id,
        "secret": rest_client(platform, secret.json()["key"]),
        "publishable": rest_client(platform, publishable.json()["key"]),
        "keys": {"secret": secret.json(), "publishable": publishable.json()},
    }


def _generations(platform, project_id: str) -> int:
    with psycopg.connect(platform.database_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM generations WHERE project_id = %s", (project_id,)
        ).fetchone()[0]


def test_projects_and_keys_are_made_by_admin_keys_shown_once_and_listed_masked(platform, admin, project):
    keys = project["keys"]
    assert project["id"].startswith("pro_")
    assert keys["secret"]["key"].startswith("sk_") and keys["publishable"]["key"].startswith("pub_")
    assert keys["publishable"]["user"] == "browser-user" and keys["secret"]["id"].startswith("key_")

    listed = admin("GET", f"/api/projects/{project['id']}/keys").json()["keys"]
    assert [k["name"] for k in listed] == ["backend", "web"]
    for key in listed:
        assert key["key"] == "", "a key is shown only when it is made"
        full = keys[key["kind"]]["key"]
        assert key["hint"].endswith(full[-4:]) and full not in str(listed)
    # The project's first model is there for its secret key, and another project's are not.
    assert [m["name"] for m in project["secret"]("GET", "/api/models").json()["models"]] == ["procedural"]

    secret = project["secret"]
    for method, path, body in (
        ("POST", "/api/projects", {"name": "mine"}),
        ("GET", f"/api/projects/{project['id']}/keys", None),
        ("POST", f"/api/projects/{project['id']}/keys", {"name": "more"}),
        ("DELETE", f"/api/keys/{keys['secret']['id']}", None),
    ):
        answer = secret(method, path, json=body)
        assert answer.status_code == 403 and "admin key" in answer.json()["message"], answer.text

    assert admin("POST", "/api/projects/pro_00000000000000000000/keys", json={}).status_code == 404
    assert admin("DELETE", "/api/keys/key_00000000000000000000").status_code == 404
    for body in ({"kind": "root"}, {"kind": "publishable"}, {"kind": "secret", "user": "someone"}):
        bad = admin("POST", f"/api/projects/{project['id']}/keys", json=body)
        assert bad.status_code == 400, bad.text
    assert admin("POST", "/api/projects", json={"name": ""}).status_code == 400


def test_a_revoked_key_is_refused_by_every_service_at_once(platform, admin, project):
    made = admin("POST", f"/api/projects/{project['id']}/keys", json={"name": "temp"}).json()
    temp = rest_client(platform, made["key"])
    assert temp("GET", "/api/images/generations").status_code == 200
    assert temp("GET", "/api/models").status_code == 200
    revoked = admin("DELETE", f"/api/keys/{made['id']}")
    assert revoked.status_code == 200 and revoked.json()["revokedAt"]
    for path in ("/api/images/generations", "/api/models", "/api/credits?user=x"):
        assert temp("GET", path).status_code == 401, path
    masked = {k["id"]: k for k in admin("GET", f"/api/projects/{project['id']}/keys").json()["keys"]}
    assert masked[made["id"]]["revokedAt"]


RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
# One endpoint on each service: the generator, and the catalog's two public services.
_ACROSS_SERVICES = ("/api/images/generations", "/api/models", "/api/credits?user=someone")


def test_a_key_rate_is_one_token_bucket_across_every_service(platform, admin, project):
    made = admin(
        "POST",
        f"/api/projects/{project['id']}/keys",
        json={"name": "slow", "rateLimit": {"requestsPerSecond": 0.5, "burst": 3}},
    ).json()
    assert made["rateLimit"] == {"requestsPerSecond": 0.5, "burst": 3}
    slow = rest_client(platform, made["key"])
    assert [slow("GET", path).status_code for path in _ACROSS_SERVICES] == [200, 200, 200]

    for path in _ACROSS_SERVICES:
        refused = slow("GET", path)
        assert refused.status_code == 429, (path, refused.text)
        assert 1 <= int(refused.headers["Retry-After"]) <= 2
        assert "0.5 requests per second" in refused.json()["message"]
        retry = refused.json()["details"][0]
        assert retry["@type"] == RETRY_INFO and float(retry["retryDelay"].rstrip("s")) <= 2
    # The project's other keys have buckets of their own.
    assert project["secret"]("GET", "/api/models").status_code == 200

    time.sleep(int(refused.headers["Retry-After"]))
    assert slow("GET", "/api/models").status_code == 200
    assert slow("GET", "/api/models").status_code == 429

    raised = admin("PATCH", f"/api/keys/{made['id']}", json={"rateLimit": {"requestsPerSecond": 1000}})
    assert raised.json()["rateLimit"] == {"requestsPerSecond": 1000, "burst": 1000}, raised.text
    time.sleep(0.01)
    assert slow("GET", "/api/models").status_code == 200
    reset = admin("PATCH", f"/api/keys/{made['id']}", json={"rateLimit": {}, "name": "default"}).json()
    assert reset["name"] == "default" and reset["rateLimit"] == {"requestsPerSecond": 100, "burst": 200}
    # 1.6e-30 came from the fuzzer: it made Retry-After 6e29 s, past what a protobuf Duration holds (500).
    too_slow = {"requestsPerSecond": 1.619868405684279e-30}
    for bad in (
        {"requestsPerSecond": -1},
        {"requestsPerSecond": 1, "burst": -1},
        {"requestsPerSecond": 1e6},
        too_slow,
    ):
        answer = admin("PATCH", f"/api/keys/{made['id']}", json={"rateLimit": bad})
        assert answer.status_code == 400, answer.text


def test_simultaneous_requests_take_exactly_the_tokens_there_are(platform, admin, project):
    made = admin(
        "POST",
        f"/api/projects/{project['id']}/keys",
        json={"name": "burst", "rateLimit": {"requestsPerSecond": 0.01, "burst": 7}},
    ).json()
    burst = rest_client(platform, made["key"])
    paths = [_ACROSS_SERVICES[i % 3] for i in range(40)]
    with ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(lambda path: burst("GET", path).status_code, paths))
    assert sorted(codes) == [200] * 7 + [429] * 33


def test_a_publishable_key_creates_and_lists_only_for_its_user(platform, project):
    web, secret = project["publishable"], project["secret"]
    created = web("POST", "/api/images/generations", json={"prompt": "a lake", "async": True})
    assert created.status_code == 200, created.text
    assert created.json()["user"] == "browser-user"
    same_user = web("POST", "/api/images/generations", json={"prompt": "a lake", "user": "browser-user"})
    assert same_user.status_code == 200
    secret("POST", "/api/images/generations", json={"prompt": "not theirs", "user": "someone-else"})

    listed = web("GET", "/api/images/generations").json()["results"]
    assert {g["user"] for g in listed} == {"browser-user"} and len(listed) == 2
    generation_id = created.json()["id"]
    own = web("GET", f"/api/images/generations/{generation_id}")
    assert own.status_code == 200 and own.json()["user"] == "browser-user"
    with web("GET", f"/api/images/generations/{generation_id}:watch", stream=True) as watch:
        assert watch.status_code == 200
        last = [json.loads(line[6:]) for line in watch.iter_lines() if line.startswith(b"data: ")][-1]
    assert last["status"] == "completed" and last["user"] == "browser-user"
    theirs = secret("GET", "/api/images/generations?user=someone-else").json()["results"][0]["id"]
    for path in (f"/api/images/generations/{theirs}", f"/api/images/generations/{theirs}:watch"):
        answer = web("GET", path)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["message"] == f"generation {theirs} not found"
    before = _generations(platform, project["id"])
    for method, path, body in (
        ("POST", "/api/images/generations", {"prompt": "x", "user": "someone-else"}),
        ("POST", "/api/images/generations", {"prompt": "x", "callbackUrl": "http://127.0.0.1:9/h"}),
        ("GET", "/api/images/generations?user=someone-else", None),
        ("DELETE", f"/api/images/generations/{generation_id}", None),
        ("POST", f"/api/images/generations/{generation_id}:cancel", {}),
        ("GET", "/api/models", None),
        ("POST", "/api/models", {"name": "x", "provider": "procedural", "servers": []}),
        ("GET", "/api/credits?user=browser-user", None),
        ("GET", "/api/webhooks/default/secret", None),
    ):
        answer = web(method, path, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
    assert _generations(platform, project["id"]) == before, "a refused request records nothing"


def test_one_idempotency_key_never_replays_one_users_generation_to_another(platform, admin, project):
    """A publishable key's user is filled in by the catalog; it is part of what makes two requests the
    same, so another user's page sending the same body and key gets its own answer, not the first one's."""
    other = admin("POST", f"/api/projects/{project['id']}/keys",
                  json={"name": "web-2", "kind": "publishable", "user": "other-user"})  # fmt: skip
    assert other.status_code == 200, other.text
    theirs = rest_client(platform, other.json()["key"])
    body, headers = {"prompt": "a shared key", "async": True}, {"Idempotency-Key": "order-1"}
    first = project["publishable"]("POST", "/api/images/generations", json=body, headers=headers)
    again = project["publishable"]("POST", "/api/images/generations", json=body, headers=headers)
    assert first.status_code == again.status_code == 200 and again.json()["id"] == first.json()["id"]
    stranger = theirs("POST", "/api/images/generations", json=body, headers=headers)
    assert stranger.status_code == 409, stranger.text
    assert first.json()["id"] not in stranger.text and "browser-user" not in stranger.text


def test_a_hundred_simultaneous_requests_against_ten_remaining_admit_exactly_ten(platform, project):
    secret = project["secret"]
    patched = secret("PATCH", "/api/models/procedural", json={"userLimits": {"daily": 10, "monthly": 50}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["userLimits"] == {"daily": 10, "monthly": 50}
    remaining = secret("GET", "/api/remaining/generations?user=racer&model=procedural").json()
    assert remaining["remaining"] == 10 and remaining["remainingThisMonth"] == 50

    def create(_):
        return secret(
            "POST", "/api/images/generations", json={"prompt": "race", "user": "racer", "async": True}
        )

    with ThreadPoolExecutor(100) as pool:
        answers = list(pool.map(create, range(100)))
    codes = sorted(a.status_code for a in answers)
    assert codes.count(200) == 10 and codes.count(429) == 90, codes
    refused = next(a for a in answers if a.status_code == 429).json()
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    assert (
        "daily limit of 10 images" in refused["message"]
        and f"resets at {tomorrow}T00:00:00Z" in (refused["message"])
    )
    (violation,) = [d for d in refused["details"] if d["@type"] == QUOTA_FAILURE]
    assert violation["violations"][0]["subject"] == "user:racer/model:procedural/daily"
    with psycopg.connect(platform.database_url) as conn:
        (made,) = conn.execute("SELECT count(*) FROM generations WHERE end_user = 'racer'").fetchone()
    assert made == 10

    remaining = secret("GET", "/api/remaining/generations?user=racer&model=procedural").json()
    assert remaining["remaining"] == 0 and remaining["remainingThisMonth"] == 40
    assert remaining["dailyResetAt"] == f"{tomorrow}T00:00:00Z"
    # A user's own limit replaces the model's default.
    raised = secret("PUT", "/api/users/racer/limits", json={"model": "procedural", "daily": 12})
    assert raised.status_code == 200 and raised.json()["daily"] == 12 and raised.json()["monthly"] == 50
    assert create(0).status_code == 200
    assert secret("GET", "/api/remaining/generations?user=racer&model=procedural").json()["remaining"] == 1
    missing_user = secret("POST", "/api/images/generations", json={"prompt": "who?"})
    assert missing_user.status_code == 400 and "user is required" in missing_user.json()["message"]

    usage = secret("GET", "/api/usage?user=racer").json()
    (today,) = usage["days"]
    assert today["date"] == dt.datetime.now(dt.UTC).date().isoformat()
    assert today["generations"] == 11 and today["failed"] == 0
    assert usage["totals"]["generations"] == 11
    assert secret("GET", "/api/usage?from=yesterday").status_code == 400
    assert secret("GET", "/api/usage?from=2026-01-01&to=2025-01-01").status_code == 400
    secret("PATCH", "/api/models/procedural", json={"userLimits": {}})


def test_a_generation_that_does_not_complete_gives_back_its_quota_and_credits(platform, project, admin):
    secret = project["secret"]
    body = {
        "name": "dead", "provider": "openai", "servers": DEAD_SERVER, "userLimits": {"daily": 1},
        "pricePerImage": 3,
    }  # fmt: skip
    # A server on a private network (loopback here) is attached by an admin key, for the project.
    refused = secret("POST", "/api/models", json=body)
    assert refused.status_code == 403 and "only an admin key" in refused.json()["message"], refused.text
    model = admin("POST", "/api/models", json={**body, "projectId": project["id"]})
    assert model.status_code == 200, model.text
    assert secret("GET", "/api/models/dead").status_code == 200, "the project's model, not the admin's"
    stranger = secret("POST", "/api/models", json={**body, "name": "x", "projectId": "pro_" + "0" * 20})
    assert stranger.status_code == 403
    assert model.json()["pricePerImage"] == 3
    body = {"prompt": "x", "user": "payer", "model": "dead", "async": True}

    short = secret("POST", "/api/images/generations", json=body)
    assert short.status_code == 400 and "too few credits" in short.json()["message"], short.text
    assert secret("PUT", "/api/credits", json={"user": "payer", "amount": 4}).json()["balance"] == 4
    first = secret("POST", "/api/images/generations", json=body)
    assert first.status_code == 200, first.text
    assert secret("GET", "/api/credits?user=payer").json()["balance"] == 1
    assert secret("POST", "/api/images/generations", json=body).status_code == 429

    cancelled = secret("POST", f"/api/images/generations/{first.json()['id']}:cancel", json={})
    assert cancelled.json()["status"] == "cancelled"
    assert secret("GET", "/api/credits?user=payer").json()["balance"] == 4
    assert secret("GET", "/api/remaining/generations?user=payer&model=dead").json()["remaining"] == 1

    # Credits never go below zero, and a price needs a user to charge.
    assert secret("PUT", "/api/credits", json={"user": "payer", "amount": -5}).status_code == 400
    assert secret("PUT", "/api/credits", json={"user": "payer", "amount": -4}).json()["balance"] == 0
    anonymous = secret("POST", "/api/images/generations", json={**body, "user": ""})
    assert anonymous.status_code == 400 and "user is required" in anonymous.json()["message"]
    for bad in ({"userLimits": {"daily": -1}}, {"pricePerImage": -1}):
        assert secret("PATCH", "/api/models/dead", json=bad).status_code == 400
    assert secret("PATCH", "/api/models/nothing", json={"pricePerImage": 1}).status_code == 404


def test_credits_stop_at_the_most_a_user_may_hold_and_stay_readable(project):
    secret = project["secret"]
    for _ in range(2):
        added = secret("PUT", "/api/credits", json={"user": "hoarder", "amount": 1_000_000_000})
        assert added.status_code == 200, added.text
    refused = secret("PUT", "/api/credits", json={"user": "hoarder", "amount": 1_000_000_000})
    assert refused.status_code == 400 and "most a user may hold" in refused.json()["message"], refused.text
    refused = secret("PUT", "/api/credits", json={"user": "hoarder", "amount": 1})
    assert refused.status_code == 400
    read = secret("GET", "/api/credits?user=hoarder")
    assert read.status_code == 200 and read.json()["balance"] == 2_000_000_000, read.text
    assert (
        secret("PUT", "/api/credits", json={"user": "hoarder", "amount": -5}).json()["balance"]
        == 1_999_999_995
    )


def test_only_a_secret_key_erases_a_user(project):
    refused = project["publishable"]("DELETE", "/api/users/browser-user")
    assert refused.status_code == 403, refused.text
    erased = project["secret"]("DELETE", "/api/users/nobody-yet")
    assert erased.status_code == 200 and erased.json()["generations"] == 0


def test_projects_are_listed_for_admin_keys_and_the_queue_for_its_readers(platform, admin, project):
    projects = admin("GET", "/api/projects")
    assert projects.status_code == 200
    assert project["id"] in [p["id"] for p in projects.json()["projects"]]
    assert project["secret"]("GET", "/api/projects").status_code == 403

    stuck = {"name": "stuck", "provider": "openai", "upstreamModel": "dall-e-2", "servers": DEAD_SERVER}
    model = admin("POST", "/api/models", json={**stuck, "projectId": project["id"]})
    assert model.status_code == 200, model.text
    for priority in ("high", "low", "low"):
        created = project["secret"]("POST", "/api/images/generations", json={
            "prompt": "waits", "model": "stuck", "async": True, "priority": priority})  # fmt: skip
        assert created.status_code == 200, created.text
    own = project["secret"]("GET", "/api/queue")
    assert own.status_code == 200
    lines = [line for line in own.json()["lines"] if line["model"] == "stuck"]
    assert [line["priority"] for line in lines] == ["high", "low"], "high first"
    assert {line["projectId"] for line in own.json()["lines"]} == {project["id"]}, "its own project only"
    assert sum(line["pending"] + line["processing"] for line in lines) == 3
    assert all(line["modelId"] == model.json()["id"] for line in lines)
    assert project["secret"]("GET", "/api/queue?projectId=pro_someone").status_code == 403
    assert project["publishable"]("GET", "/api/queue").status_code == 403
    everyone = admin("GET", f"/api/queue?projectId={project['id']}").json()["lines"]
    assert [(line["priority"], line["pending"] + line["processing"]) for line in everyone] == [
        ("high", 1), ("low", 2)]  # fmt: skip
    assert admin("GET", "/api/queue?projectId=pro_missing").status_code == 404
    for generation in project["secret"]("GET", "/api/images/generations?model=stuck").json()["results"]:
        project["secret"]("POST", f"/api/images/generations/{generation['id']}:cancel", json={})
    assert not [
        line for line in project["secret"]("GET", "/api/queue").json()["lines"] if line["model"] == "stuck"
    ]
