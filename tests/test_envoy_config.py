"""gateway/envoy.yaml, parsed by Envoy's own API protos, held to the descriptor set and the Python gateway."""

from __future__ import annotations

import pathlib

import envoy.extensions.access_loggers.stream.v3.stream_pb2  # noqa: F401  (registers @type)
import envoy.extensions.filters.http.grpc_json_transcoder.v3.transcoder_pb2 as transcoder_pb2
import envoy.extensions.filters.http.lua.v3.lua_pb2 as lua_pb2
import envoy.extensions.filters.http.router.v3.router_pb2  # noqa: F401
import envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 as hcm_pb2
import envoy.extensions.upstreams.http.v3.http_protocol_options_pb2 as protocol_pb2
import pytest
import yaml
from envoy.config.bootstrap.v3 import bootstrap_pb2
from google.protobuf import descriptor_pb2, json_format

from gateway.config import (
    DESCRIPTOR_SET,
    MAX_REQUEST_BODY_BYTES,
    METHOD_ROUTE_TIMEOUT_SECONDS,
    ROUTE_TIMEOUT_SECONDS,
    STREAM_SSE,
    TRANSCODED_SERVICES,
)
from gateway.transcoder import PrintOptions
from services.common.config import DEFAULT_PORTS

ENVOY_YAML = pathlib.Path(__file__).resolve().parents[1] / "gateway/envoy.yaml"


@pytest.fixture(scope="module")
def bootstrap() -> bootstrap_pb2.Bootstrap:
    parsed = bootstrap_pb2.Bootstrap()
    # Fails on unknown fields, wrong types and unknown @type, as Envoy's own loader does.
    json_format.ParseDict(yaml.safe_load(ENVOY_YAML.read_text()), parsed)
    return parsed


def _hcm(bootstrap) -> hcm_pb2.HttpConnectionManager:
    (listener,) = bootstrap.static_resources.listeners
    (chain,) = listener.filter_chains
    (network_filter,) = chain.filters
    hcm = hcm_pb2.HttpConnectionManager()
    assert network_filter.typed_config.Unpack(hcm)
    return hcm


def _transcoder(bootstrap) -> transcoder_pb2.GrpcJsonTranscoder:
    hcm = _hcm(bootstrap)
    names = [f.name for f in hcm.http_filters]
    assert names[-1] == "envoy.filters.http.router"
    (filter_,) = [f for f in hcm.http_filters if f.name == "envoy.filters.http.grpc_json_transcoder"]
    config = transcoder_pb2.GrpcJsonTranscoder()
    assert filter_.typed_config.Unpack(config)
    return config


def test_transcoder_serves_exactly_the_public_services_of_the_descriptor(bootstrap):
    config = _transcoder(bootstrap)
    assert config.proto_descriptor == "/etc/envoy/api_descriptor.pb"
    assert set(config.services) == set(TRANSCODED_SERVICES)
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    declared = {f"{file.package}.{service.name}" for file in files.file for service in file.service}
    assert set(config.services) <= declared, "a service missing from the descriptor stops Envoy at startup"


def test_transcoder_options_match_the_python_gateway(bootstrap):
    config = _transcoder(bootstrap)
    assert config.convert_grpc_status
    assert config.ignore_unknown_query_parameters
    assert config.request_validation_options.reject_unknown_method
    assert config.max_request_body_size.value == MAX_REQUEST_BODY_BYTES
    defaults = PrintOptions()
    assert config.print_options.always_print_primitive_fields == defaults.always_print_primitive_fields
    assert config.print_options.preserve_proto_field_names == defaults.preserve_proto_field_names
    assert config.print_options.stream_sse_style_delimited == STREAM_SSE
    assert not config.match_incoming_request_route, "routes below match gRPC paths"


def test_every_public_service_routes_to_its_own_http2_cluster_and_internal_ones_to_none(bootstrap):
    (virtual_host,) = _hcm(bootstrap).route_config.virtual_hosts
    routes = {route.match.prefix: route.route for route in virtual_host.routes if route.match.prefix}
    method_routes = {route.match.path: route.route for route in virtual_host.routes if route.match.path}
    clusters = {cluster.name: cluster for cluster in bootstrap.static_resources.clusters}
    assert set(routes) == {f"/{service}/" for service in TRANSCODED_SERVICES}
    assert set(method_routes) == set(METHOD_ROUTE_TIMEOUT_SECONDS)
    for path, timeout in METHOD_ROUTE_TIMEOUT_SECONDS.items():
        assert method_routes[path].timeout.ToTimedelta().total_seconds() == timeout
        assert method_routes[path].cluster == TRANSCODED_SERVICES[path.split("/")[1]]
    # Envoy takes the first match, so a method's own route must come before its service's prefix.
    order = [route.match.path or route.match.prefix for route in virtual_host.routes]
    for path in METHOD_ROUTE_TIMEOUT_SECONDS:
        assert order.index(path) < order.index(path.rsplit("/", 1)[0] + "/")
    for service, upstream in TRANSCODED_SERVICES.items():
        route = routes[f"/{service}/"]
        assert route.cluster == upstream
        assert route.timeout.ToTimedelta().total_seconds() == ROUTE_TIMEOUT_SECONDS[upstream]
        cluster = clusters[upstream]
        options = protocol_pb2.HttpProtocolOptions()
        assert cluster.typed_extension_protocol_options[
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        ].Unpack(options)
        assert options.explicit_http_config.HasField("http2_protocol_options"), (
            f"{upstream} must speak HTTP/2"
        )
        (endpoint,) = cluster.load_assignment.endpoints[0].lb_endpoints
        address = endpoint.endpoint.address.socket_address
        assert (address.address, address.port_value) == (upstream, DEFAULT_PORTS[upstream])
        # One health check per process: the cluster's first service stands for the others it serves.
        served = [name for name, target in TRANSCODED_SERVICES.items() if target == upstream]
        assert cluster.health_checks[0].grpc_health_check.service_name == served[0]
    assert not any("Internal" in prefix for prefix in routes)


def _lua_source(bootstrap) -> str:
    hcm = _hcm(bootstrap)
    names = [f.name for f in hcm.http_filters]
    # Responses pass the filters in reverse order: Lua must come before the transcoder to see its 200.
    assert names.index("envoy.filters.http.lua") < names.index("envoy.filters.http.grpc_json_transcoder")
    (filter_,) = [f for f in hcm.http_filters if f.name == "envoy.filters.http.lua"]
    config = lua_pb2.Lua()
    assert filter_.typed_config.Unpack(config)
    return config.default_source_code.inline_string


class _Headers:
    """The slice of Envoy's Lua header map API the filter uses."""

    def __init__(self, headers: dict[str, str]):
        self.headers = headers

    def get(self, name):
        return self.headers.get(name)

    def replace(self, name, value):
        self.headers[name] = value

    def remove(self, name):
        self.headers.pop(name, None)


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        ({":status": "200", "x-imagegen-status": "206", "etag": '"e"'}, {":status": "206", "etag": '"e"'}),
        ({":status": "200", "x-imagegen-status": "304"}, {":status": "304"}),
        (
            {":status": "200", "x-imagegen-status": "429", "retry-after": "3"},
            {":status": "429", "retry-after": "3"},
        ),
        ({":status": "200", "content-type": "image/png"}, {":status": "200", "content-type": "image/png"}),
        ({":status": "404"}, {":status": "404"}),
    ],
)
def test_the_lua_filter_turns_x_imagegen_status_into_the_http_status(bootstrap, upstream, expected):
    from lupa import LuaRuntime

    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.execute(_lua_source(bootstrap))
    headers = _Headers(dict(upstream))

    class Handle:
        def headers(self):
            return headers

    lua.globals().envoy_on_response(Handle())
    assert headers.headers == expected


def test_the_python_gateway_copies_x_imagegen_status_the_same_way():
    from gateway.server import _reply_headers

    status, headers = _reply_headers([("x-imagegen-status", "206"), ("etag", '"e"'), ("grpc-x", "no")])
    assert (status, headers) == (206, {"etag": '"e"'})
