"""A generation's record between Postgres and protos, written once.

What a generation asks for is catalog.proto's `GenerationSpec`. Each of its fields lives in the
`generations` column of its own name, but for those below; so a new field takes the proto, a
migration adding its column, and the code that uses it. The mapping here copies scalars. A generation's
input images are the record's (not the spec's): one jsonb column of InputImageRecord objects.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from imagegen.catalog.v1 import catalog_pb2
from psycopg.types.json import Jsonb

Row = dict[str, Any]

# Spec field -> column, where they differ: `user` is an SQL keyword, `model` (a name) sits beside
# the record's `model_id`, and the model-native request's two parts say what they are.
_COLUMN_OF = {"user": "end_user", "model": "model_name", "version": "native_version", "input": "native_input"}
_SPEC_FIELDS = catalog_pb2.GenerationSpec.DESCRIPTOR.fields
SPEC_COLUMNS: dict[str, str] = {field.name: _COLUMN_OF.get(field.name, field.name) for field in _SPEC_FIELDS}
# The record's own columns, then the spec's.
RECORD_COLUMNS = (
    "id",
    "project_id",
    "model_id",
    "server_id",
    "status",
    "reason",
    "created_at",
    "updated_at",
    "inputs",
    "request_body",
    "started_at",
    "completed_at",
    "trace_parent",
)
GENERATION_COLUMNS = ", ".join([*RECORD_COLUMNS, *SPEC_COLUMNS.values()])


def qualified_columns(alias: str) -> str:
    """GENERATION_COLUMNS for a statement where `generations` goes by `alias`."""
    return ", ".join(f"{alias}.{column}" for column in [*RECORD_COLUMNS, *SPEC_COLUMNS.values()])


def spec_from_row(row: Row) -> catalog_pb2.GenerationSpec:
    spec = catalog_pb2.GenerationSpec()
    for field, column in SPEC_COLUMNS.items():
        if row[column] is None:
            continue
        if isinstance(row[column], list):
            getattr(spec, field).extend(row[column])
        else:
            setattr(spec, field, row[column])
    return spec


def spec_values(spec: catalog_pb2.GenerationSpec) -> dict[str, Any]:
    """Column -> value of every spec field; None for an optional field left unset."""
    values = {}
    for field in _SPEC_FIELDS:
        unset = field.has_presence and not spec.HasField(field.name)
        value = getattr(spec, field.name)
        values[SPEC_COLUMNS[field.name]] = None if unset else list(value) if field.is_repeated else value
    return values


def inputs_value(inputs) -> Jsonb | None:
    """The `inputs` column's value for a list of InputImageRecord; None for none."""
    if not inputs:
        return None
    return Jsonb([json_format.MessageToDict(i, preserving_proto_field_name=True) for i in inputs])


def inputs_from_row(row: Row) -> list[catalog_pb2.InputImageRecord]:
    return [json_format.ParseDict(i, catalog_pb2.InputImageRecord()) for i in row.get("inputs") or ()]
