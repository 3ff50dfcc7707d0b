"""The Python gateway's transcoding rules, by Envoy's behaviour (shared/reference/envoy-transcoding.md)."""

from __future__ import annotations

import json

import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from gateway import templates
from gateway.config import DESCRIPTOR_SET, TRANSCODED_SERVICES
from gateway.transcoder import HTTP_STATUS, Route, TranscodeError, Transcoder


@pytest.fixture(scope="module")
def transcoder() -> Transcoder:
    return Transcoder.from_descriptor_set(DESCRIPTOR_SET, TRANSCODED_SERVICES)


def _route(transcoder: Transcoder, method: str, path: str) -> tuple[Route, dict]:
    matched = transcoder.match(method, path)
    assert matched is not None, f"{method} {path} did not match"
    return matched


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/v1/{name}", "/v1/abc", {("name",): "abc"}),
        ("/v1/{name}", "/v1/a%2Fb%20c", {("name",): "a/b c"}),  # one segment: fully decoded
        ("/v1/{name=shelves/*}", "/v1/shelves/s1", {("name",): "shelves/s1"}),
        ("/v1/{name=**}", "/v1/a/b%2Fc/d%20e", {("name",): "a/b%2Fc/d e"}),  # reserved stay encoded
        ("/v1/{name=**}", "/v1", {("name",): ""}),
        ("/v1/{book.id}/x", "/v1/7/x", {("book", "id"): "7"}),
        ("/v1/*/items/{id}", "/v1/any/items/9", {("id",): "9"}),
        ("/v1/{a=**}/end", "/v1/p/q/end", {("a",): "p/q"}),
    ],
)
def test_path_templates_bind_as_envoy_does(template, path, expected):
    parsed = templates.parse(template)
    parts = path[1:].split("/")
    assert parsed.match(parts, "") == expected


def test_templates_that_do_not_fit_do_not_match():
    assert templates.parse("/v1/{name}").match(["v1", "a", "b"], "") is None
    assert templates.parse("/v1/x").match(["v1", "y"], "") is None
    assert templates.parse("/v1/{id}:cancel").match(["v1", "7"], "") is None
    assert templates.parse("/v1/{id}:cancel").match(["v1", "7"], "cancel") == {("id",): "7"}
    with pytest.raises(templates.TemplateError):
        templates.parse("/v1/**/{x}")


def test_method_must_match_exactly_and_trailing_slash_and_query_are_ignored(transcoder):
    route, bound = _route(transcoder, "GET", "/api/images/generations/img_1/")
    assert route.method.name == "GetGeneration" and bound == {("id",): "img_1"}
    assert _route(transcoder, "DELETE", "/api/images/generations/img_1")[0].method.name == "DeleteGeneration"
    assert transcoder.match("HEAD", "/api/images/generations/img_1") is None
    assert transcoder.match("PUT", "/api/images/generations") is None
    assert transcoder.match("GET", "/api/unknown") is None


def test_query_parameters_bind_by_json_or_proto_name_and_unknown_ones_are_dropped(transcoder):
    route, bound = _route(transcoder, "GET", "/api/images/generations")
    message = transcoder.build_request(
        route, bound, "pageSize=5&page_token=abc%3D&user=a+b&nothing=1&noequals&=x", b"", ""
    )
    assert message.page_size == 5
    assert message.page_token == "abc="
    assert message.user == "a+b", "`+` stays `+` (query_param_unescape_plus is off)"


def test_a_query_value_of_the_wrong_type_is_a_400_with_envoys_message(transcoder):
    route, bound = _route(transcoder, "GET", "/api/images/generations")
    with pytest.raises(TranscodeError, match=r'pageSize: invalid value "x" for type TYPE_INT32'):
        transcoder.build_request(route, bound, "pageSize=x", b"", "")
    with pytest.raises(TranscodeError, match="TYPE_INT32"):
        transcoder.build_request(route, bound, "pageSize=99999999999", b"", "")


def test_body_star_is_the_whole_message_unknown_fields_ignored_and_body_wins_over_query(transcoder):
    route, bound = _route(transcoder, "POST", "/api/images/generations")
    body = json.dumps({"prompt": "lake", "negativePrompt": "sun", "n": 2, "user": "body", "extra": {"x": 1}})
    message = transcoder.build_request(route, bound, "user=query&model=m", body.encode(), "application/json")
    assert (message.prompt, message.negative_prompt, message.n) == ("lake", "sun", 2)
    assert message.user == "body" and message.model == "m"
    assert transcoder.build_request(route, bound, "", b"", "") == route.request_class()


@pytest.mark.parametrize("body", [b"{", b"[1]", b'{"n": "two"}', b"\xff\xfe"])
def test_malformed_json_is_a_transcode_error(transcoder, body):
    route, bound = _route(transcoder, "POST", "/api/images/generations")
    with pytest.raises(TranscodeError):
        transcoder.build_request(route, bound, "", body, "application/json")


def test_responses_print_lower_camel_case_compact_with_default_fields(transcoder):
    route, _ = _route(transcoder, "GET", "/api/images/generations")
    message = route.response_class()
    message.pagination.page_size = 3
    printed = transcoder.to_json(message)
    assert b" " not in printed and b"\n" not in printed
    assert json.loads(printed) == {
        "results": [],
        "pagination": {"pageSize": 3, "nextPageToken": "", "previousPageToken": ""},
    }


def test_errors_become_google_rpc_status_json_with_typed_details(transcoder):
    assert json.loads(transcoder.status_json(5, "gone", None)) == {
        "code": 5,
        "message": "gone",
        "details": [],
    }
    status = status_pb2.Status(code=3, message="bad width")
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(field="width", description="x")]
        )
    )
    status.details.append(detail)
    body = json.loads(transcoder.status_json(3, "ignored", status.SerializeToString()))
    assert body["message"] == "bad width"
    assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert body["details"][0]["fieldViolations"][0]["field"] == "width"


def test_status_table_is_envoys():
    assert [HTTP_STATUS[c] for c in range(17)] == [
        200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401
    ]  # fmt: skip
