from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

from services.common.config import DEFAULT_PORTS, REPO_ROOT, Env

DESCRIPTOR_SET = REPO_ROOT / "gateway" / "api_descriptor.pb"
# The services both gateways transcode, and the upstream each routes to. Internal services are absent
# on purpose: no REST path or gRPC route reaches them. A test holds envoy.yaml to this table.
TRANSCODED_SERVICES = {
    "imagegen.generator.v1.GeneratorService": "generator",
    "imagegen.generator.v1.ImageService": "generator",
    "imagegen.generator.v1.RecoupService": "generator",
    "imagegen.generator.v1.OpenAIImagesService": "generator",
    "imagegen.catalog.v1.CatalogService": "catalog",
    "imagegen.catalog.v1.AccountService": "catalog",
    "imagegen.storage.v1.StorageService": "storage",
}
# Methods that take no API key: a signed URL, or a permanent URL's unguessable sha256, is the credential.
KEYLESS_METHODS = {
    "imagegen.storage.v1.StorageService.GetFile",
    "imagegen.generator.v1.ImageService.GetPermanentImage",
}
# Per-upstream route timeouts, as in envoy.yaml.
ROUTE_TIMEOUT_SECONDS = {"generator": 120.0, "catalog": 30.0, "storage": 300.0}
# Methods with a route of their own ahead of their service's: a watch lasts as long as its job.
METHOD_ROUTE_TIMEOUT_SECONDS = {
    "/imagegen.generator.v1.GeneratorService/WatchGeneration": 3600.0,
    "/imagegen.generator.v1.ImageService/GetPermanentImage": 300.0,
}
# Server-streaming JSON goes out as server-sent events (`data: <json>\n\n`), as envoy.yaml's
# `stream_sse_style_delimited` prints it.
STREAM_SSE = True
# Images sent to provenance:verify are the largest bodies.
MAX_REQUEST_BODY_BYTES = 12 * 1024 * 1024


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORTS["gateway"]
    descriptor_set: pathlib.Path = DESCRIPTOR_SET
    upstreams: dict[str, str] = field(
        default_factory=lambda: {
            name: f"127.0.0.1:{DEFAULT_PORTS[name]}" for name in ("generator", "catalog", "storage")
        }
    )
    max_request_body_bytes: int = MAX_REQUEST_BODY_BYTES
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Env | None = None) -> GatewayConfig:
        env = env or Env()
        defaults = cls()
        return cls(
            host=env.str("GATEWAY_HOST", cls.host),
            port=env.int("GATEWAY_PORT", cls.port),
            descriptor_set=env.path("DESCRIPTOR_SET", DESCRIPTOR_SET),
            upstreams={
                name: env.str(f"{name.upper()}_TARGET", target) for name, target in defaults.upstreams.items()
            },
            max_request_body_bytes=env.int("MAX_REQUEST_BODY_BYTES", MAX_REQUEST_BODY_BYTES),
            log_level=env.str("LOG_LEVEL", cls.log_level),
        )
