from __future__ import annotations

import pathlib
import secrets
from dataclasses import dataclass, field

from services.common import internal
from services.common.config import DEFAULT_PORTS, ConfigError, Env, persistent_secret, var_dir


@dataclass(frozen=True)
class StorageConfig:
    backend: str = "local"  # "local" or "s3"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORTS["storage"]
    # The gateway's address as clients see it; local-folder URLs point there.
    public_url: str = "http://127.0.0.1:8080"
    url_ttl_seconds: int = 3600
    url_signing_key: str = ""
    local_root: pathlib.Path = pathlib.Path("var/objects")
    s3_endpoint: str = ""
    s3_public_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "imagegen"
    s3_region: str = "us-east-1"
    s3_secure: bool = False
    shutdown_grace_seconds: float = 10.0
    log_level: str = "INFO"
    # Presented to, and required by, the platform's internal services (services/common/internal.py).
    internal_token: str = field(default_factory=lambda: secrets.token_hex(32))

    @classmethod
    def from_env(cls, env: Env | None = None) -> StorageConfig:
        env = env or Env()
        backend = env.str("STORAGE_BACKEND", cls.backend)
        if backend not in ("local", "s3"):
            raise ConfigError(f"IMAGEGEN_STORAGE_BACKEND must be local or s3, got {backend!r}")
        base = var_dir(env)
        endpoint = env.str("S3_ENDPOINT")
        return cls(
            backend=backend,
            host=env.str("STORAGE_HOST", cls.host),
            port=env.int("STORAGE_PORT", cls.port),
            public_url=env.str("PUBLIC_URL", cls.public_url).rstrip("/"),
            url_ttl_seconds=env.int("URL_TTL_SECONDS", cls.url_ttl_seconds),
            url_signing_key=env.str("URL_SIGNING_KEY") or persistent_secret(base / "url-signing-key"),
            local_root=env.path("STORAGE_LOCAL_ROOT", base / "objects"),
            s3_endpoint=endpoint,
            s3_public_endpoint=env.str("S3_PUBLIC_ENDPOINT") or endpoint,
            s3_access_key=env.str("S3_ACCESS_KEY"),
            s3_secret_key=env.str("S3_SECRET_KEY"),
            s3_bucket=env.str("S3_BUCKET", cls.s3_bucket),
            s3_region=env.str("S3_REGION", cls.s3_region),
            s3_secure=env.bool("S3_SECURE", cls.s3_secure),
            shutdown_grace_seconds=env.float("SHUTDOWN_GRACE_SECONDS", cls.shutdown_grace_seconds),
            log_level=env.str("LOG_LEVEL", cls.log_level),
            internal_token=internal.token_from_env(env),
        )
