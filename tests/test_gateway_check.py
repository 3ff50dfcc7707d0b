"""The catalog's mirror of Envoy's external-authorization messages (gateway_check.proto) reads what
Envoy sends and writes what Envoy reads: checked against Envoy's own messages (xds-protos)."""

from __future__ import annotations

from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2
from imagegen.catalog.v1 import gateway_check_pb2

from services.catalog.servicer import ENVOY_CHECK_SERVICE, _refusal
from services.common.errors import Unauthenticated, Unavailable


def test_envoy_calls_the_service_the_catalog_registers():
    assert external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name == ENVOY_CHECK_SERVICE


def test_the_headers_envoy_sends_are_the_ones_the_catalog_reads():
    sent = external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            source=attribute_context_pb2.AttributeContext.Peer(principal="someone"),
            request=attribute_context_pb2.AttributeContext.Request(
                http=attribute_context_pb2.AttributeContext.HttpRequest(
                    method="POST",
                    path="/api/images/generations",
                    headers={"authorization": "Bearer sk_x", ":path": "/api/images/generations"},
                    size=11 * 2**20,
                )
            ),
        )
    )
    read = gateway_check_pb2.GatewayCheckRequest.FromString(sent.SerializeToString())
    assert read.attributes.request.http.headers["authorization"] == "Bearer sk_x"


def test_a_refusal_reaches_envoy_as_a_denied_answer_with_its_status_and_headers():
    answer = external_auth_pb2.CheckResponse.FromString(
        _refusal(Unauthenticated("no such key")).SerializeToString()
    )
    assert answer.status.code == 16 and answer.WhichOneof("http_response") == "denied_response"
    assert answer.denied_response.status.code == 401 and answer.denied_response.body == "no such key"

    unavailable = _refusal(Unavailable("database away", retry_after_seconds=2)).SerializeToString()
    answer = external_auth_pb2.CheckResponse.FromString(unavailable)
    assert answer.denied_response.status.code == 503
    assert [(h.header.key, h.header.value) for h in answer.denied_response.headers] == [("retry-after", "2")]


def test_a_live_key_reaches_envoy_as_ok():
    allowed = gateway_check_pb2.GatewayCheckResponse(status=gateway_check_pb2.GatewayCheckStatus(code=0))
    answer = external_auth_pb2.CheckResponse.FromString(allowed.SerializeToString())
    assert answer.status.code == 0 and answer.WhichOneof("http_response") is None
