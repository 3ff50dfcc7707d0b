"""Arweave archiving against arlocal, a local Arweave node, with arweave-js (the reference client) as the
judge of imagegen's transactions, chunks and proofs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import select
import subprocess
import time
import uuid

import psycopg
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from services.common.config import REPO_ROOT
from services.generator.arweave import (
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    Wallet,
    WalletError,
    b64url,
    signed_transaction,
    transaction_chunks,
    unb64url,
)
from tests.conftest import create_project, rest_client, running_platform

pytestmark = pytest.mark.starts_processes

TOOLS = REPO_ROOT / "tests" / "arweave"
BOOTSTRAP_KEY = "sk_arweave_bootstrap_" + uuid.uuid4().hex
CONFIRMATIONS = 2


def _jwk(key: rsa.RSAPrivateKey) -> dict:
    def encode(value: int) -> str:
        return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    private = key.private_numbers()
    public = private.public_numbers
    return {
        "kty": "RSA",
        "e": encode(public.e),
        "n": encode(public.n),
        "d": encode(private.d),
        "p": encode(private.p),
        "q": encode(private.q),
        "dp": encode(private.dmp1),
        "dq": encode(private.dmq1),
        "qi": encode(private.iqmp),
    }


def reference(data: list[bytes] = (), transactions: list[dict] = ()) -> dict:
    """arweave-js's chunks and proofs for each data, and its verdict on each transaction."""
    request = {"data": [base64.b64encode(d).decode() for d in data], "transactions": list(transactions)}
    answer = subprocess.run(
        ["node", "reference.js"],
        cwd=TOOLS,
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


@pytest.fixture(scope="module")
def jwk() -> dict:
    return _jwk(rsa.generate_private_key(public_exponent=65537, key_size=4096))


@pytest.fixture(scope="module")
def arlocal(tmp_path_factory):
    if not (TOOLS / "node_modules" / "arlocal").is_dir():
        pytest.fail("arlocal is not installed; `make test` installs it (npm ci in tests/arweave)")
    workdir = tmp_path_factory.mktemp("arlocal")
    with open(workdir / "arlocal.log", "wb") as log:
        node = subprocess.Popen(
            # Run from the work folder: arlocal writes a `logs` folder wherever it runs.
            ["node", str(TOOLS / "serve.js"), str(workdir / "db")],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        try:
            ready, _, _ = select.select([node.stdout], [], [], 60)
            assert ready, "arlocal did not start within 60 s"
            line = node.stdout.readline()
            assert line, f"arlocal exited: {(workdir / 'arlocal.log').read_text()[-2000:]}"
            yield f"http://127.0.0.1:{json.loads(line)['port']}"
        finally:
            node.terminate()
            try:
                node.wait(10)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
            node.stdout.close()


@pytest.fixture(scope="module")
def platform(pg, tmp_path_factory, arlocal, jwk):
    wallet = tmp_path_factory.mktemp("wallet") / "wallet.json"
    wallet.write_text(json.dumps(jwk))
    with running_platform(
        pg,
        tmp_path_factory,
        BOOTSTRAP_KEY,
        IMAGEGEN_ARWEAVE_WALLET=str(wallet),
        IMAGEGEN_ARWEAVE_NODE_URL=arlocal,
        IMAGEGEN_ARWEAVE_CONFIRMATIONS=str(CONFIRMATIONS),
        IMAGEGEN_ARWEAVE_RETRY_SECONDS="0.2",
        IMAGEGEN_ARWEAVE_CHECK_SECONDS="0.3",
        IMAGEGEN_ARWEAVE_WAIT_SECONDS="3",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def api(platform):
    return rest_client(platform, BOOTSTRAP_KEY)


def _recoup(api, prompt: str) -> dict:
    answer = api("GET", "/api/image/generate", params={"prompt": prompt, "account_id": str(uuid.uuid4())})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _generation_id(platform, sha256: str) -> str:
    with psycopg.connect(platform.database_url) as conn:
        return conn.execute(
            "SELECT generation_id FROM output_images WHERE sha256 = %s", (sha256,)
        ).fetchone()[0]


def _archive_of(api, generation_id: str) -> dict | None:
    answer = api("GET", f"/api/images/generations/{generation_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()["outputImages"][0].get("arweave")


def _wait_for_archive(api, generation_id: str, state: str, seconds: float = 30) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        archive = _archive_of(api, generation_id)
        if archive and archive["state"] == state:
            return archive
        assert time.monotonic() < deadline, f"archive still {archive} after {seconds} s"
        time.sleep(0.1)


def _attempts(platform, sha256: str) -> int:
    with psycopg.connect(platform.database_url) as conn:
        row = conn.execute(
            "SELECT a.attempts FROM arweave_archives a JOIN output_images o ON o.storage_key = a.storage_key"
            " WHERE o.sha256 = %s",
            (sha256,),
        ).fetchone()
        return row[0] if row else 0


# -- the protocol, against arweave-js ------------------------------------------------------------------


def test_chunks_data_roots_and_proofs_are_arweave_js_own_for_every_edge_of_the_chunking():
    sizes = [
        1,
        MIN_CHUNK_SIZE,
        MAX_CHUNK_SIZE - 1,
        MAX_CHUNK_SIZE,  # ends with the empty chunk arweave-js counts in the root but never uploads
        MAX_CHUNK_SIZE + 1,  # a 1-byte remainder: the last two chunks are evened out
        MAX_CHUNK_SIZE + MIN_CHUNK_SIZE,
        3 * MAX_CHUNK_SIZE + 1000,  # an odd leaf out, promoted a layer
        5 * MAX_CHUNK_SIZE + 31 * 1024,
    ]
    data = [os.urandom(size) for size in sizes]
    expected = reference(data=data)["chunks"]
    for size, content, theirs in zip(sizes, data, expected, strict=True):
        root, chunks = transaction_chunks(content)
        assert b64url(root) == theirs["data_root"], size
        assert [(c.offset, b64url(c.proof)) for c in chunks] == [
            (p["offset"], p["proof"]) for p in theirs["proofs"]
        ], size
        assert b"".join(content[c.min_byte_range : c.max_byte_range] for c in chunks) == content


def test_signed_transactions_verify_with_arweave_js_and_a_changed_field_does_not(jwk):
    wallet = Wallet.from_jwk(jwk)
    transaction, _ = signed_transaction(
        wallet, os.urandom(300_000), [("Content-Type", "image/png")], b64url(os.urandom(48)), "1234"
    )
    raw = transaction.to_json()
    assert hashlib.sha256(unb64url(raw["signature"])).digest() == unb64url(raw["id"])
    altered = [dict(raw, reward="1235"), dict(raw, tags=[]), dict(raw, data_size="299999")]
    assert reference(transactions=[raw, *altered])["verified"] == [True, False, False, False]


def test_a_wallet_that_cannot_sign_is_refused_with_its_reason(tmp_path, jwk):
    missing = tmp_path / "missing.json"
    with pytest.raises(WalletError, match="cannot read"):
        Wallet.load(missing)
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json")
    with pytest.raises(WalletError, match="not JSON"):
        Wallet.load(garbled)
    public_only = tmp_path / "public.json"
    public_only.write_text(json.dumps({"kty": "RSA", "n": jwk["n"], "e": jwk["e"]}))
    with pytest.raises(WalletError, match="private key"):
        Wallet.load(public_only)
    assert Wallet.from_jwk(jwk).address == b64url(hashlib.sha256(unb64url(jwk["n"])).digest())


# -- the platform, against arlocal ----------------------------------------------------------------------


def test_an_unfunded_wallet_never_fails_a_generation_and_the_archive_is_retried_until_posted(
    platform, api, arlocal, jwk
):
    body = _recoup(api, "a lighthouse at dusk")
    data = base64.b64decode(body["images"][0]["base64"])
    sha256 = hashlib.sha256(data).hexdigest()
    # The image is made and answered; only its Arweave copy waits.
    assert body["imageUrl"].startswith(platform.gateway_url + "/api/permanent/")
    assert "arweaveResult" not in body
    (warning,) = body["warnings"]
    assert warning["setting"] == "arweave" and "enough tokens" in warning["message"]

    generation_id = _generation_id(platform, sha256)
    archive = _archive_of(api, generation_id)
    assert archive["state"] == "pending" and archive["transactionId"] == "" and archive["url"] == ""
    assert "enough tokens" in archive["lastError"]
    deadline = time.monotonic() + 20
    while _attempts(platform, sha256) < 2:
        assert time.monotonic() < deadline, "the archive was not retried"
        time.sleep(0.1)

    wallet = Wallet.from_jwk(jwk)
    assert requests.get(f"{arlocal}/mint/{wallet.address}/100000000000000", timeout=10).status_code == 200
    archive = _wait_for_archive(api, generation_id, "posted")
    assert archive["url"] == f"{arlocal}/{archive['transactionId']}" and archive["lastError"] == ""
    served = requests.get(archive["url"], timeout=10)
    assert served.status_code == 200 and served.content == data
    assert served.headers["content-type"] == "image/png"

    assert requests.get(f"{arlocal}/mine/{CONFIRMATIONS + 1}", timeout=10).status_code == 200
    confirmed = _wait_for_archive(api, generation_id, "confirmed")
    assert confirmed["transactionId"] == archive["transactionId"]


def test_recoup_answers_the_arweave_transaction_and_its_gateway_url(platform, api, arlocal, jwk):
    body = _recoup(api, "a paper boat on a pond")
    data = base64.b64decode(body["images"][0]["base64"])
    assert body["warnings"] == []
    result = body["arweaveResult"]
    assert body["imageUrl"] == f"{arlocal}/{result['id']}"
    assert result["format"] == 2 and result["owner"] == jwk["n"]
    assert result["target"] == "" and result["quantity"] == "0"
    assert result["data_size"] == str(len(data))
    assert result["reward"] == requests.get(f"{arlocal}/price/{len(data)}", timeout=10).text
    tags = {unb64url(t["name"]).decode(): unb64url(t["value"]).decode() for t in result["tags"]}
    assert tags == {"Content-Type": "image/png", "App-Name": "imagegen"}
    assert result["data_root"] == b64url(transaction_chunks(data)[0])

    served = requests.get(body["imageUrl"], timeout=10)
    assert served.status_code == 200 and served.content == data
    on_node = requests.get(f"{arlocal}/tx/{result['id']}", timeout=10).json()
    assert on_node["signature"] == result["signature"]
    assert reference(transactions=[result, dict(result, quantity="1")])["verified"] == [True, False]


def test_large_images_are_uploaded_chunk_by_chunk(platform, api, arlocal):
    answer = api(
        "POST",
        "/api/images/generations",
        json={"prompt": "a coral reef, every fish", "width": 1024, "height": 1024, "user": "reef"},
    )
    assert answer.status_code == 200, answer.text
    generation = answer.json()
    image = generation["outputImages"][0]
    assert int(image["sizeBytes"]) > MAX_CHUNK_SIZE  # two chunks at least, posted apart from the transaction
    archive = _wait_for_archive(api, generation["id"], "posted")
    original = requests.get(image["permanentUrl"], timeout=10).content
    # The transaction went without data, so what the node serves was put together from the chunks.
    served = requests.get(archive["url"], timeout=30)
    assert served.status_code == 200 and served.content == original


def test_projects_without_permanent_urls_put_nothing_on_arweave(platform, api):
    project_id, key = create_project(platform.database_url, "private")
    assert api("PATCH", f"/api/projects/{project_id}", json={"permanentUrls": False}).status_code == 200
    own = rest_client(platform, key)
    answer = own("POST", "/api/images/generations", json={"prompt": "a private sketch"})
    assert answer.status_code == 200, answer.text
    image = answer.json()["outputImages"][0]
    assert "arweave" not in image
    with psycopg.connect(platform.database_url) as conn:
        (queued,) = conn.execute(
            "SELECT count(*) FROM arweave_archives a JOIN output_images o ON o.storage_key = a.storage_key"
            " WHERE o.project_id = %s",
            (project_id,),
        ).fetchone()
    assert queued == 0


def test_a_transaction_already_on_the_node_is_not_paid_for_twice_and_a_dropped_one_is_posted_again(
    platform, api, arlocal, jwk
):
    address = Wallet.from_jwk(jwk).address
    body = _recoup(api, "a kite over the dunes")
    data = base64.b64decode(body["images"][0]["base64"])
    first = body["arweaveResult"]["id"]
    generation_id = _generation_id(platform, hashlib.sha256(data).hexdigest())
    balance = requests.get(f"{arlocal}/wallet/{address}/balance", timeout=10).text
    # As if the node's answer to the post had been lost: the archive is pending with its transaction.
    with psycopg.connect(platform.database_url) as conn:
        conn.execute(
            "UPDATE arweave_archives SET state = 'pending', url = '', next_attempt_at = now()"
            " WHERE transaction->>'id' = %s",
            (first,),
        )
    archive = _wait_for_archive(api, generation_id, "posted")
    assert archive["transactionId"] == first
    assert requests.get(f"{arlocal}/wallet/{address}/balance", timeout=10).text == balance
    # The node drops it (unmined transactions can be): the next status check finds out and posts again.
    assert requests.delete(f"{arlocal}/tx/{first}", timeout=10).status_code == 200
    deadline = time.monotonic() + 30
    while requests.get(f"{arlocal}/tx/{first}/status", timeout=10).status_code == 404:
        assert time.monotonic() < deadline, "the dropped transaction was not posted again"
        time.sleep(0.1)
    archive = _wait_for_archive(api, generation_id, "posted")
    assert archive["transactionId"] == first
    assert requests.get(archive["url"], timeout=10).content == data
