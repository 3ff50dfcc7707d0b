"""The platform every benchmark measures: as `make run` runs it (durable Postgres, fsync on, metrics
served), in a temporary folder, with key rate limits off so the figures are the platform's, not one
key's rate."""

from __future__ import annotations

import contextlib
import pathlib
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from services.common.config import PREFIX
from services.common.metrics import PORT_VARIABLES
from tools.embedded_pg import EmbeddedPostgres
from tools.supervisor import Platform


@dataclass
class Benched:
    platform: Platform
    postgres: EmbeddedPostgres
    database_url: str
    key: str
    var: pathlib.Path

    def pids(self) -> dict[str, int]:
        """Each process by name, Postgres included."""
        return {
            **{name: p.pid for name, p in self.platform.processes.items()},
            "postgres": self.postgres.process.pid,
        }


@contextlib.contextmanager
def benched_platform(**env: str) -> Iterator[Benched]:
    with tempfile.TemporaryDirectory(prefix="imagegen-bench-") as tmp:
        var = pathlib.Path(tmp)
        postgres = EmbeddedPostgres(var / "postgres", durable=True).start()
        try:
            database_url = postgres.create_database("imagegen")
            key = "sk_bench_" + secrets.token_hex(16)
            platform = Platform(
                env={
                    "IMAGEGEN_DATABASE_URL": database_url,
                    "IMAGEGEN_BOOTSTRAP_API_KEY": key,
                    "IMAGEGEN_VAR_DIR": str(var),
                    "IMAGEGEN_LOG_LEVEL": "WARNING",
                    "IMAGEGEN_KEY_RATE_PER_SECOND": "0",
                    # The fake upstream model servers run on loopback.
                    "IMAGEGEN_ALLOWED_NETWORKS": "127.0.0.0/8",
                    # Measured as deployed: every service serves and records its metrics.
                    **{f"{PREFIX}{variable}": "0" for variable in PORT_VARIABLES.values()},
                    **env,
                }
            )
            try:
                platform.start(log_dir=var)
                yield Benched(platform, postgres, database_url, key, var)
            finally:
                platform.stop()
        finally:
            postgres.stop()
