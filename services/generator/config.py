from __future__ import annotations

import pathlib
import secrets
from dataclasses import dataclass, field

from services.common import internal
from services.common.config import DEFAULT_PORTS, REPO_ROOT, Env, var_dir
from services.common.outbound import OutboundPolicy

from .archiver import ArweaveConfig
from .credentials import CredentialsConfig
from .worker import WorkerConfig


@dataclass(frozen=True)
class GeneratorConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORTS["generator"]
    catalog_target: str = f"127.0.0.1:{DEFAULT_PORTS['catalog']}"
    storage_target: str = f"127.0.0.1:{DEFAULT_PORTS['storage']}"
    default_model: str = "procedural"
    shutdown_grace_seconds: float = 30.0
    log_level: str = "INFO"
    # Presented to, and required by, the platform's internal services (services/common/internal.py).
    internal_token: str = field(default_factory=lambda: secrets.token_hex(32))
    # Every generator runs a worker unless told not to (an API-only replica).
    worker_enabled: bool = True
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    webhook_timeout_seconds: float = 10.0
    # How often unused blobs are looked for (the catalog decides which are old enough).
    blob_sweep_interval_seconds: float = 30.0
    # How often storage is walked for blobs nothing knows, and how old such a blob must be to count.
    reconcile_interval_seconds: float = 3600.0
    orphan_age_seconds: float = 600.0
    # The gateway's address as clients see it; permanent URLs point there.
    public_url: str = "http://127.0.0.1:8080"
    var_dir: pathlib.Path = REPO_ROOT / "var"
    # The console's files, and the origins its pages may show images from besides their own (an S3
    # bucket's public address).
    console_dir: pathlib.Path = REPO_ROOT / "console"
    console_image_origins: tuple[str, ...] = ()
    credentials: CredentialsConfig = field(default_factory=CredentialsConfig)
    arweave: ArweaveConfig = field(default_factory=ArweaveConfig)
    # Where requests made for a tenant (model servers, their output URLs, input images) may go:
    # public addresses, and the allowed networks.
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    # Whether webhooks may reach the allowed networks too (otherwise public addresses only).
    allow_private_callbacks: bool = False

    @classmethod
    def from_env(cls, env: Env | None = None) -> GeneratorConfig:
        env = env or Env()
        arweave = ArweaveConfig(
            wallet=env.path("ARWEAVE_WALLET", None),
            node_url=env.str("ARWEAVE_NODE_URL", ArweaveConfig.node_url).rstrip("/"),
            gateway_url=env.str("ARWEAVE_GATEWAY_URL", ArweaveConfig.gateway_url).rstrip("/"),
            confirmations=env.int("ARWEAVE_CONFIRMATIONS", ArweaveConfig.confirmations),
            retry_seconds=env.float("ARWEAVE_RETRY_SECONDS", ArweaveConfig.retry_seconds),
            check_seconds=env.float("ARWEAVE_CHECK_SECONDS", ArweaveConfig.check_seconds),
            wait_seconds=env.float("ARWEAVE_WAIT_SECONDS", ArweaveConfig.wait_seconds),
            timeout_seconds=env.float("ARWEAVE_TIMEOUT_SECONDS", ArweaveConfig.timeout_seconds),
        )
        return cls(
            host=env.str("GENERATOR_HOST", cls.host),
            port=env.int("GENERATOR_PORT", cls.port),
            catalog_target=env.str("CATALOG_TARGET", cls.catalog_target),
            storage_target=env.str("STORAGE_TARGET", cls.storage_target),
            default_model=env.str("DEFAULT_MODEL", cls.default_model),
            shutdown_grace_seconds=env.float("SHUTDOWN_GRACE_SECONDS", cls.shutdown_grace_seconds),
            log_level=env.str("LOG_LEVEL", cls.log_level),
            internal_token=internal.token_from_env(env),
            worker_enabled=env.bool("WORKER_ENABLED", cls.worker_enabled),
            worker=WorkerConfig(
                slots=env.int("WORKER_SLOTS", WorkerConfig.slots),
                lease_seconds=env.float("WORKER_LEASE_SECONDS", WorkerConfig.lease_seconds),
                heartbeat_seconds=env.float("WORKER_HEARTBEAT_SECONDS", WorkerConfig.heartbeat_seconds),
                model_timeout_seconds=env.float("MODEL_TIMEOUT_SECONDS", WorkerConfig.model_timeout_seconds),
                probe_timeout_seconds=env.float("PROBE_TIMEOUT_SECONDS", WorkerConfig.probe_timeout_seconds),
                store_retry_seconds=env.float("STORE_RETRY_SECONDS", WorkerConfig.store_retry_seconds),
                archive_to_arweave=arweave.enabled,
            ),
            webhook_timeout_seconds=env.float("WEBHOOK_TIMEOUT_SECONDS", cls.webhook_timeout_seconds),
            blob_sweep_interval_seconds=env.float(
                "BLOB_SWEEP_INTERVAL_SECONDS", cls.blob_sweep_interval_seconds
            ),
            reconcile_interval_seconds=env.float(
                "RECONCILE_INTERVAL_SECONDS", cls.reconcile_interval_seconds
            ),
            orphan_age_seconds=env.float("ORPHAN_AGE_SECONDS", cls.orphan_age_seconds),
            public_url=env.str("PUBLIC_URL", cls.public_url).rstrip("/"),
            var_dir=var_dir(env),
            console_dir=env.path("CONSOLE_DIR", cls.console_dir),
            console_image_origins=tuple(
                origin.strip() for origin in env.str("CONSOLE_IMAGE_ORIGINS", "").split(",") if origin.strip()
            ),
            credentials=CredentialsConfig(
                certificate_chain=env.path("C2PA_CERTIFICATE_CHAIN", None),
                private_key=env.path("C2PA_PRIVATE_KEY", None),
                trust_anchors=env.path("C2PA_TRUST_ANCHORS", None),
                timestamp_url=env.str("C2PA_TIMESTAMP_URL"),
                include_prompt=env.bool("C2PA_INCLUDE_PROMPT", False),
            ),
            arweave=arweave,
            outbound=OutboundPolicy.from_env(env),
            allow_private_callbacks=env.bool("ALLOW_PRIVATE_CALLBACKS", False),
        )
