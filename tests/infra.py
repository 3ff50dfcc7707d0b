"""Real Postgres and a real S3 API for tests: from testcontainers where a Docker engine answers,
otherwise embedded Postgres and moto's S3 server on loopback. Every process started here is stopped
by its pid."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg

from tools.embedded_pg import EmbeddedPostgres, free_port

S3_ACCESS_KEY = "imagegen-test"
S3_SECRET_KEY = "imagegen-test-secret"


def docker_available() -> bool:
    if os.environ.get("IMAGEGEN_TEST_NO_DOCKER"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
        return True
    except Exception:
        return False


@dataclass
class PostgresServer:
    """`url(db)` for any database on one server started once per session."""

    base_url: str

    def url(self, database: str) -> str:
        head, _, _ = self.base_url.rpartition("/")
        return f"{head}/{database}"

    def create_database(self, template: str | None = None) -> str:
        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            suffix = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{suffix}')
        return self.url(name)


@dataclass
class S3Server:
    endpoint: str  # host:port

    def new_bucket_name(self) -> str:
        return "t-" + uuid.uuid4().hex[:20]


@contextlib.contextmanager
def postgres_server(tmp: pathlib.Path) -> Iterator[PostgresServer]:
    if docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17-alpine", driver=None) as container:
            yield PostgresServer(container.get_connection_url())
        return
    server = EmbeddedPostgres(tmp / "pgdata", durable=False).start()
    try:
        yield PostgresServer(server.url("postgres"))
    finally:
        server.stop()


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    if docker_available():
        from testcontainers.minio import MinioContainer

        with MinioContainer(access_key=S3_ACCESS_KEY, secret_key=S3_SECRET_KEY) as container:
            config = container.get_config()
            yield S3Server(config["endpoint"])
        return
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_tcp(port, process)
        yield S3Server(f"127.0.0.1:{port}")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_tcp(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {port}")
