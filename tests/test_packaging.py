"""The Docker image runs `pip install .`: the installed package must carry what the services read."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import zipfile

import pytest

pytestmark = pytest.mark.starts_processes

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_the_wheel_carries_code_migrations_and_the_descriptor_set(tmp_path):
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip_wheel, "-w", str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("imagegen-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = {p.name for p in (REPO / "services/catalog/migrations").glob("*.sql")}
    assert {f"services/catalog/migrations/{m}" for m in migrations} <= names
    for required in (
        "gateway/api_descriptor.pb",
        "gateway/proxy.py",
        "gateway/envoy.yaml",
        "gateway/openapi.json",
        "imagegen/generator/v1/generator_pb2.py",
        "imagegen/catalog/v1/catalog_pb2_grpc.py",
        "services/generator/server.py",
        "services/common/healthcheck.py",
    ):
        assert required in names, required
    assert not any(name.startswith("tests/") for name in names)
