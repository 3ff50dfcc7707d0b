"""The public surface under attack and abuse: other projects' ids, bad keys, forged URLs, injection-
shaped values, a schemathesis fuzz of /openapi.json, and a minute of mixed load."""

from __future__ import annotations

import collections
import os
import pathlib
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

import psycopg
import pytest
import requests
import yaml

from services.common.vocabulary import variant_key, variant_widths
from services.storage.domain import URL_STABLE_SECONDS, UrlSigner
from tests.conftest import FAST_BLOB_SWEEPS, REPO, platform_on_own_postgres, rest_client

pytestmark = pytest.mark.starts_processes  # a platform on a Postgres of its own
ADMIN_KEY = "sk_hardening_" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    # Postgres of its own: the minute of mixed load stops it for a while.
    with platform_on_own_postgres(
        tmp_path_factory,
        ADMIN_KEY,
        IMAGEGEN_KEY_RATE_PER_SECOND="2000",
        IMAGEGEN_KEY_RATE_BURST="4000",
        # Sweeps, and the walk for blobs no row names (an outage can leave some), within the test's
        # patience; the defaults are minutes.
        # The storage outage below holds jobs between storing and recording their images for longer
        # than these sweeps' orphan age and grace (2 s each): blobs are adopted and swept under jobs
        # that then record them, which the catalog refuses until they store them again.
        **FAST_BLOB_SWEEPS,
    ) as running:
        yield running


def _project(platform, name: str) -> dict:
    admin = rest_client(platform, ADMIN_KEY)
    project_id = admin("POST", "/api/projects", json={"name": name}).json()["id"]
    key = admin("POST", f"/api/projects/{project_id}/keys", json={"name": "backend"}).json()
    return {"id": project_id, "key": key, "call": rest_client(platform, key["key"])}


@pytest.fixture(scope="module")
def tenants(platform):
    """Two projects, each with a secret key, a completed generation with two images, and a model."""
    made = {}
    for name in ("alpha", "beta"):
        tenant = _project(platform, name)
        call = tenant["call"]
        created = call("POST", "/api/images/generations", json={"prompt": f"{name} hills", "n": 2})
        assert created.status_code == 200 and created.json()["status"] == "completed", created.text
        model = call(
            "POST",
            "/api/models",
            json={
                "name": f"{name}-model",
                "provider": "procedural",
                "servers": [{"url": "builtin://procedural"}],
            },
        )
        assert model.status_code == 200, model.text
        tenant |= {"generation": created.json(), "model": f"{name}-model"}
        made[name] = tenant
    return made


def _snapshot(platform) -> dict:
    """Everything a request could change, as rows, to compare before and after."""
    tables = ("projects", "api_keys", "models", "model_servers", "generations", "output_images", "jobs",
              "user_limits", "credits", "usage_counters")  # fmt: skip
    with psycopg.connect(platform.database_url) as conn:
        return {
            table: sorted(
                map(repr, conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall())  # noqa: S608
            )
            for table in tables
        }


def test_another_projects_ids_answer_404_and_change_nothing(platform, tenants):
    alpha, beta = tenants["alpha"], tenants["beta"]
    theirs = beta["generation"]["id"]
    before = _snapshot(platform)
    for method, path, body in (
        ("GET", f"/api/images/generations/{theirs}", None),
        ("GET", f"/api/images/generations/{theirs}:watch", None),
        ("POST", f"/api/images/generations/{theirs}:cancel", None),
        ("DELETE", f"/api/images/generations/{theirs}", None),
        ("GET", f"/api/models/{beta['model']}", None),
        ("PATCH", f"/api/models/{beta['model']}", {"pricePerImage": 5}),
        ("PUT", f"/api/models/{beta['model']}/servers", {"servers": [{"url": "http://127.0.0.1:9"}]}),
        ("DELETE", f"/api/models/{beta['model']}", None),
        ("PUT", "/api/users/u1/limits", {"model": beta["model"], "daily": 1}),
        ("GET", f"/api/remaining/generations?user=u1&model={beta['model']}", None),
        ("POST", "/api/images/generations", {"prompt": "x", "model": beta["model"]}),
    ):
        answer = alpha["call"](method, path, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["code"] == 5 and beta["id"] not in answer.text, "nothing of theirs leaks"
    listed = alpha["call"]("GET", f"/api/images/generations?id={theirs}").json()["results"]
    assert listed == []
    everything = alpha["call"]("GET", "/api/images/generations?pageSize=200").json()["results"]
    assert {g["projectId"] for g in everything} == {alpha["id"]}
    assert beta["model"] not in str(alpha["call"]("GET", "/api/models").json())

    # Key management needs an admin key: a project key gets 403 for every project and key id, its own
    # included, so the answer says nothing about whether another project's ids exist.
    for method, path in (
        ("GET", f"/api/projects/{beta['id']}/keys"),
        ("GET", f"/api/projects/{alpha['id']}/keys"),
        ("POST", f"/api/projects/{beta['id']}/keys"),
        ("PATCH", f"/api/keys/{beta['key']['id']}"),
        ("DELETE", f"/api/keys/{beta['key']['id']}"),
        ("DELETE", "/api/keys/key_00000000000000000000"),
    ):
        answer = alpha["call"](method, path, json={})
        assert answer.status_code == 403, (method, path, answer.text)

    # An image URL works for what it was signed for and nothing else: pointing one of ours at their key
    # is refused.
    ours = urlsplit(alpha["generation"]["outputImages"][0]["url"])
    their_key = urlsplit(beta["generation"]["outputImages"][0]["url"]).path.rsplit("/", 1)[1]
    forged = requests.get(f"{platform.gateway_url}/api/files/{their_key}?{ours.query}", timeout=10)
    assert forged.status_code == 403

    assert _snapshot(platform) == before
    # And theirs is still whole.
    again = beta["call"]("GET", f"/api/images/generations/{theirs}").json()
    assert again["status"] == "completed" and len(again["outputImages"]) == 2
    assert requests.get(again["outputImages"][1]["url"], timeout=10).status_code == 200


def test_revoked_malformed_or_wrong_keys_answer_401_on_every_service(platform, tenants):
    admin = rest_client(platform, ADMIN_KEY)
    real = tenants["alpha"]["key"]["key"]
    revoked = admin("POST", f"/api/projects/{tenants['alpha']['id']}/keys", json={"name": "old"}).json()
    assert admin("DELETE", f"/api/keys/{revoked['id']}").status_code == 200
    near_miss = real[:-1] + ("A" if real[-1] != "A" else "B")
    headers = [
        None,
        "Bearer",
        "Bearer ",
        f"Basic {real}",
        f"Token {real}",
        f"Bearer {revoked['key']}",
        f"Bearer {near_miss}",
        f"Bearer {real[:-4]}",
        f"Bearer {real}x",
        f"Bearer sk_{'0' * 43}",
        f"Bearer {'k' * 4000}",
        "Bearer ' OR '1'='1",
    ]
    for header in headers:
        for path in ("/api/images/generations", "/api/models", "/api/credits?user=u", "/api/usage"):
            answer = requests.get(
                platform.gateway_url + path,
                headers={"Authorization": header} if header is not None else {},
                timeout=10,
            )
            assert answer.status_code == 401, (header and header[:40], path, answer.text)
            assert answer.json()["code"] == 16
    assert (
        requests.get(
            platform.gateway_url + "/api/models", headers={"Authorization": f"Bearer {real}"}, timeout=10
        ).status_code
        == 200
    )


def test_keys_are_kept_as_digests_and_compared_in_constant_time(platform, tenants, monkeypatch):
    real = tenants["alpha"]["key"]["key"]
    with psycopg.connect(platform.database_url) as conn:
        dump = repr(conn.execute("SELECT * FROM api_keys").fetchall())
    assert real not in dump and real[3:] not in dump, "a key is stored in clear"

    import asyncio

    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from services.catalog import accounts as accounts_module
    from services.catalog.account_store import AccountStore
    from services.catalog.repository import Repository
    from services.common.errors import Unauthenticated

    compared = []
    original = accounts_module.hmac.compare_digest

    def recording(a, b):
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(accounts_module.hmac, "compare_digest", recording)

    async def check() -> None:
        async with AsyncConnectionPool(
            platform.database_url,
            min_size=1,
            max_size=1,
            kwargs={"row_factory": dict_row, "autocommit": True},
        ) as pool:
            accounts = accounts_module.Accounts(AccountStore(pool, Repository(pool)))
            principal = await accounts.authenticate(real)
            assert principal.project_id == tenants["alpha"]["id"]
            with pytest.raises(Unauthenticated):
                await accounts.authenticate(wrong)

            class LookupThatIgnoresTheDigest(AccountStore):
                """Finds the real key's row whatever is asked: only the comparison can refuse now."""

                async def authenticate(self, digest, per_second, burst):
                    return await super().authenticate(real_digest, per_second, burst)

            fooled = accounts_module.Accounts(LookupThatIgnoresTheDigest(pool, Repository(pool)))
            with pytest.raises(Unauthenticated):
                await fooled.authenticate(wrong)

    wrong = real[:-1] + ("A" if real[-1] != "A" else "B")
    real_digest, wrong_digest = accounts_module.hash_key(real), accounts_module.hash_key(wrong)
    asyncio.run(check())
    assert compared == [(real_digest, real_digest), (real_digest, wrong_digest)], (
        "digests are compared with hmac.compare_digest, and a wrong one is refused by it"
    )


def test_a_tampered_or_expired_image_url_answers_403(platform, tenants):
    url = tenants["alpha"]["generation"]["outputImages"][0]["url"]
    assert requests.get(url, timeout=10).status_code == 200
    parts = urlsplit(url)
    key = parts.path.rsplit("/", 1)[1]
    query = dict(pair.split("=", 1) for pair in parts.query.split("&"))
    signature, expires = query["signature"], int(query["expires"])
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    base = f"{platform.gateway_url}/api/files/{key}"
    for tampered in (
        f"{base}?expires={expires}&signature={flipped}",
        f"{base}?expires={expires + 3600}&signature={signature}",
        f"{base}?expires={expires}&signature={signature.upper()}",
        f"{base}?expires={expires}",
        f"{base}?expires={expires}&signature=",
        f"{base}?signature={signature}",
    ):
        answer = requests.get(tampered, timeout=10)
        assert answer.status_code == 403, (tampered, answer.text)
        assert "signature" in answer.json()["message"]

    # Properly signed with the platform's own key, but for a time that has passed.
    secret = (platform.log_dir / "url-signing-key").read_text().strip()
    signer = UrlSigner(secret, platform.gateway_url, ttl_seconds=60)
    expired = signer.sign(key, now=time.time() - 2 * URL_STABLE_SECONDS)
    answer = requests.get(expired, timeout=10)
    assert answer.status_code == 403 and "expired" in answer.json()["message"], answer.text
    assert requests.get(signer.sign(key), timeout=10).status_code == 200, "the test signs as storage does"


INJECTIONS = [
    "' OR '1'='1",
    "x'; DROP TABLE generations; --",
    '" OR ""="',
    "../../../../etc/passwd",
    "..%2F..%2Furl-signing-key",
    "img_' UNION SELECT key_hash FROM api_keys --",
    "%00",
    "$(touch /tmp/pwned)",
]


def test_sql_and_path_shaped_values_are_only_values(platform, tenants):
    call = tenants["beta"]["call"]
    before = _snapshot(platform)
    for value in INJECTIONS:
        encoded = quote(value, safe="")
        for path in (
            f"/api/images/generations/{encoded}",
            f"/api/images/generations/{encoded}:watch",
            f"/api/models/{encoded}",
        ):
            answer = call("GET", path)
            assert answer.status_code in (400, 404), (path, answer.status_code, answer.text)
        for query in (f"user={encoded}", f"model={encoded}", f"id={encoded}", f"status={encoded}"):
            answer = call("GET", f"/api/images/generations?{query}")
            assert answer.status_code in (200, 400), (query, answer.text)
            if answer.status_code == 200:
                assert answer.json()["results"] == [], (query, answer.text)
        for query in (f"user={encoded}", f"user=u&model={encoded}&from={encoded}"):
            answer = call("GET", f"/api/usage?{query}")
            assert answer.status_code in (200, 400, 404), (query, answer.text)
        files = requests.get(
            f"{platform.gateway_url}/api/files/{encoded}?expires=9999999999&signature=00", timeout=10
        )
        assert files.status_code in (400, 403, 404), (value, files.text)
        assert "PRIVATE" not in files.text and files.headers["content-type"].startswith(
            ("application/json", "text/plain")
        )
    assert _snapshot(platform) == before

    # As a user name, an injection is stored and matched exactly, like any other name.
    tricky = INJECTIONS[1]
    created = call(
        "POST", "/api/images/generations", json={"prompt": "tables", "user": tricky, "async": True}
    )
    assert created.status_code == 200, created.text
    listed = call("GET", f"/api/images/generations?user={quote(tricky, safe='')}").json()["results"]
    assert [g["id"] for g in listed] == [created.json()["id"]] and listed[0]["user"] == tricky
    with psycopg.connect(platform.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM generations").fetchone()[0] >= 3


def test_the_gateway_serves_the_committed_openapi_document(platform):
    served = requests.get(platform.gateway_url + "/openapi.json", timeout=10)
    assert served.status_code == 200 and served.headers["content-type"].startswith("application/json")
    assert served.json() == yaml.safe_load((REPO / "gateway/openapi.yaml").read_text())


def test_a_fuzzing_run_finds_no_server_error_and_no_answer_outside_the_schema(platform, tmp_path):
    run = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", platform.gateway_url + "/openapi.json",
            "--header", f"Authorization: Bearer {ADMIN_KEY}",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_headers_conformance,response_schema_conformance",
            "--phases", "examples,coverage,fuzzing",
            # One worker: CPython 3.11.7's ast.parse is not thread-safe (gh-106905), and hypothesis calls it
            # while it draws, so two workers now and then die with "AST constructor recursion depth mismatch".
            "--max-examples", "25", "--workers", "1", "--request-timeout", "30",
            "--seed", os.environ.get("IMAGEGEN_FUZZ_SEED", "1"),
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]


LOAD_SECONDS = float(os.environ.get("IMAGEGEN_LOAD_SECONDS", "60"))
OUTAGE_RECOVERY_SECONDS = 3


def _rss_kib(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class _Load:
    """Clients that mix valid and invalid requests, and tally what came back."""

    def __init__(self, platform, tenants):
        self.platform = platform
        self.alpha = tenants["alpha"]
        self.beta = tenants["beta"]
        self.mine: list[str] = []
        self.answers: collections.Counter = collections.Counter()
        self.unexpected: list[str] = []
        self.lock = threading.Lock()
        # [start, end] of each outage (end: infinity while it lasts); answers overlapping one, or the
        # few seconds after it while pools reconnect, may be 503.
        self.outages: list[list[float]] = []

    def outage(self) -> list[float]:
        window = [time.monotonic(), float("inf")]
        with self.lock:
            self.outages.append(window)
        return window

    def _in_outage(self, started: float, finished: float) -> bool:
        with self.lock:
            return any(
                started <= end + OUTAGE_RECOVERY_SECONDS and finished >= start for start, end in self.outages
            )

    def run(self, worker: int, until: float) -> None:
        rng = random.Random(worker)
        call = rest_client(self.platform, self.alpha["key"]["key"])
        stranger = rest_client(self.platform, "sk_not_a_key_" + uuid.uuid4().hex)
        actions = [
            (6, self._create_async), (2, self._create_sync), (4, self._get), (3, self._list),
            (2, self._cancel), (2, self._delete), (1, self._models), (1, self._usage),
            (2, self._bad_body), (2, self._bad_values), (1, self._bad_key), (2, self._foreign),
            (1, self._bad_url),
        ]  # fmt: skip
        weights = [weight for weight, _ in actions]
        while time.monotonic() < until:
            _, action = rng.choices(actions, weights)[0]
            started = time.monotonic()
            name, answer, allowed = action(rng, call, stranger)
            if answer.status_code == 503 and self._in_outage(started, time.monotonic()):
                allowed = {503}
            with self.lock:
                self.answers[(name, answer.status_code)] += 1
                if answer.status_code not in allowed:
                    self.unexpected.append(f"{name}: {answer.status_code} {answer.text[:300]}")

    def _pick(self, rng) -> str | None:
        with self.lock:
            return rng.choice(self.mine) if self.mine else None

    def _created(self, answer) -> None:
        if answer.status_code == 200:
            with self.lock:
                self.mine.append(answer.json()["id"])

    # A few prompts and seeds, so identical images meet in storage (one blob, several rows).
    def _body(self, rng, **more) -> dict:
        return {
            "prompt": f"dunes {rng.randrange(6)}",
            "seed": rng.randrange(3),
            "n": rng.randint(1, 2),
        } | more

    def _create_async(self, rng, call, _):
        answer = call("POST", "/api/images/generations", json=self._body(rng, **{"async": True}))
        self._created(answer)
        return "create async", answer, {200}

    def _create_sync(self, rng, call, _):
        answer = call("POST", "/api/images/generations", json=self._body(rng))
        self._created(answer)
        return "create sync", answer, {200}

    def _get(self, rng, call, _):
        target = self._pick(rng) or "img_00000000000000000000"
        return "get", call("GET", f"/api/images/generations/{target}"), {200, 404}

    def _list(self, rng, call, _):
        query = rng.choice(["", "?status=completed", "?pageSize=5", "?user=nobody", "?status=bogus"])
        return "list", call("GET", "/api/images/generations" + query), {200, 400}

    def _cancel(self, rng, call, _):
        target = self._pick(rng) or "img_00000000000000000000"
        return "cancel", call("POST", f"/api/images/generations/{target}:cancel"), {200, 400, 404}

    def _delete(self, rng, call, _):
        target = self._pick(rng) or "img_00000000000000000000"
        return "delete", call("DELETE", f"/api/images/generations/{target}"), {200, 404}

    def _models(self, rng, call, _):
        return "models", call("GET", "/api/models"), {200}

    def _usage(self, rng, call, _):
        return "usage", call("GET", "/api/usage?user=nobody"), {200}

    def _bad_body(self, rng, call, _):
        body = rng.choice([b"{", b"[1,2]", b'{"prompt": 5, "n": "x"}', b"\xff\xfe", b'{"width": 1e99}'])
        answer = call(
            "POST", "/api/images/generations", data=body, headers={"content-type": "application/json"}
        )
        return "bad body", answer, {400}

    def _bad_values(self, rng, call, _):
        body = rng.choice([
            {"prompt": ""}, {"prompt": "x", "width": 100}, {"prompt": "x", "n": 99},
            {"prompt": "x", "model": "nope"}, {"prompt": "x", "priority": "urgent"},
            {"prompt": "x", "callbackUrl": "file:///etc/passwd"}, {"prompt": "x" * 20_000},
        ])  # fmt: skip
        return "bad values", call("POST", "/api/images/generations", json=body), {400, 404}

    def _bad_key(self, rng, call, stranger):
        return "bad key", stranger("GET", "/api/images/generations"), {401}

    def _foreign(self, rng, call, _):
        theirs = self.beta["generation"]["id"]
        path = rng.choice([f"/api/images/generations/{theirs}", f"/api/models/{self.beta['model']}"])
        return "foreign", call(rng.choice(["GET", "DELETE"]), path), {404}

    def _bad_url(self, rng, call, _):
        url = self.alpha["generation"]["outputImages"][0]["url"]
        answer = requests.get(url[:-1] + ("0" if url[-1] != "0" else "1"), timeout=30)
        return "forged url", answer, {403}


def _stored_keys(platform) -> set[str]:
    root = platform.log_dir / "objects"
    return {path.name for path in root.glob("??/*") if path.is_file()}


def _referenced_keys(platform) -> set[str]:
    """Every image a row names, and each of its variants."""
    with psycopg.connect(platform.database_url) as conn:
        rows = conn.execute("SELECT DISTINCT storage_key, width, variants FROM output_images").fetchall()
    return {key for key, _, _ in rows} | {
        variant_key(key, width)
        for key, original_width, variants in rows
        if variants
        for width in variant_widths(original_width)
    }


def test_a_minute_of_mixed_load_through_outages_loses_nothing_leaves_no_growth_and_storage_agreeing(
    platform, tenants
):
    """Storage, then Postgres, go away for a while in the middle of the load: answers meanwhile are 503,
    never a 500, and afterwards nothing acknowledged is lost and nothing is left behind."""
    pids = {name: process.pid for name, process in platform.processes.items()}
    load = _Load(platform, tenants)
    started = time.monotonic()
    until = started + LOAD_SECONDS

    def storage_down():
        load.outage()
        platform.stop_one("storage")

    def storage_up():
        platform.restart("storage", log_dir=platform.log_dir)
        load.outages[-1][1] = time.monotonic()

    def postgres_down():
        load.outage()
        platform.postgres.stop()

    def postgres_up():
        platform.postgres.start()
        load.outages[-1][1] = time.monotonic()

    # Both in the first 30%, so that memory is compared between two stretches of steady load after
    # them; Postgres first, as the sync creates that wait out storage's absence hold every client.
    plan = [(0.05, postgres_down), (0.15, postgres_up), (0.18, storage_down), (0.3, storage_up)]
    samples: list[tuple[float, dict[tuple[str, int], int]]] = []
    with ThreadPoolExecutor(8) as pool:
        running = [pool.submit(load.run, worker, until) for worker in range(8)]
        while time.monotonic() < until:
            at = time.monotonic() - started
            while plan and at >= plan[0][0] * LOAD_SECONDS:
                plan.pop(0)[1]()
            live = {name: process.pid for name, process in platform.processes.items()}
            samples.append((at, {(name, pid): _rss_kib(pid) for name, pid in live.items()}))
            # Often: a median of many samples is steady under the generator's rendering swings.
            time.sleep(min(0.5, max(0.0, until - time.monotonic())))
        for future in running:
            future.result()
    assert not plan and len(load.outages) == 2

    total = sum(load.answers.values())
    print(f"{total} requests in {LOAD_SECONDS:.0f} s: {dict(sorted(load.answers.items()))}")
    assert not load.unexpected, load.unexpected[:20]
    assert total > 20 * LOAD_SECONDS, "the load was too light to show anything"

    assert load.answers[("create async", 503)] > 0, "the outages were felt"
    # No process restarted or died, but the storage service the test restarted.
    now = {name: process.pid for name, process in platform.processes.items()}
    assert now.pop("storage") != pids.pop("storage") and now == pids
    assert all(process.poll() is None for process in platform.processes.values())

    # Memory is flat: over the steady load after the outages (and the backlog they left) the median of
    # the last stretch is no higher than that of the one before (by then caches and pools are full),
    # each process as it runs now. Medians, because rendering makes the generator's RSS swing by ±50 MiB.
    for name, process in platform.processes.items():
        ours = (name, process.pid)
        middle = statistics.median(
            r[ours] for at, r in samples if 0.45 * LOAD_SECONDS <= at < 0.72 * LOAD_SECONDS and ours in r
        )
        end = statistics.median(r[ours] for at, r in samples if at >= 0.72 * LOAD_SECONDS)
        print(f"{name}: RSS median {middle / 1024:.1f} MiB mid-run, {end / 1024:.1f} MiB at the end")
        assert end - middle < max(16 * 1024, middle // 10), f"{name} grew from {middle} to {end} KiB"

    # Once the queue is empty and unused blobs are swept, catalog and storage hold the same images.
    deadline = time.monotonic() + 60
    while True:
        with psycopg.connect(platform.database_url) as conn:
            open_jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        stored, referenced = _stored_keys(platform), _referenced_keys(platform)
        if (open_jobs == 0 and stored == referenced) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert open_jobs == 0
    # Every generation acknowledged to a client finished, or was cancelled or deleted by the load: none
    # failed for an outage.
    with psycopg.connect(platform.database_url) as conn:
        ended = dict(
            conn.execute("SELECT id, status FROM generations WHERE id = ANY(%s)", (load.mine,)).fetchall()
        )
    assert set(ended.values()) <= {"completed", "cancelled"}, collections.Counter(ended.values())
    assert referenced - stored == set(), "rows whose image is missing from storage"
    assert stored - referenced == set(), "images in storage that no row references"
    assert list((platform.log_dir / "objects" / ".incoming").iterdir()) == []
