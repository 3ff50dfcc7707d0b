"""The catalog's rules: who a key belongs to, what a generation may become, how pages are cursored."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, Unauthenticated

from .repository import Repository, Row

log = logging.getLogger("imagegen.catalog")

STATUSES = ("pending", "processing", "completed", "failed")
TERMINAL_STATUSES = ("completed", "failed")
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 200
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def hash_key(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode()).digest()


@dataclass(frozen=True)
class Principal:
    project_id: str
    key_id: str
    admin: bool


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_token: str
    previous_token: str
    page_size: int


def encode_page_token(row: Row, newer: bool) -> str:
    micros = (row["created_at"] - _EPOCH) // dt.timedelta(microseconds=1)
    raw = json.dumps({"d": "p" if newer else "n", "t": micros, "i": row["id"]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[tuple[dt.datetime, str], bool]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        cursor = (_EPOCH + dt.timedelta(microseconds=int(data["t"])), str(data["i"]))
        if data["d"] not in ("n", "p"):
            raise ValueError(data["d"])
        return cursor, data["d"] == "p"
    except (binascii.Error, ValueError, KeyError, TypeError, OverflowError):
        raise InvalidArgument(
            "pageToken is not one this API issued; pass nextPageToken or previousPageToken from an"
            " earlier answer unchanged, or leave it out for the first page",
            field="page_token",
        ) from None


def clamp_page_size(page_size: int) -> int:
    if page_size < 0:
        raise InvalidArgument(
            f"pageSize must be between 1 and {MAX_PAGE_SIZE}, got {page_size}", field="page_size"
        )
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


class Catalog:
    def __init__(self, repository: Repository):
        self.repo = repository

    async def bootstrap(self, api_key: str) -> None:
        """Makes sure the bootstrap admin key exists, creating its `default` project the first time."""
        if not api_key:
            return
        if await self.repo.find_key(hash_key(api_key)) is not None:
            return
        project_id = await self.repo.create_project_with_key(
            "default", hash_key(api_key), "bootstrap", admin=True
        )
        log.info("bootstrap project created", extra={"fields": {"project_id": project_id}})

    async def authenticate(self, api_key: str) -> Principal:
        row = await self.repo.find_key(hash_key(api_key)) if api_key else None
        if row is None or row["revoked_at"] is not None:
            raise Unauthenticated(
                "the API key is not valid; send `Authorization: Bearer <key>` with a live key"
            )
        return Principal(project_id=row["project_id"], key_id=row["id"], admin=row["admin"])

    async def list_models(self, project_id: str) -> list[Row]:
        return await self.repo.list_models(project_id)

    async def get_model(self, project_id: str, name: str) -> Row:
        models = await self.repo.list_models(project_id, name)
        if not models:
            raise NotFound(f"model {name!r} not found in this project")
        return models[0]

    async def create_generation(self, fields: dict[str, Any]) -> tuple[Row, Row]:
        created = await self.repo.create_generation(fields)
        if created is None:
            available = ", ".join(m["name"] for m in await self.repo.list_models(fields["project_id"]))
            raise NotFound(
                f"model {fields['model']!r} not found; this project has: {available}", field="model"
            )
        return created

    async def finish_generation(
        self, project_id: str, generation_id: str, status: str, server_id: str, reason: str, images: list[Row]
    ) -> Row:
        row = await self.repo.finish_generation(project_id, generation_id, status, server_id, reason, images)
        if row is not None:
            return row
        if await self.repo.generation_exists(project_id, generation_id):
            raise FailedPrecondition(f"generation {generation_id} has already finished")
        raise NotFound(f"generation {generation_id} not found")

    async def get_generation(self, project_id: str, generation_id: str) -> Row:
        row = await self.repo.get_generation(project_id, generation_id)
        if row is None:
            raise NotFound(f"generation {generation_id} not found")
        return row

    async def list_generations(
        self, project_id: str, filters: dict[str, str], page_size: int, page_token: str
    ) -> Page:
        if filters.get("status") and filters["status"] not in STATUSES:
            raise InvalidArgument(
                f"status must be one of {', '.join(STATUSES)}; got {filters['status']!r}", field="status"
            )
        size = clamp_page_size(page_size)
        cursor, newer = decode_page_token(page_token) if page_token else (None, False)
        rows = await self.repo.list_generations(project_id, filters, cursor, newer, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        if newer:
            rows.reverse()
            previous_token = encode_page_token(rows[0], newer=True) if more else ""
            next_token = encode_page_token(rows[-1], newer=False) if rows else ""
        else:
            next_token = encode_page_token(rows[-1], newer=False) if more else ""
            previous_token = encode_page_token(rows[0], newer=True) if rows and cursor is not None else ""
        return Page(rows=rows, next_token=next_token, previous_token=previous_token, page_size=size)

    async def delete_generation(self, project_id: str, generation_id: str) -> list[str]:
        orphaned = await self.repo.delete_generation(project_id, generation_id)
        if orphaned is None:
            raise NotFound(f"generation {generation_id} not found")
        return orphaned
