"""An OpenAPI 3.1 document of the public REST surface, made from the descriptor set's `google.api.http`
rules, field types and proto comments.

It describes what Envoy's transcoder accepts and answers: protobuf's JSON mapping with camelCase names,
64-bit integers as strings, every field of a GET or DELETE and every field left out of a `body: "field"`
rule as a query parameter, and errors as `google.rpc.Status` (Envoy's documentation:
https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/grpc_json_transcoder_filter).
`make protos` writes it to gateway/openapi.yaml and, the same document, gateway/openapi.json, which
Envoy answers at /openapi.json.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterable

from google.api import annotations_pb2, field_behavior_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, MethodDescriptor

HTTP_BODY = "google.api.HttpBody"
_STATUS = "google.rpc.Status"
_ANY = "google.protobuf.Any"

_INT32 = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"type": "integer", "format": "int32", "minimum": 0, "maximum": 2**32 - 1}
# Printed as strings; parsed from strings or numbers.
_INT64 = {"type": "string", "format": "int64", "pattern": r"^-?[0-9]+$"}
_UINT64 = {"type": "string", "format": "uint64", "pattern": r"^[0-9]+$"}
_SCALARS = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_WRAPPERS = {
    "google.protobuf.DoubleValue": FieldDescriptor.TYPE_DOUBLE,
    "google.protobuf.FloatValue": FieldDescriptor.TYPE_FLOAT,
    "google.protobuf.Int64Value": FieldDescriptor.TYPE_INT64,
    "google.protobuf.UInt64Value": FieldDescriptor.TYPE_UINT64,
    "google.protobuf.Int32Value": FieldDescriptor.TYPE_INT32,
    "google.protobuf.UInt32Value": FieldDescriptor.TYPE_UINT32,
    "google.protobuf.BoolValue": FieldDescriptor.TYPE_BOOL,
    "google.protobuf.StringValue": FieldDescriptor.TYPE_STRING,
    "google.protobuf.BytesValue": FieldDescriptor.TYPE_BYTES,
}
# Well-known types print as JSON values of their own, not as objects of their fields.
_WELL_KNOWN = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    _ANY: {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
}
# Every error: the Status JSON, or a plain-text line when the request could not be transcoded at all.
_ERROR_RESPONSE = {
    "description": "An error: the gRPC status as `google.rpc.Status` JSON, with typed details. A request"
    " the gateway cannot turn into a call (bad JSON, a bad query value) gets a plain-text 400.",
    "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{_STATUS}"}},
        "text/plain": {"schema": {"type": "string"}},
    },
}
_TOO_MANY = {
    "description": "The key's request rate or a user's limit is used up (RESOURCE_EXHAUSTED).",
    "headers": {
        "Retry-After": {
            "description": "Whole seconds until the key's rate allows another request (rate limits only).",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{_STATUS}"}}},
}
_UNAUTHENTICATED = {
    "description": "No key, a malformed one, or one that is unknown or revoked.",
    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{_STATUS}"}}},
}


TITLE = "imagegen"
VERSION = "v1"


def build(
    descriptor_set: pathlib.Path,
    services: Iterable[str],
    keyless_methods: Iterable[str] = (),
    json_bodies: dict[str, tuple[str, tuple[str, ...]]] | None = None,
    body_types: dict[str, tuple[str, ...]] | None = None,
    title: str = TITLE,
    version: str = VERSION,
) -> dict:
    """`keyless_methods` (full names) take no API key: a signed URL is its own credential. `json_bodies`
    maps a method taking `google.api.HttpBody` to the message its JSON body is, with the named string
    fields as JSON objects (gateway/config.py's JSON_BODIES). `body_types` names what a method answering
    `google.api.HttpBody` sends where it is not an image (BODY_TYPES)."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    builder = _Builder(pool, _comments(files), set(keyless_methods), json_bodies or {}, body_types or {})
    for service_name in services:
        builder.add_service(pool.FindServiceByName(service_name))
    return builder.document(title, version)


def _comments(files: descriptor_pb2.FileDescriptorSet) -> dict[str, str]:
    """Leading comments of services, methods, messages, fields and enums, by full name."""
    comments = {}
    for file in files.file:
        names = _names_by_location(file)
        for location in file.source_code_info.location:
            name = names.get(tuple(location.path))
            text = " ".join(line.strip() for line in location.leading_comments.strip().splitlines())
            if name and text:
                comments[name] = text
    return comments


def _names_by_location(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """Full names by source-info path (4 = message, 2 = its field, 3 = nested, 5/4 = enum, 6 = service)."""
    prefix = f"{file.package}." if file.package else ""
    names: dict[tuple[int, ...], str] = {}
    pending = [(prefix, (4,), file.message_type)]
    while pending:
        owner, path, types = pending.pop()
        for index, message in enumerate(types):
            name, here = owner + message.name, (*path, index)
            names[here] = name
            for field_index, field in enumerate(message.field):
                names[(*here, 2, field_index)] = f"{name}.{field.name}"
            for enum_index, enum in enumerate(message.enum_type):
                names[(*here, 4, enum_index)] = f"{name}.{enum.name}"
            pending.append((f"{name}.", (*here, 3), message.nested_type))
    for index, enum in enumerate(file.enum_type):
        names[(5, index)] = prefix + enum.name
    for index, service in enumerate(file.service):
        names[(6, index)] = prefix + service.name
        for method_index, method in enumerate(service.method):
            names[(6, index, 2, method_index)] = f"{prefix}{service.name}.{method.name}"
    return names


def _http_rules(method: MethodDescriptor) -> list[http_pb2.HttpRule]:
    options = descriptor_pb2.MethodOptions.FromString(method.GetOptions().SerializeToString())
    if not options.HasExtension(annotations_pb2.http):
        return []
    rules, pending = [], [options.Extensions[annotations_pb2.http]]
    while pending:
        rule = pending.pop(0)
        rules.append(rule)
        pending.extend(rule.additional_bindings)
    return rules


def _required(field: FieldDescriptor) -> bool:
    options = descriptor_pb2.FieldOptions.FromString(field.GetOptions().SerializeToString())
    return field_behavior_pb2.REQUIRED in options.Extensions[field_behavior_pb2.field_behavior]


class _Builder:
    def __init__(
        self,
        pool: descriptor_pool.DescriptorPool,
        comments: dict[str, str],
        keyless: set[str],
        json_bodies: dict[str, tuple[str, tuple[str, ...]]],
        body_types: dict[str, tuple[str, ...]],
    ):
        self.json_bodies = json_bodies
        self.body_types = body_types
        self.pool = pool
        self.comments = comments
        self.keyless = keyless
        self.paths: dict[str, dict] = {}
        self.schemas: dict[str, dict] = {}
        self.tags: list[dict] = []

    def document(self, title: str, version: str) -> dict:
        self._message_schema(self.pool.FindMessageTypeByName(_STATUS))
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "tags": self.tags,
            "security": [{"bearerAuth": []}],
            "paths": dict(sorted(self.paths.items())),
            "components": {
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "A key: `sk_…` (secret), `pub_…` (publishable), or an admin key.",
                    }
                },
                "schemas": dict(sorted(self.schemas.items())),
            },
        }

    # -- operations --------------------------------------------------------------------------------

    def add_service(self, service) -> None:
        tag = {"name": service.name}
        if service.full_name in self.comments:
            tag["description"] = self.comments[service.full_name]
        self.tags.append(tag)
        for method in service.methods:
            for index, rule in enumerate(_http_rules(method)):
                self._add_operation(service.name, method, rule, index)

    def _add_operation(self, tag: str, method: MethodDescriptor, rule: http_pb2.HttpRule, index: int) -> None:
        kind = rule.WhichOneof("pattern")
        if kind == "custom":
            http_method, path = rule.custom.kind.lower(), rule.custom.path
        else:
            http_method, path = kind, getattr(rule, kind)
        openapi_path, bound = openapi_path_template(path)
        operation: dict = {
            "operationId": f"{tag}_{method.name}" + (f"_{index}" if index else ""),
            "tags": [tag],
        }
        comment = self.comments.get(method.full_name)
        if comment:
            operation["summary"] = comment.split(". ")[0].rstrip(".")
            if comment.rstrip(".") != operation["summary"]:
                operation["description"] = comment
        request = method.input_type
        parameters = [self._path_parameter(request, name) for name in bound]
        if method.full_name in self.json_bodies:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": self._json_body_schema(method.full_name)}},
            }
        elif rule.body == "*":
            body_schema = self._body_schema(request, bound)
            if body_schema is not None:
                operation["requestBody"] = {
                    "required": False,
                    "content": {"application/json": {"schema": body_schema}},
                }
        else:
            if rule.body:
                field = request.fields_by_name[rule.body]
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": self._field_schema(field)}},
                }
            parameters += self._query_parameters(request, set(bound) | {rule.body}, "")
        if parameters:
            operation["parameters"] = parameters
        operation["responses"] = {"200": self._success(method)}
        if method.full_name in self.keyless:
            operation["security"] = []
        else:
            operation["responses"] |= {"401": _UNAUTHENTICATED, "429": _TOO_MANY}
        operation["responses"]["default"] = _ERROR_RESPONSE
        self.paths.setdefault(openapi_path, {})[http_method] = operation

    def _success(self, method: MethodDescriptor) -> dict:
        output = method.output_type
        if output.full_name == HTTP_BODY:
            types = self.body_types.get(method.full_name, ("image/*",))
            return {
                "description": "The bytes themselves, with their own content type.",
                "content": {kind: {"schema": {"type": "string", "format": "binary"}} for kind in types},
            }
        schema = self._message_ref(output)
        if method.server_streaming:
            return {
                "description": f"Server-sent events: each event is `data: <{output.name} JSON>`, until the"
                " stream ends.",
                # Per event, as OpenAPI 3.1 readers (schemathesis among them) take an event stream's
                # schema: the HTML standard's fields, with the message as JSON in `data`.
                "content": {
                    "text/event-stream": {
                        "schema": {
                            "type": "object",
                            "required": ["data"],
                            "properties": {
                                "data": {
                                    "type": "string",
                                    "contentMediaType": "application/json",
                                    "contentSchema": schema,
                                },
                                "event": {"type": "string"},
                                "id": {"type": "string"},
                                "retry": {"type": "integer", "minimum": 0},
                            },
                        }
                    }
                },
            }
        return {
            "description": self.comments.get(output.full_name, output.name),
            "content": {"application/json": {"schema": schema}},
        }

    def _body_schema(self, message: Descriptor, bound: list[str]) -> dict | None:
        top_bound = {name.split(".")[0] for name in bound}
        if not top_bound:
            return self._message_ref(message)
        schema = self._object_schema(message, skip=top_bound)
        return schema if schema["properties"] else None

    def _json_body_schema(self, method_name: str) -> dict:
        """The message's schema, its object-valued string fields as objects, and nothing else allowed:
        the service refuses unknown fields."""
        message_name, object_fields = self.json_bodies[method_name]
        message = self.pool.FindMessageTypeByName(message_name)
        schema = self._object_schema(message)
        for field in message.fields:
            if field.name in object_fields:
                described = schema["properties"][field.json_name]
                described.update(type="object", additionalProperties=True)
        schema["additionalProperties"] = False
        return schema

    def _query_parameters(self, message: Descriptor, skip: set[str], prefix: str) -> list[dict]:
        parameters = []
        for field in message.fields:
            if field.name in skip or (prefix + field.name) in skip:
                continue
            name = prefix + field.json_name
            if field.message_type is not None and field.message_type.full_name not in _WRAPPERS:
                if field.is_repeated or field.message_type.full_name in _WELL_KNOWN:
                    continue  # no query syntax reaches these
                parameters += self._query_parameters(field.message_type, set(), name + ".")
                continue
            schema = self._field_schema(field)
            schema.pop("description", None)
            parameter = {"name": name, "in": "query", "schema": schema}
            if field.is_repeated:
                parameter |= {"style": "form", "explode": True}
            description = self.comments.get(field.full_name)
            if description:
                parameter["description"] = description
            parameters.append(parameter)
        return parameters

    def _path_parameter(self, message: Descriptor, dotted: str) -> dict:
        *parents, last = dotted.split(".")
        for part in parents:
            message = message.fields_by_name[part].message_type
        field = message.fields_by_name[last]
        schema = self._field_schema(field)
        schema.pop("description", None)
        parameter = {"name": dotted, "in": "path", "required": True, "schema": schema | {"minLength": 1}}
        if field.full_name in self.comments:
            parameter["description"] = self.comments[field.full_name]
        return parameter

    # -- schemas -----------------------------------------------------------------------------------

    def _message_ref(self, message: Descriptor) -> dict:
        if message.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[message.full_name])
        if message.full_name in _WRAPPERS:
            scalar = dict(_SCALARS[_WRAPPERS[message.full_name]])
            return scalar | {"type": [scalar["type"], "null"]}
        self._message_schema(message)
        return {"$ref": f"#/components/schemas/{message.full_name}"}

    def _message_schema(self, message: Descriptor) -> None:
        if message.full_name in self.schemas:
            return
        self.schemas[message.full_name] = {}  # claims the name first: messages may nest themselves
        self.schemas[message.full_name] = self._object_schema(message)

    def _object_schema(self, message: Descriptor, skip: set[str] = frozenset()) -> dict:
        schema: dict = {"type": "object"}
        comment = self.comments.get(message.full_name)
        if comment:
            schema["description"] = comment
        properties, required = {}, []
        for field in message.fields:
            if field.name in skip:
                continue
            properties[field.json_name] = self._field_schema(field)
            if _required(field):
                required.append(field.json_name)
        schema["properties"] = properties
        if required:
            schema["required"] = required
        return schema

    def _field_schema(self, field: FieldDescriptor) -> dict:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            schema = {"type": "object", "additionalProperties": self._single_schema(value)}
        elif field.is_repeated:
            schema = {"type": "array", "items": self._single_schema(field)}
        else:
            schema = self._single_schema(field)
        description = self.comments.get(field.full_name)
        if description:
            # Siblings of $ref are allowed in 3.1; they describe this use of the type.
            schema = schema | {"description": description}
        return schema

    def _single_schema(self, field: FieldDescriptor) -> dict:
        if field.message_type is not None:
            return self._message_ref(field.message_type)
        if field.enum_type is not None:
            return _enum_schema(field.enum_type)
        return dict(_SCALARS[field.type])


def _enum_schema(enum: EnumDescriptor) -> dict:
    return {"type": "string", "enum": [value.name for value in enum.values]}


# `{field}` or `{field=segments}` in a google.api.http path template.
_VARIABLE = re.compile(r"\{([^}=]+)(?:=[^}]*)?\}")


def openapi_path_template(template: str) -> tuple[str, list[str]]:
    """`/api/keys/{id}` as OpenAPI writes it, and the fields its variables bind; a variable over many
    segments (`{name=models/*}`) is still one parameter."""
    bound = _VARIABLE.findall(template)
    return _VARIABLE.sub(lambda match: "{" + match.group(1) + "}", template), bound
