"""The public surface under attack and abuse: other projects' ids, bad keys, forged URLs, injection-
shaped values, a schemathesis fuzz of /openapi.json, and a minute of mixed load."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import requests
import yaml

from tests.conftest import REPO, running_platform

ADMIN_KEY = "sk_hardening_" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def platform(pg, tmp_path_factory):
    with running_platform(
        pg, tmp_path_factory, ADMIN_KEY, IMAGEGEN_KEY_RATE_PER_SECOND="2000", IMAGEGEN_KEY_RATE_BURST="4000"
    ) as running:
        yield running


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
            "--max-examples", "25", "--workers", "2", "--request-timeout", "30",
            "--seed", os.environ.get("IMAGEGEN_FUZZ_SEED", "1"),
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
