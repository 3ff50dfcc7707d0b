from __future__ import annotations

import asyncio
import contextlib
import pathlib
import secrets
from collections.abc import Iterator

import psycopg
import pytest
import requests

from services.catalog.accounts import hash_key
from services.catalog.db import migrate
from services.catalog.repository import Repository
from tests.infra import PostgresServer, S3Server, postgres_server, s3_server
from tools.embedded_pg import EmbeddedPostgres
from tools.supervisor import Platform

REPO = pathlib.Path(__file__).resolve().parents[1]
TEMPLATE_DB = "imagegen_template"
# Every process a test starts comes through these fixtures (Postgres, the S3 server, and the platform and
# arlocal, which need them) or a `starts_processes` mark; `make test-fast` runs the other tests.
PROCESS_FIXTURES = {"pg", "s3"}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.starts_processes)


@pytest.fixture(scope="session")
def pg(tmp_path_factory) -> PostgresServer:
    with postgres_server(tmp_path_factory.mktemp("postgres")) as server:
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        asyncio.run(migrate(server.url(TEMPLATE_DB)))
        yield server


@pytest.fixture
def database_url(pg: PostgresServer) -> str:
    """A fresh, migrated database for one test, copied from the session's template."""
    return pg.create_database(template=TEMPLATE_DB)


@pytest.fixture(scope="session")
def s3() -> S3Server:
    with s3_server() as server:
        yield server


def create_project(database_url: str, name: str = "test") -> tuple[str, str]:
    """A project with the built-in models and a secret key; answers (project_id, key)."""
    key = "sk_" + secrets.token_urlsafe(24)

    async def _create() -> str:
        import psycopg_pool
        from psycopg.rows import dict_row

        async with psycopg_pool.AsyncConnectionPool(
            database_url, min_size=1, max_size=1, kwargs={"row_factory": dict_row, "autocommit": True}
        ) as pool:
            return await Repository(pool).create_project_with_key(name, hash_key(key), "test", admin=False)

    return asyncio.run(_create()), key


def platform_env(database_url: str, api_key: str, var: pathlib.Path, **env: str) -> dict[str, str]:
    """What every test platform runs with, then `env`."""
    return {
        "IMAGEGEN_DATABASE_URL": database_url,
        "IMAGEGEN_BOOTSTRAP_API_KEY": api_key,
        "IMAGEGEN_VAR_DIR": str(var),
        "IMAGEGEN_LOG_LEVEL": "INFO",
        # Tests reach loopback only: no URL a test (or the fuzzer) writes leaves the machine, and the
        # fake model servers, photo servers and webhook receivers on loopback are allowed. The tests of
        # refusal turn loopback off again.
        "IMAGEGEN_OUTBOUND_PUBLIC": "false",
        "IMAGEGEN_ALLOWED_NETWORKS": "127.0.0.0/8",
        "IMAGEGEN_ALLOW_PRIVATE_CALLBACKS": "true",
        **env,
    }


@contextlib.contextmanager
def running_platform(pg, tmp_path_factory, api_key: str, **env: str):
    """Envoy and the three services on a fresh database, every port the kernel's choice; local-folder
    URLs point at Envoy, whose port Envoy's admin tells."""
    database_url = pg.create_database()
    var = tmp_path_factory.mktemp("var")
    platform = Platform(env=platform_env(database_url, api_key, var, **env))
    platform.start(log_dir=var)
    platform.database_url = database_url
    platform.log_dir = var
    try:
        yield platform
    finally:
        platform.stop()


@contextlib.contextmanager
def platform_on_own_postgres(
    tmp_path_factory, api_key: str, replicas: dict[str, int] | None = None, **env: str
) -> Iterator[Platform]:
    """As running_platform, on a Postgres of its own that the test may stop and start again
    (`platform.postgres`)."""
    var = tmp_path_factory.mktemp("var")
    postgres = EmbeddedPostgres(var / "postgres", durable=False).start()
    try:
        database_url = postgres.create_database("imagegen")
        platform = Platform(env=platform_env(database_url, api_key, var, **env), replicas=replicas or {})
        platform.database_url, platform.log_dir, platform.postgres = database_url, var, postgres
        try:
            platform.start(log_dir=var)
            yield platform
        finally:
            platform.stop()
    finally:
        postgres.stop()


# Sweeps and the walk for orphans every half second; blobs count as orphans after 2 s: a platform's
# storage and catalog agree again within seconds of a crash that left a blob no row names.
FAST_BLOB_SWEEPS = {
    "IMAGEGEN_BLOB_SWEEP_INTERVAL_SECONDS": "0.5",
    "IMAGEGEN_RECONCILE_INTERVAL_SECONDS": "0.5",
    "IMAGEGEN_ORPHAN_AGE_SECONDS": "2",
    "IMAGEGEN_UNUSED_BLOB_GRACE_SECONDS": "2",
}


def rest_client(platform, key: str | None):
    """`call(method, path, **kwargs)` against the platform's REST gateway, sending `key` if given."""
    session = requests.Session()
    if key is not None:
        session.headers["Authorization"] = f"Bearer {key}"

    def call(method: str, path: str, **kwargs) -> requests.Response:
        return session.request(method, platform.gateway_url + path, timeout=60, **kwargs)

    return call
