from __future__ import annotations

from dataclasses import dataclass

from services.common.config import DEFAULT_PORTS, Env


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
        )
