"""The platform every benchmark measures: as `make run` runs it (durable Postgres, fsync on, metrics
served), in a temporary folder, with key rate limits off so the figures are the platform's, not one
key's rate."""

from __future__ import annotations

import contextlib
import pathlib
import secrets
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from services.common.config import PREFIX
from services.common.metrics import PORT_VARIABLES, port_file
from tools.embedded_pg import EmbeddedPostgres
from tools.supervisor import Platform


@dataclass
class Benched:
    platform: Platform
    postgres: EmbeddedPostgres
    database_url: str
    key: str
    var: pathlib.Path

    def full_gc_passes(self) -> dict[str, tuple[float, float]]:
        """Each service's full garbage collections so far, from its /metrics: (how many, seconds in all)."""
        passes = {}
        for service in PORT_VARIABLES:
            port = int(port_file(self.var, service).read_text())
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:  # noqa: S310
                text = answer.read().decode()
            samples = {
                sample.name: sample.value
                for family in text_string_to_metric_families(text)
                if family.name == "imagegen_gc_pause_seconds"
                for sample in family.samples
                if sample.labels.get("generation") == "2" and sample.name.endswith(("_count", "_sum"))
            }
            passes[service] = (
                samples.get("imagegen_gc_pause_seconds_count", 0.0),
                samples.get("imagegen_gc_pause_seconds_sum", 0.0),
            )
        return passes

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
