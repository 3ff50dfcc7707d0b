"""The TypeScript client: gen/ts is what `make protos` writes (buf with protoc-gen-es), and the typed
package around it works from Node over gRPC and over gRPC-Web, both through the running gateway
(clients/ts/test/client.test.ts, compiled with the pinned TypeScript and run with `node --test`)."""

from __future__ import annotations

import filecmp
import os
import subprocess
import uuid

import pytest

from tests.conftest import REPO, running_platform
from tools.gen_protos import generate_ts

KEY = "sk_ts_" + uuid.uuid4().hex
TS = REPO / "clients" / "ts"

pytestmark = pytest.mark.starts_processes


def _differences(left, right) -> list[str]:
    compared = filecmp.dircmp(left, right)
    found = [*compared.left_only, *compared.right_only, *compared.diff_files]
    for name, sub in compared.subdirs.items():
        found += [f"{name}/{d}" for d in _differences(sub.left, sub.right)]
    return found


def test_the_committed_typescript_code_is_what_make_protos_writes(tmp_path):
    generate_ts(tmp_path)
    assert _differences(REPO / "gen" / "ts", tmp_path / "gen" / "ts") == [], (
        "gen/ts is stale: run `make protos`"
    )


@pytest.fixture(scope="module")
def platform(pg, tmp_path_factory):
    with running_platform(pg, tmp_path_factory, KEY) as running:
        yield running


def test_the_typescript_client_works_over_grpc_and_grpc_web_through_the_gateway(platform):
    subprocess.run([str(TS / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], cwd=TS, check=True,
                   timeout=180)  # fmt: skip
    env = {**os.environ, "IMAGEGEN_URL": platform.gateway_url, "IMAGEGEN_API_KEY": KEY}
    run = subprocess.run(["node", "--test", "build/clients/ts/test/"], cwd=TS, env=env, capture_output=True,
                         text=True, timeout=180)  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "# pass 4" in run.stdout and "# fail 0" in run.stdout, run.stdout[-3000:]
