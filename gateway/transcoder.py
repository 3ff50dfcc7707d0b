"""HTTP/JSON <-> gRPC transcoding by Envoy's rules, from the descriptor set and `google.api.http`.

This module is pure: it turns an HTTP request into (method, request message) and a gRPC answer into
an HTTP answer. `gateway.server` does the I/O. `shared/reference/envoy-transcoding.md` is the spec.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.rpc import status_pb2

from . import templates

HTTP_BODY = "google.api.HttpBody"

# Envoy's grpcToHttpStatus (source/common/grpc/status.cc).
HTTP_STATUS = {
    0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429,
    9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}  # fmt: skip


class TranscodeError(Exception):
    """The request could not be turned into a gRPC message: Envoy answers 400 text/plain."""


@dataclass
class Route:
    http_method: str
    template: templates.Template
    body: str
    method: MethodDescriptor
    request_class: type[Message]
    response_class: type[Message]

    @property
    def grpc_path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def server_streaming(self) -> bool:
        return self.method.server_streaming

    @property
    def http_body_response(self) -> bool:
        return self.method.output_type.full_name == HTTP_BODY


@dataclass
class PrintOptions:
    """The subset of Envoy's `print_options` this project sets."""

    always_print_primitive_fields: bool = True
    preserve_proto_field_names: bool = False


@dataclass
class Transcoder:
    pool: descriptor_pool.DescriptorPool
    routes: list[Route]
    print_options: PrintOptions = field(default_factory=PrintOptions)
    ignore_unknown_query_parameters: bool = True
    verbs: set[str] = field(default_factory=set)

    @classmethod
    def from_descriptor_set(
        cls, path: pathlib.Path, services: Iterable[str], print_options: PrintOptions | None = None
    ) -> Transcoder:
        files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
        pool = descriptor_pool.DescriptorPool()
        for file in files.file:
            pool.Add(file)
        routes: list[Route] = []
        for service_name in services:
            # A missing service stops Envoy at startup; it stops this gateway too.
            service = pool.FindServiceByName(service_name)
            for method in service.methods:
                options = descriptor_pb2.MethodOptions.FromString(method.GetOptions().SerializeToString())
                rule = _http_rule(options)
                if rule is not None:
                    routes.extend(_routes_for(rule, method))
        transcoder = cls(pool, routes, print_options or PrintOptions())
        transcoder.verbs = {route.template.verb for route in routes if route.template.verb}
        _drop_duplicates(transcoder)
        return transcoder

    # -- requests ----------------------------------------------------------------------------------

    def match(self, http_method: str, path: str) -> tuple[Route, dict[tuple[str, ...], str]] | None:
        raw_path = path.split("?", 1)[0].rstrip("/")
        parts = raw_path[1:].split("/") if raw_path else []
        verb = ""
        if parts and ":" in parts[-1]:
            head, _, candidate = parts[-1].rpartition(":")
            if candidate in self.verbs:
                parts[-1], verb = head, candidate
        for route in self.routes:
            if route.http_method != http_method:
                continue
            bound = route.template.match(parts, verb)
            if bound is not None:
                return route, bound
        return None

    def build_request(
        self,
        route: Route,
        bindings: dict[tuple[str, ...], str],
        query_string: str,
        body: bytes,
        content_type: str,
    ) -> Message:
        message = route.request_class()
        for field_path, value in bindings.items():
            _set_path(message, field_path, value)
        for name, value in _query_pairs(query_string):
            try:
                _set_path(message, tuple(name.split(".")), value)
            except _UnknownField:
                if not self.ignore_unknown_query_parameters:
                    raise TranscodeError(
                        f'Could not find field "{name}" in the type "{message.DESCRIPTOR.full_name}".'
                    ) from None
        self._merge_body(route, message, body, content_type)
        return message

    def _merge_body(self, route: Route, message: Message, body: bytes, content_type: str) -> None:
        if route.body and route.body != "*":
            body_field = message.DESCRIPTOR.fields_by_name.get(route.body)
            if (
                body_field is not None
                and body_field.message_type is not None
                and (body_field.message_type.full_name == HTTP_BODY)
            ):
                http_body = getattr(message, route.body)
                http_body.data, http_body.content_type = body, content_type
                return
        if message.DESCRIPTOR.full_name == HTTP_BODY:
            message.data, message.content_type = body, content_type
            return
        if not body.strip():
            return  # an empty body is `{}`
        try:
            parsed = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TranscodeError(f"Unexpected token. {exc}") from None
        if route.body and route.body != "*":
            field_descriptor = message.DESCRIPTOR.fields_by_name[route.body]
            parsed = {field_descriptor.json_name: parsed}
        if not isinstance(parsed, dict):
            raise TranscodeError(
                f"Expected a JSON object for {message.DESCRIPTOR.full_name}, got {type(parsed).__name__}."
            )
        try:
            json_format.ParseDict(parsed, message, ignore_unknown_fields=True, descriptor_pool=self.pool)
        except json_format.ParseError as exc:
            raise TranscodeError(str(exc)) from None

    # -- responses ---------------------------------------------------------------------------------

    def to_json(self, message: Message) -> bytes:
        as_dict = json_format.MessageToDict(
            message,
            always_print_fields_with_no_presence=self.print_options.always_print_primitive_fields,
            preserving_proto_field_name=self.print_options.preserve_proto_field_names,
            descriptor_pool=self.pool,
        )
        return json.dumps(as_dict, separators=(",", ":"), ensure_ascii=False).encode()

    def status_json(self, code: int, message: str, details: bytes | None) -> bytes:
        """The `google.rpc.Status` body `convert_grpc_status` writes."""
        status = status_pb2.Status()
        if details:
            try:
                status.ParseFromString(details)
            except Exception:
                status = status_pb2.Status()
        if not status.code and not status.message:
            status = status_pb2.Status(code=code, message=message)
        return self.to_json(status)


class _UnknownField(Exception):
    pass


def _http_rule(options: descriptor_pb2.MethodOptions) -> http_pb2.HttpRule | None:
    if not options.HasExtension(annotations_pb2.http):
        return None
    return options.Extensions[annotations_pb2.http]


def _routes_for(rule: http_pb2.HttpRule, method: MethodDescriptor) -> list[Route]:
    kind = rule.WhichOneof("pattern")
    if kind is None:
        return []
    if kind == "custom":
        http_method, path = rule.custom.kind, rule.custom.path
    else:
        http_method, path = kind.upper(), getattr(rule, kind)
    if rule.response_body:
        response_field = method.output_type.fields_by_name.get(rule.response_body)
        if (
            response_field is None
            or response_field.message_type is None
            or response_field.message_type.full_name != HTTP_BODY
        ):
            raise ValueError(
                f"{method.full_name}: response_body is supported only for google.api.HttpBody fields"
            )
    routes = [
        Route(
            http_method,
            templates.parse(path),
            rule.body,
            method,
            message_factory.GetMessageClass(method.input_type),
            message_factory.GetMessageClass(method.output_type),
        )
    ]
    for additional in rule.additional_bindings:
        routes.extend(_routes_for(additional, method))
    return routes


def _drop_duplicates(transcoder: Transcoder) -> None:
    """The same method and template registered twice matches nothing, as in Envoy."""
    seen: dict[tuple[str, str, str], int] = {}
    for route in transcoder.routes:
        key = (route.http_method, "/".join(route.template.segments), route.template.verb)
        seen[key] = seen.get(key, 0) + 1
    transcoder.routes = [
        r
        for r in transcoder.routes
        if seen[(r.http_method, "/".join(r.template.segments), r.template.verb)] == 1
    ]


def _query_pairs(query_string: str) -> list[tuple[str, str]]:
    pairs = []
    for item in query_string.split("&") if query_string else ():
        name, eq, value = item.partition("=")
        if not eq or not name:
            continue
        # `+` stays `+` (query_param_unescape_plus is off).
        pairs.append((unquote(name), unquote(value)))
    return pairs


def _set_path(message: Message, field_path: tuple[str, ...], value: str) -> None:
    target = message
    for index, part in enumerate(field_path):
        descriptor = _field(target, part)
        if index < len(field_path) - 1:
            if descriptor.message_type is None or descriptor.is_repeated:
                raise _UnknownField(part)
            target = getattr(target, descriptor.name)
            continue
        converted = _convert(descriptor, value, ".".join(field_path))
        if descriptor.is_repeated:
            getattr(target, descriptor.name).append(converted)
        else:
            setattr(target, descriptor.name, converted)


def _field(message: Message, name: str) -> FieldDescriptor:
    fields = message.DESCRIPTOR.fields_by_name
    if name in fields:
        return fields[name]
    for candidate in message.DESCRIPTOR.fields:
        if candidate.json_name == name:
            return candidate
    raise _UnknownField(name)


_INTS = {
    FieldDescriptor.TYPE_INT32: "TYPE_INT32", FieldDescriptor.TYPE_INT64: "TYPE_INT64",
    FieldDescriptor.TYPE_UINT32: "TYPE_UINT32", FieldDescriptor.TYPE_UINT64: "TYPE_UINT64",
    FieldDescriptor.TYPE_SINT32: "TYPE_SINT32", FieldDescriptor.TYPE_SINT64: "TYPE_SINT64",
    FieldDescriptor.TYPE_FIXED32: "TYPE_FIXED32", FieldDescriptor.TYPE_FIXED64: "TYPE_FIXED64",
    FieldDescriptor.TYPE_SFIXED32: "TYPE_SFIXED32", FieldDescriptor.TYPE_SFIXED64: "TYPE_SFIXED64",
}  # fmt: skip
_INT32, _UINT32, _INT64, _UINT64 = (
    (-(2**31), 2**31 - 1),
    (0, 2**32 - 1),
    (-(2**63), 2**63 - 1),
    (0, 2**64 - 1),
)
_INT_RANGES = {
    "TYPE_INT32": _INT32, "TYPE_SINT32": _INT32, "TYPE_SFIXED32": _INT32,
    "TYPE_UINT32": _UINT32, "TYPE_FIXED32": _UINT32,
    "TYPE_INT64": _INT64, "TYPE_SINT64": _INT64, "TYPE_SFIXED64": _INT64,
    "TYPE_UINT64": _UINT64, "TYPE_FIXED64": _UINT64,
}  # fmt: skip
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


def _convert(descriptor: FieldDescriptor, value: str, path: str):
    kind = descriptor.type
    if kind == FieldDescriptor.TYPE_STRING:
        return value
    if kind == FieldDescriptor.TYPE_BYTES:
        return value.encode()
    if kind in _INTS:
        type_name = _INTS[kind]
        low, high = _INT_RANGES[type_name]
        try:
            number = int(value, 10)
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            raise TranscodeError(f'{path}: invalid value "{value}" for type {type_name}')
        return number
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        try:
            return float(value)
        except ValueError:
            raise TranscodeError(f'{path}: invalid value "{value}" for type TYPE_DOUBLE') from None
    if kind == FieldDescriptor.TYPE_BOOL:
        lowered = value.lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise TranscodeError(f'{path}: invalid value "{value}" for type TYPE_BOOL')
    if kind == FieldDescriptor.TYPE_ENUM:
        enum_value = descriptor.enum_type.values_by_name.get(value)
        if enum_value is None and value.lstrip("-").isdigit():
            enum_value = descriptor.enum_type.values_by_number.get(int(value))
        if enum_value is None:
            raise TranscodeError(f'{path}: invalid value "{value}" for type TYPE_ENUM')
        return enum_value.number
    raise _UnknownField(path)  # a message field cannot take a bare query value
