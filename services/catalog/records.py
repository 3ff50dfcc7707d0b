"""A generation's record between Postgres and protos, written once.

What a generation asks for is catalog.proto's `GenerationSpec`. Each of its fields lives in the
`generations` column of its own name, but for the two below; so a new field takes the proto, a
migration adding its column, and the code that uses it. The mapping here copies scalars: the first
message-typed field (a JSON object, say) will want a jsonb column and its conversion added below.
"""

from __future__ import annotations

from typing import Any

from imagegen.catalog.v1 import catalog_pb2

Row = dict[str, Any]

# Spec field -> column, where they differ: `user` is an SQL keyword, and `model` (a name) sits beside
# the record's `model_id`.
_COLUMN_OF = {"user": "end_user", "model": "model_name"}
_SPEC_FIELDS = catalog_pb2.GenerationSpec.DESCRIPTOR.fields
SPEC_COLUMNS: dict[str, str] = {field.name: _COLUMN_OF.get(field.name, field.name) for field in _SPEC_FIELDS}
# The record's own columns, then the spec's.
RECORD_COLUMNS = ("id", "project_id", "model_id", "server_id", "status", "reason", "created_at", "updated_at")
GENERATION_COLUMNS = ", ".join([*RECORD_COLUMNS, *SPEC_COLUMNS.values()])


def qualified_columns(alias: str) -> str:
    """GENERATION_COLUMNS for a statement where `generations` goes by `alias`."""
    return ", ".join(f"{alias}.{column}" for column in [*RECORD_COLUMNS, *SPEC_COLUMNS.values()])


def spec_from_row(row: Row) -> catalog_pb2.GenerationSpec:
    spec = catalog_pb2.GenerationSpec()
    for field, column in SPEC_COLUMNS.items():
        if row[column] is not None:
            setattr(spec, field, row[column])
    return spec


def spec_values(spec: catalog_pb2.GenerationSpec) -> dict[str, Any]:
    """Column -> value of every spec field; None for an optional field left unset."""
    values = {}
    for field in _SPEC_FIELDS:
        unset = field.has_presence and not spec.HasField(field.name)
        values[SPEC_COLUMNS[field.name]] = None if unset else getattr(spec, field.name)
    return values
