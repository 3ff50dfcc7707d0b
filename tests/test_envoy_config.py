"""gateway/envoy.yaml, parsed by Envoy's own API protos and by Envoy itself, held to the descriptor set;
what a deployment fills in (gateway/proxy.py) is only its settings. No process is left running."""

from __future__ import annotations

import dataclasses
import re
import subprocess

import envoy.extensions.access_loggers.file.v3.file_pb2  # noqa: F401  (registers @type)
import envoy.extensions.common.matching.v3.extension_matcher_pb2 as extension_matcher_pb2
import envoy.extensions.filters.common.matcher.action.v3.skip_action_pb2  # noqa: F401
import envoy.extensions.filters.http.buffer.v3.buffer_pb2 as buffer_pb2
import envoy.extensions.filters.http.cors.v3.cors_pb2  # noqa: F401
import envoy.extensions.filters.http.ext_authz.v3.ext_authz_pb2  # noqa: F401
import envoy.extensions.filters.http.grpc_json_transcoder.v3.transcoder_pb2 as transcoder_pb2
import envoy.extensions.filters.http.grpc_web.v3.grpc_web_pb2  # noqa: F401
import envoy.extensions.filters.http.lua.v3.lua_pb2 as lua_pb2
import envoy.extensions.filters.http.router.v3.router_pb2  # noqa: F401
import envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 as hcm_pb2
import envoy.extensions.resource_monitors.fixed_heap.v3.fixed_heap_pb2  # noqa: F401
import envoy.extensions.retry.host.previous_hosts.v3.previous_hosts_pb2  # noqa: F401
import envoy.extensions.upstreams.http.v3.http_protocol_options_pb2 as protocol_pb2
import pytest
import yaml
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.route.v3 import route_components_pb2  # noqa: F401  (FilterConfig)
from envoy.config.trace.v3 import opentelemetry_pb2
from envoy.type.matcher.v3 import http_inputs_pb2  # noqa: F401  (the buffer's matcher inputs)
from google.protobuf import descriptor_pb2, json_format

from gateway import proxy
from gateway.config import DESCRIPTOR_SET, ENVOY_YAML, OPENAPI_JSON, TRANSCODED_SERVICES, GatewayConfig
from services.common.config import DEFAULT_PORTS, ConfigError

# The settings envoy.yaml is written with: the compose deployment.
COMPOSE_SETTINGS = GatewayConfig(
    host="0.0.0.0",
    port=8080,
    admin_host="127.0.0.1",
    admin_port=9901,
    upstreams={name: ((name, DEFAULT_PORTS[name]),) for name in ("generator", "catalog", "storage")},
    descriptor_set="/etc/envoy/api_descriptor.pb",
    openapi_json="/etc/envoy/openapi.json",
    cors_allowed_origins=(),
    access_log="",
)
LOCAL_SETTINGS = GatewayConfig(
    port=0,
    admin_port=0,
    upstreams={
        "generator": (("127.0.0.1", 1),),
        "catalog": (("127.0.0.1", 2),),
        "storage": (("127.0.0.1", 3),),
    },
    cors_allowed_origins=("http://app.example", "https://console.example:8443"),
    access_log="/tmp/imagegen-access.log",
)

TRACED_SETTINGS = dataclasses.replace(LOCAL_SETTINGS, otlp_endpoint="http://127.0.0.1:4317")


def _parse(document: dict) -> bootstrap_pb2.Bootstrap:
    parsed = bootstrap_pb2.Bootstrap()
    # Fails on unknown fields, wrong types and unknown @type, as Envoy's own loader does.
    json_format.ParseDict(document, parsed)
    return parsed


@pytest.fixture(scope="module")
def bootstrap() -> bootstrap_pb2.Bootstrap:
    return _parse(yaml.safe_load(ENVOY_YAML.read_text()))


def _hcm(bootstrap, listener_name: str = proxy.PUBLIC_LISTENER) -> hcm_pb2.HttpConnectionManager:
    (listener,) = [
        listener for listener in bootstrap.static_resources.listeners if listener.name == listener_name
    ]
    (chain,) = listener.filter_chains
    (network_filter,) = chain.filters
    hcm = hcm_pb2.HttpConnectionManager()
    assert network_filter.typed_config.Unpack(hcm)
    return hcm


def _filter(bootstrap, name, message):
    (filter_,) = [f for f in _hcm(bootstrap).http_filters if f.name == name]
    assert filter_.typed_config.Unpack(message)
    return message


def test_the_transcoder_serves_exactly_the_public_services_of_the_descriptor(bootstrap):
    config = _filter(
        bootstrap, "envoy.filters.http.grpc_json_transcoder", transcoder_pb2.GrpcJsonTranscoder()
    )
    assert set(config.services) == set(TRANSCODED_SERVICES)
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    declared = {f"{file.package}.{service.name}" for file in files.file for service in file.service}
    assert set(config.services) <= declared, "a service missing from the descriptor stops Envoy at startup"
    assert config.convert_grpc_status and config.request_validation_options.reject_unknown_method
    assert not config.match_incoming_request_route, "routes match gRPC paths"


def test_filters_run_in_the_order_the_gateway_relies_on(bootstrap):
    names = [f.name for f in _hcm(bootstrap).http_filters]
    # Lua first: it marks REST requests before anything answers, and sees every answer last. The key
    # check of a large body comes before the buffer that would hold it.
    assert names == [
        "envoy.filters.http.lua",
        "envoy.filters.http.cors",
        "envoy.filters.http.grpc_web",
        "envoy.filters.http.ext_authz",
        "envoy.filters.http.buffer",
        "envoy.filters.http.grpc_json_transcoder",
        "envoy.filters.http.router",
    ]
    # One limit: the Lua filter's for declared lengths (on the REST route), the buffer's for chunked
    # bodies, the transcoder's behind both.
    wrapped = _filter(bootstrap, "envoy.filters.http.buffer", extension_matcher_pb2.ExtensionWithMatcher())
    buffer = buffer_pb2.Buffer()
    assert wrapped.extension_config.typed_config.Unpack(buffer)
    transcoder = _filter(
        bootstrap, "envoy.filters.http.grpc_json_transcoder", transcoder_pb2.GrpcJsonTranscoder()
    )
    (virtual_host,) = _hcm(bootstrap).route_config.virtual_hosts
    declared = virtual_host.routes[-1].metadata.filter_metadata["envoy.filters.http.lua"]["max_body_bytes"]
    limits = {buffer.max_request_bytes.value, transcoder.max_request_body_size.value, declared}
    assert limits == {12 * 1024 * 1024}


def test_grpc_calls_that_carry_bodies_are_the_ones_checked_before_they_are_read(bootstrap):
    """The Lua filter's list of methods whose gRPC calls ask for the key first: every public method
    that takes a raw body (google.api.HttpBody) and the two typed creates, whose inputs carry images."""
    lua = _filter(bootstrap, "envoy.filters.http.lua", lua_pb2.Lua()).default_source_code.inline_string
    listed = set(re.findall(r'\["(/[^"]+)"\] = true', lua))
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    carrying = {
        f"/{file.package}.{service.name}/{method.name}"
        for file in files.file
        for service in file.service
        if f"{file.package}.{service.name}" in TRANSCODED_SERVICES
        for method in service.method
        if method.input_type == ".google.api.HttpBody" or method.name in ("CreateGeneration", "GenerateImage")
    }
    assert listed == carrying


def test_every_public_service_routes_to_its_own_http2_cluster_with_its_deadline(bootstrap):
    (virtual_host,) = _hcm(bootstrap).route_config.virtual_hosts
    clusters = {cluster.name: cluster for cluster in bootstrap.static_resources.clusters}
    forwarded = [r for r in virtual_host.routes if r.WhichOneof("action") == "route"]
    by_prefix = {r.match.prefix: r.route for r in forwarded if r.match.prefix.startswith("/imagegen.")}
    assert set(by_prefix) == {f"/{service}/" for service in TRANSCODED_SERVICES}
    for route in forwarded:
        if route.route.cluster == "unrouted":
            continue
        service = (route.match.path or route.match.prefix).split("/")[1]
        assert route.route.cluster == TRANSCODED_SERVICES[service]
        # The route's timeout reaches the service as grpc-timeout only with max_grpc_timeout.
        assert route.route.max_grpc_timeout == route.route.timeout
        if route.match.path:  # a method's own route must come before its service's prefix
            order = [r.match.path or r.match.prefix for r in virtual_host.routes]
            assert order.index(route.match.path) < order.index(f"/{service}/")
    for upstream in set(TRANSCODED_SERVICES.values()):
        options = protocol_pb2.HttpProtocolOptions()
        assert (
            clusters[upstream]
            .typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
            .Unpack(options)
        )
        assert options.explicit_http_config.HasField("http2_protocol_options"), f"{upstream} speaks HTTP/2"
        served = [name for name, target in TRANSCODED_SERVICES.items() if target == upstream]
        assert clusters[upstream].health_checks[0].grpc_health_check.service_name == served[0]
    assert not clusters["unrouted"].load_assignment.endpoints, "the CORS-only route forwards nowhere"
    assert not any("Internal" in (r.match.prefix + r.match.path) for r in virtual_host.routes)


def test_the_file_is_the_compose_deployment_and_rendering_changes_only_settings():
    committed = yaml.safe_load(ENVOY_YAML.read_text())
    assert proxy.render(COMPOSE_SETTINGS) == committed
    local = proxy.render(LOCAL_SETTINGS)
    assert local != committed
    # Put the compose settings back by hand: whatever else differs was not a setting.
    _parse(local)
    local["admin"]["address"] = committed["admin"]["address"]
    for listener, committed_listener in zip(
        local["static_resources"]["listeners"], committed["static_resources"]["listeners"], strict=True
    ):
        listener["address"] = committed_listener["address"]
    listener, committed_listener = (
        [
            entry
            for entry in document["static_resources"]["listeners"]
            if entry["name"] == proxy.PUBLIC_LISTENER
        ][0]
        for document in (local, committed)
    )
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    committed_hcm = committed_listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["access_log"][0]["typed_config"]["path"] == "/tmp/imagegen-access.log"
    hcm["access_log"] = committed_hcm["access_log"]
    cors = hcm["route_config"]["virtual_hosts"][0]["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert cors["allow_origin_string_match"] == [
        {"exact": "http://app.example"}, {"exact": "https://console.example:8443"}
    ]  # fmt: skip
    cors["allow_origin_string_match"] = []
    for route in hcm["route_config"]["virtual_hosts"][0]["routes"]:
        if route["match"].get("path") == "/openapi.json":
            assert route["direct_response"]["body"]["filename"] == str(OPENAPI_JSON)
            route["direct_response"]["body"]["filename"] = "/etc/envoy/openapi.json"
    for http_filter in hcm["http_filters"]:
        if http_filter["name"] == "envoy.filters.http.grpc_json_transcoder":
            assert http_filter["typed_config"]["proto_descriptor"] == str(DESCRIPTOR_SET)
            http_filter["typed_config"]["proto_descriptor"] = "/etc/envoy/api_descriptor.pb"
    for cluster in local["static_resources"]["clusters"]:
        if cluster["name"] == proxy.ADMIN_CLUSTER:
            endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
            assert endpoint["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 0}
            endpoint["address"] = committed["admin"]["address"]
        if cluster["name"] in COMPOSE_SETTINGS.upstreams:
            ((host, port),) = COMPOSE_SETTINGS.upstreams[cluster["name"]]
            endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
            endpoint["address"]["socket_address"] = {"address": host, "port_value": port}
    assert local == committed


def test_tracing_is_rendered_only_with_an_otlp_endpoint():
    assert "tracing" not in _hcm(_parse(proxy.render(LOCAL_SETTINGS)))
    traced = _parse(proxy.render(TRACED_SETTINGS))
    hcm = _hcm(traced)
    assert hcm.tracing.provider.name == "envoy.tracers.opentelemetry"
    exporter = opentelemetry_pb2.OpenTelemetryConfig()
    assert hcm.tracing.provider.typed_config.Unpack(exporter)
    (otlp,) = [
        cluster
        for cluster in traced.static_resources.clusters
        if cluster.name == exporter.grpc_service.envoy_grpc.cluster_name
    ]
    address = otlp.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (address.address, address.port_value) == ("127.0.0.1", 4317)
    with pytest.raises(ConfigError):
        proxy.render(dataclasses.replace(LOCAL_SETTINGS, otlp_endpoint="http://collector"))


@pytest.mark.starts_processes
@pytest.mark.parametrize("settings", ["local", "traced"])
def test_envoy_itself_accepts_the_rendered_file(tmp_path, settings):
    config = proxy.write_config({"local": LOCAL_SETTINGS, "traced": TRACED_SETTINGS}[settings], tmp_path)
    checked = subprocess.run(
        [proxy.envoy_binary(), "--mode", "validate", "--config-path", str(config), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "configuration" in checked.stdout and "OK" in checked.stdout
