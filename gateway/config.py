"""The gateway's deployment settings, read from IMAGEGEN_* variables, and the facts about the API that
gateway/envoy.yaml, the OpenAPI document and the tests share."""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field

from services.common import tracing
from services.common.config import DEFAULT_PORTS, PREFIX, REPO_ROOT, ConfigError, Env, replica_addresses

GATEWAY_DIR = REPO_ROOT / "gateway"
ENVOY_YAML = GATEWAY_DIR / "envoy.yaml"
DESCRIPTOR_SET = GATEWAY_DIR / "api_descriptor.pb"
OPENAPI_JSON = GATEWAY_DIR / "openapi.json"
# The services Envoy transcodes, and the cluster each routes to. Internal services are absent on
# purpose: no REST path or gRPC route reaches them. A test holds envoy.yaml to this table.
TRANSCODED_SERVICES = {
    "imagegen.generator.v1.GeneratorService": "generator",
    "imagegen.generator.v1.ImageService": "generator",
    "imagegen.generator.v1.RecoupService": "generator",
    "imagegen.generator.v1.OpenAIImagesService": "generator",
    "imagegen.generator.v1.ConsoleService": "generator",
    "imagegen.catalog.v1.CatalogService": "catalog",
    "imagegen.catalog.v1.AccountService": "catalog",
    "imagegen.storage.v1.StorageService": "storage",
}
# Each cluster, and the variable naming its address (host:port).
UPSTREAM_TARGETS = {"generator": "GENERATOR_TARGET", "catalog": "CATALOG_TARGET", "storage": "STORAGE_TARGET"}
# Methods that take no API key: a signed URL, or a permanent URL's unguessable key, is the credential.
KEYLESS_METHODS = {
    "imagegen.storage.v1.StorageService.GetFile",
    "imagegen.generator.v1.ImageService.GetPermanentImage",
    # The console's page and scripts: public files; the page asks for a key.
    "imagegen.generator.v1.ConsoleService.GetConsoleFile",
}
# Methods that take a `google.api.HttpBody` holding JSON, and the message (with these `string` fields
# holding JSON objects) that describes it: the generator parses the body itself, so that unknown fields
# are refused and a model's own request keeps every value (the transcoder would drop the first and has
# no type for the second).
JSON_BODIES = {
    "imagegen.generator.v1.GeneratorService.CreateGenerationFromBody": (
        "imagegen.generator.v1.CreateGenerationRequest",
        ("input",),
    ),
}
# What methods answering `google.api.HttpBody` send, where it is not an image.
BODY_TYPES = {
    "imagegen.generator.v1.ConsoleService.GetConsoleFile": (
        "text/html",
        "text/javascript",
        "text/css",
    ),
}
# Typed gRPC methods whose REST form is one of JSON_BODIES: they have no route of their own.
GRPC_ONLY_METHODS = {"imagegen.generator.v1.GeneratorService.CreateGeneration"}


def _split_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip().rstrip("/") for item in raw.split(",") if item.strip())


@dataclass(frozen=True)
class GatewayConfig:
    """Where Envoy listens and what it reaches; port 0 lets the kernel pick (Envoy's admin tells)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORTS["gateway"]
    admin_host: str = "127.0.0.1"
    admin_port: int = 9901
    # GET /stats/prometheus, on `host`, for Prometheus; the admin interface itself stays on admin_host.
    stats_port: int = 9902
    # Per cluster, its replicas' (host, port)s; Envoy balances over them.
    upstreams: dict[str, tuple[tuple[str, int], ...]] = field(
        default_factory=lambda: {name: (("127.0.0.1", DEFAULT_PORTS[name]),) for name in UPSTREAM_TARGETS}
    )
    descriptor_set: pathlib.Path = DESCRIPTOR_SET
    openapi_json: pathlib.Path = OPENAPI_JSON
    # Exact origins (scheme://host[:port]) whose pages may call the API; none by default.
    cors_allowed_origins: tuple[str, ...] = ()
    # One JSON line per request; "" writes to standard output.
    access_log: str = ""
    log_level: str = "warning"
    # OTLP/gRPC collector (http://host:port) Envoy sends its spans to, starting each request's trace;
    # "" (OTEL_EXPORTER_OTLP_ENDPOINT unset): Envoy traces nothing.
    otlp_endpoint: str = ""

    @classmethod
    def from_env(cls, env: Env | None = None) -> GatewayConfig:
        env = env or Env()
        upstreams = {}
        for name, ((host, port),) in cls().upstreams.items():
            try:
                upstreams[name] = replica_addresses(env.str(UPSTREAM_TARGETS[name], f"{host}:{port}"))
            except ConfigError as exc:
                raise ConfigError(f"{PREFIX}{UPSTREAM_TARGETS[name]}: {exc}") from None
        return cls(
            host=env.str("GATEWAY_HOST", cls.host),
            port=env.int("GATEWAY_PORT", cls.port),
            admin_host=env.str("GATEWAY_ADMIN_HOST", cls.admin_host),
            admin_port=env.int("GATEWAY_ADMIN_PORT", cls.admin_port),
            stats_port=env.int("GATEWAY_STATS_PORT", cls.stats_port),
            upstreams=upstreams,
            descriptor_set=env.path("DESCRIPTOR_SET", DESCRIPTOR_SET),
            openapi_json=env.path("OPENAPI_JSON", OPENAPI_JSON),
            cors_allowed_origins=_split_list(env.str("CORS_ALLOWED_ORIGINS")),
            access_log=env.str("GATEWAY_ACCESS_LOG"),
            log_level=env.str("GATEWAY_LOG_LEVEL", cls.log_level),
            otlp_endpoint=os.environ.get(tracing.ENDPOINT_VARIABLE, ""),
        )
