from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from services.common import internal
from services.common.config import DEFAULT_PORTS, Env
from services.common.outbound import OutboundPolicy

from .accounts import KeyRate
from .domain import QueuePolicy
from .scheduling import PriorityPolicy
from .sealing import Sealer


@dataclass(frozen=True)
class CatalogConfig:
    database_url: str = "postgresql://postgres@127.0.0.1:5432/imagegen"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORTS["catalog"]
    pool_min: int = 2
    pool_max: int = 10
    bootstrap_api_key: str = ""
    shutdown_grace_seconds: float = 10.0
    log_level: str = "INFO"
    # Presented to, and required by, the platform's internal services (services/common/internal.py).
    internal_token: str = field(default_factory=lambda: secrets.token_hex(32))
    queue: QueuePolicy = field(default_factory=QueuePolicy)
    # Where model servers may be: public addresses, and (attached by admin keys) the allowed networks.
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    # For keys without a rate of their own.
    key_rate: KeyRate = field(default_factory=KeyRate)
    # Seals model servers' API keys and webhook secrets at rest (services/catalog/sealing.py).
    sealer: Sealer = field(default_factory=lambda: Sealer([secrets.token_hex(32)]))

    @classmethod
    def from_env(cls, env: Env | None = None) -> CatalogConfig:
        env = env or Env()
        return cls(
            database_url=env.str("DATABASE_URL", cls.database_url),
            host=env.str("CATALOG_HOST", cls.host),
            port=env.int("CATALOG_PORT", cls.port),
            pool_min=env.int("CATALOG_POOL_MIN", cls.pool_min),
            pool_max=env.int("CATALOG_POOL_MAX", cls.pool_max),
            bootstrap_api_key=env.str("BOOTSTRAP_API_KEY"),
            shutdown_grace_seconds=env.float("SHUTDOWN_GRACE_SECONDS", cls.shutdown_grace_seconds),
            log_level=env.str("LOG_LEVEL", cls.log_level),
            internal_token=internal.token_from_env(env),
            sealer=Sealer.from_env(env),
            queue=_queue_policy(env),
            outbound=OutboundPolicy.from_env(env),
            key_rate=KeyRate(
                per_second=env.float("KEY_RATE_PER_SECOND", KeyRate.per_second),
                burst=env.int("KEY_RATE_BURST", KeyRate.burst),
            ),
        )


def _queue_policy(env: Env) -> QueuePolicy:
    default = QueuePolicy()
    return QueuePolicy(
        max_attempts=env.int("QUEUE_MAX_ATTEMPTS", default.max_attempts),
        max_server_failures=env.int("QUEUE_MAX_SERVER_FAILURES", default.max_server_failures),
        retry_base_seconds=env.float("QUEUE_RETRY_BASE_SECONDS", default.retry_base_seconds),
        retry_max_seconds=env.float("QUEUE_RETRY_MAX_SECONDS", default.retry_max_seconds),
        bench_after_failures=env.int("SERVER_BENCH_AFTER_FAILURES", default.bench_after_failures),
        bench_seconds=env.float("SERVER_BENCH_SECONDS", default.bench_seconds),
        queue_timeout_seconds=env.float("QUEUE_TIMEOUT_SECONDS", default.queue_timeout_seconds),
        webhook_retry_unit_seconds=env.float(
            "WEBHOOK_RETRY_UNIT_SECONDS", default.webhook_retry_unit_seconds
        ),
        unused_blob_grace_seconds=env.float("UNUSED_BLOB_GRACE_SECONDS", default.unused_blob_grace_seconds),
        priorities=PriorityPolicy(
            medium_daily_threshold=env.int(
                "PRIORITY_MEDIUM_DAILY_THRESHOLD", default.priorities.medium_daily_threshold
            ),
            low_daily_threshold=env.int(
                "PRIORITY_LOW_DAILY_THRESHOLD", default.priorities.low_daily_threshold
            ),
        ),
    )
