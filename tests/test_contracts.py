"""The committed generated code and descriptor set match protos/, and the contracts keep their rules."""

from __future__ import annotations

import filecmp
import pathlib

import yaml
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from gateway.config import DESCRIPTOR_SET, GRPC_ONLY_METHODS, TRANSCODED_SERVICES
from gateway.openapi import openapi_path_template
from tools import gen_protos

REPO = pathlib.Path(__file__).resolve().parents[1]
OPENAPI = "gateway/openapi.yaml"


def _files(root: pathlib.Path) -> set[pathlib.Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_generated_code_and_descriptor_set_are_fresh(tmp_path):
    gen_protos.generate(tmp_path)
    fresh, committed = tmp_path / "gen/python", REPO / "gen/python"
    assert _files(fresh) == _files(committed), "run `make protos` and commit the result"
    stale = [str(p) for p in _files(fresh) if not filecmp.cmp(fresh / p, committed / p, shallow=False)]
    assert not stale, f"stale generated files {stale}: run `make protos` and commit the result"
    assert (tmp_path / "gateway/api_descriptor.pb").read_bytes() == DESCRIPTOR_SET.read_bytes(), (
        "gateway/api_descriptor.pb is stale: run `make protos`"
    )
    assert (tmp_path / OPENAPI).read_text() == (REPO / OPENAPI).read_text(), (
        "gateway/openapi.yaml is stale: run `make protos`"
    )


def test_openapi_document_has_every_route_the_gateway_transcodes():
    document = yaml.safe_load((REPO / OPENAPI).read_text())
    documented = {
        (method.upper(), path) for path, operations in document["paths"].items() for method in operations
    }
    routes = set()
    for name, service in _services().items():
        if name not in TRANSCODED_SERVICES:
            continue
        for method in service.method:
            if not method.options.HasExtension(annotations_pb2.http):
                continue  # gRPC-only: test_public_rpcs_are_annotated_and_internal_ones_are_not_routable
            pending = [method.options.Extensions[annotations_pb2.http]]
            while pending:
                rule = pending.pop()
                pending.extend(rule.additional_bindings)
                kind = rule.WhichOneof("pattern")
                routes.add((kind.upper(), openapi_path_template(getattr(rule, kind))[0]))
    assert documented == routes
    create = document["paths"]["/api/images/generations"]["post"]
    assert create["summary"].startswith("Queues a generation from a JSON")
    # The generator parses this body itself: unknown fields are refused, `input` is any JSON object.
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False
    fields = body["properties"]
    assert fields["prompt"]["type"] == "string" and fields["async"]["type"] == "boolean"
    assert fields["input"]["type"] == "object" and fields["input"]["additionalProperties"] is True
    assert fields["n"] | {"description": ""} == {
        "type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1, "description": ""
    }  # fmt: skip
    # A signed URL is its own credential; everything else needs a key and may answer 401 and 429.
    get_file = document["paths"]["/api/files/{key}"]["get"]
    assert get_file["security"] == [] and "401" not in get_file["responses"]
    assert "Retry-After" in create["responses"]["429"]["headers"]


def _services() -> dict[str, descriptor_pb2.ServiceDescriptorProto]:
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    return {
        f"{file.package}.{service.name}": service
        for file in files.file
        if file.package.startswith("imagegen.")
        for service in file.service
    }


def test_proto_directories_are_their_packages():
    for proto in (REPO / "protos").rglob("*.proto"):
        package = next(line for line in proto.read_text().splitlines() if line.startswith("package "))
        expected = ".".join(proto.parent.relative_to(REPO / "protos").parts)
        assert package == f"package {expected};", proto


def test_public_rpcs_are_annotated_and_internal_ones_are_not_routable():
    services = _services()
    internal = {name for name in services if name.endswith("InternalService")}
    public = set(services) - internal
    assert public == set(TRANSCODED_SERVICES), "every public service is transcoded, and nothing else"
    for name in public:
        for method in services[name].method:
            routed = method.options.HasExtension(annotations_pb2.http)
            assert routed != (f"{name}.{method.name}" in GRPC_ONLY_METHODS), (
                f"{name}.{method.name}: every public method has a google.api.http but the gRPC-only ones"
            )
    for name in internal:
        for method in services[name].method:
            assert not method.options.HasExtension(annotations_pb2.http), (
                f"internal {name}.{method.name} has a route"
            )


def test_the_public_messages_carry_every_field_of_the_one_generation_spec():
    """catalog.proto's GenerationSpec is what a generation asks for; the public messages carry its fields
    flat (their JSON is the public contract), by the same names and types, and are copied by name."""
    from imagegen.catalog.v1 import catalog_pb2
    from imagegen.generator.v1 import generator_pb2

    spec_fields = catalog_pb2.GenerationSpec.DESCRIPTOR.fields_by_name
    for public in (generator_pb2.Generation, generator_pb2.CreateGenerationRequest):
        fields = public.DESCRIPTOR.fields_by_name
        for name, field in spec_fields.items():
            assert name in fields, f"{public.DESCRIPTOR.name} lacks the spec's {name}"
            assert (fields[name].type, fields[name].is_repeated) == (field.type, field.is_repeated), name
