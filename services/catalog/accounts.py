"""The rules for projects and keys, end users' limits and credits, and usage reports."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from imagegen.catalog.v1 import catalog_pb2

from services.common import comfy_workflow
from services.common.auth import PUBLISHABLE_NO_CALLBACK, PUBLISHABLE_ONLY
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
)
from services.common.ids import is_id

from .account_store import AccountStore
from .repository import Row

KEY_KINDS = {"secret": "sk", "publishable": "pub"}
USER = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")
MAX_LIMIT = 10_000_000
# The most images a model may keep per image asked (the column's check says the same).
MAX_OUTPUTS_LIMIT = 8
MAX_CREDITS = 1_000_000_000
# The most a user may hold; a balance is an int32 in the API (the column's check says the same).
MAX_BALANCE = 2 * MAX_CREDITS
MAX_USAGE_DAYS = 366
MAX_RATE = 100_000
# One request a day: slower would put Retry-After beyond what clients (and protobuf's Duration) take.
MIN_RATE = 1 / 86_400
_NOT_VALID = "the API key is not valid; send `Authorization: Bearer <key>` with a live key"


@dataclass(frozen=True)
class KeyRate:
    """The request rate of keys that have none of their own; 0 requests per second is unlimited."""

    per_second: float = 100.0
    burst: int = 200


def hash_key(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode()).digest()


@dataclass(frozen=True)
class Principal:
    project_id: str
    key_id: str
    admin: bool
    kind: str = "secret"
    # The one end user a publishable key acts for.
    user: str = ""
    # The project's setting, read with the key.
    permanent_urls: bool = True

    def require_secret(self) -> Principal:
        if self.kind != "secret":
            raise PermissionDenied(PUBLISHABLE_ONLY)
        return self

    def require_admin(self) -> Principal:
        if not self.admin:
            raise PermissionDenied("managing projects and keys needs an admin key")
        return self


def new_key(kind: str) -> tuple[str, str]:
    """A new key in clear, and the hint that stands for it in listings."""
    key = f"{KEY_KINDS[kind]}_{secrets.token_urlsafe(32)}"
    return key, f"{KEY_KINDS[kind]}_…{key[-4:]}"


def check_rate(per_second: float, burst: int) -> tuple[float, int]:
    """A key's own rate; a burst left at 0 holds one second of requests."""
    if not MIN_RATE <= per_second <= MAX_RATE:
        raise InvalidArgument(
            f"rateLimit.requestsPerSecond must be between {MIN_RATE:.8f} (one a day) and {MAX_RATE};"
            f" got {per_second:g}",
            field="rate_limit.requests_per_second",
        )
    burst = burst or max(1, round(per_second))
    if not 1 <= burst <= MAX_RATE:
        raise InvalidArgument(
            f"rateLimit.burst must be between 1 and {MAX_RATE}; got {burst}", field="rate_limit.burst"
        )
    return per_second, burst


def check_user(user: str, field: str = "user") -> str:
    if not USER.match(user or ""):
        raise InvalidArgument(
            f"{field} must be 1..256 characters with no control characters; got {user!r}", field=field
        )
    return user


def check_max_outputs(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= MAX_OUTPUTS_LIMIT:
        raise InvalidArgument(
            f"maxOutputsPerImage must be between 1 and {MAX_OUTPUTS_LIMIT}; got {value}",
            field="max_outputs_per_image",
        )
    return value


def check_limit(value: int | None, field: str) -> int | None:
    if value is not None and not 0 <= value <= MAX_LIMIT:
        raise InvalidArgument(f"{field} must be between 0 and {MAX_LIMIT}; got {value}", field=field)
    return value


def period_resets(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """When the daily and monthly counts that include `day` start again (UTC)."""
    tomorrow = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    month = day.replace(day=1) + dt.timedelta(days=32)
    return tomorrow, dt.datetime.combine(month.replace(day=1), dt.time(), dt.UTC)


def _date(value: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(f"{field} must be a date as YYYY-MM-DD; got {value!r}", field=field) from None


class Accounts:
    def __init__(self, store: AccountStore, default_rate: KeyRate | None = None):
        self.store = store
        self.default_rate = default_rate or KeyRate()

    # -- every request ------------------------------------------------------------------------------

    async def authenticate(self, api_key: str) -> Principal:
        """The key's principal, once it has taken one token of its rate."""
        digest = hash_key(api_key)
        row = await self.store.authenticate(digest, self.default_rate.per_second, self.default_rate.burst)
        # The lookup goes by digest, so its timing can only tell about a sha256 of the key, never about
        # the key; the stored digest is compared in constant time all the same.
        if row is None or not hmac.compare_digest(row["key_hash"], digest) or row["revoked_at"] is not None:
            raise Unauthenticated(_NOT_VALID)
        if not row["granted"]:
            wait = (1 - row["tokens"]) / row["rate"]
            raise RateLimited(
                f"this key's rate of {row['rate']:g} requests per second is used up; retry in {wait:.2f} s",
                retry_after_seconds=wait,
            )
        return Principal(
            project_id=row["project_id"],
            key_id=row["id"],
            admin=row["admin"],
            kind=row["kind"],
            user=row["end_user"],
            permanent_urls=row["permanent_urls"],
        )

    async def recognize(self, api_key: str) -> None:
        """Refuses a key that is not live, without taking a token of its rate: the gateway asks before it
        holds a large body, and the call that follows takes the token as any call does."""
        digest = hash_key(api_key)
        stored = await self.store.live_key_hash(digest)
        if stored is None or not hmac.compare_digest(stored, digest):
            raise Unauthenticated(_NOT_VALID)

    def effective_rate(self, row: Row) -> tuple[float, int] | None:
        """The rate a key is held to, or None when it is unlimited."""
        if row["rate_per_second"] is not None:
            return row["rate_per_second"], row["rate_burst"]
        if self.default_rate.per_second > 0:
            return self.default_rate.per_second, self.default_rate.burst
        return None

    # -- projects and keys (admin) -----------------------------------------------------------------

    async def list_projects(self, principal: Principal) -> list[Row]:
        principal.require_admin()
        return await self.store.list_projects()

    async def queue_scope(self, principal: Principal, project_id: str) -> str | None:
        """Whose queue a key may read: its project's, or for an admin key every project's (None) or the
        one it names."""
        if principal.admin:
            return await self._existing_project(project_id) if project_id else None
        principal.require_secret()
        if project_id and project_id != principal.project_id:
            raise PermissionDenied("a secret key reads only its own project's queue")
        return principal.project_id

    async def create_project(self, principal: Principal, name: str) -> Row:
        principal.require_admin()
        name = name.strip()
        if not 1 <= len(name) <= 100:
            raise InvalidArgument("name must be 1..100 characters", field="name")
        return await self.store.create_project(name)

    async def update_project(self, principal: Principal, project_id: str, permanent_urls: bool | None) -> Row:
        """An admin key changes any project; a secret key changes its own."""
        if not principal.admin:
            principal.require_secret()
            if project_id != principal.project_id:
                raise PermissionDenied(
                    "a project's settings need an admin key or a secret key of that project"
                )
        row = (
            await self.store.update_project(project_id, permanent_urls)
            if is_id("project", project_id)
            else None
        )
        if row is None:
            raise NotFound(f"project {project_id!r} not found")
        return row

    async def _existing_project(self, project_id: str) -> str:
        if not is_id("project", project_id) or not await self.store.project_exists(project_id):
            raise NotFound(f"project {project_id!r} not found")
        return project_id

    async def acting_project(self, principal: Principal, project_id: str) -> str:
        """The project a call acts on: the key's own, or (for an admin key) the one it names."""
        if not project_id or project_id == principal.project_id:
            return principal.project_id
        principal.require_admin()
        return await self._existing_project(project_id)

    async def create_key(
        self,
        principal: Principal,
        project_id: str,
        name: str,
        kind: str,
        user: str,
        rate: tuple[float, int] | None,
    ) -> tuple[Row, str]:
        """The key's record and the key in clear."""
        principal.require_admin()
        await self._existing_project(project_id)
        kind = kind or "secret"
        if kind not in KEY_KINDS:
            raise InvalidArgument(f"kind must be secret or publishable; got {kind!r}", field="kind")
        if kind == "publishable":
            check_user(user)
        elif user:
            raise InvalidArgument("only a publishable key is made for one user; leave user out", field="user")
        if len(name) > 100:
            raise InvalidArgument("name must be at most 100 characters", field="name")
        rate = check_rate(*rate) if rate is not None else None
        key, hint = new_key(kind)
        row = await self.store.create_key(project_id, name, kind, user, hash_key(key), hint, rate)
        return row, key

    async def list_keys(self, principal: Principal, project_id: str) -> list[Row]:
        principal.require_admin()
        return await self.store.list_keys(await self._existing_project(project_id))

    async def update_key(
        self, principal: Principal, key_id: str, name: str | None, rate: tuple[float, int] | None | str
    ) -> Row:
        """`rate` is None to leave it, "default" to go back to the platform's, or (per second, burst)."""
        principal.require_admin()
        if name is not None and len(name) > 100:
            raise InvalidArgument("name must be at most 100 characters", field="name")
        if rate == "default":
            rate = (None, None)
        elif rate is not None:
            rate = check_rate(*rate)
        row = await self.store.update_key(key_id, name, rate) if is_id("key", key_id) else None
        if row is None:
            raise NotFound(f"key {key_id!r} not found")
        return row

    async def revoke_key(self, principal: Principal, key_id: str) -> Row:
        principal.require_admin()
        row = await self.store.revoke_key(key_id) if is_id("key", key_id) else None
        if row is None:
            raise NotFound(f"key {key_id!r} not found")
        return row

    # -- limits and credits (a project's secret keys) ----------------------------------------------

    async def update_model(
        self,
        principal: Principal,
        name: str,
        limits: tuple[int | None, int | None] | None,
        price: int | None,
        content_credentials: bool | None = None,
        native_policy: tuple[dict | None] | None = None,
        max_outputs_per_image: int | None = None,
        comfyui: dict | None = None,
    ) -> None:
        principal.require_secret()
        check_max_outputs(max_outputs_per_image)
        if comfyui is not None:
            comfy_workflow.check_model(comfyui)
        if limits is not None:
            limits = (
                check_limit(limits[0], "userLimits.daily"),
                check_limit(limits[1], "userLimits.monthly"),
            )
        if price is not None and not 0 <= price <= MAX_CREDITS:
            raise InvalidArgument(
                f"pricePerImage must be between 0 and {MAX_CREDITS}; got {price}", field="price_per_image"
            )
        updated = await self.store.update_model(
            principal.project_id,
            name,
            limits,
            price,
            content_credentials,
            native_policy,
            max_outputs_per_image,
            comfyui,
        )
        if not updated:
            if comfyui is not None and await self.store.model_exists(principal.project_id, name):
                raise InvalidArgument("only a model of provider comfyui takes `comfyui`", field="comfyui")
            raise NotFound(f"model {name!r} not found in this project")

    async def set_user_limits(
        self, principal: Principal, user: str, model: str, daily: int | None, monthly: int | None
    ) -> Row:
        principal.require_secret()
        check_user(user)
        row = await self.store.set_user_limits(
            principal.project_id, model, user, check_limit(daily, "daily"), check_limit(monthly, "monthly")
        )
        if row is None:
            raise NotFound(f"model {model!r} not found in this project", field="model")
        return row

    async def remaining(self, principal: Principal, user: str, model: str) -> Row:
        principal.require_secret()
        check_user(user)
        async with self.store.pool.connection() as conn:
            row = await self.store.model_for_user(conn, principal.project_id, model, user)
            if row is None:
                raise NotFound(f"model {model!r} not found in this project", field="model")
            day = await self.store.today(conn)
            counted = await self.store.counted(conn, row["id"], user, day)
        daily_reset, monthly_reset = period_resets(day)
        return {
            "remaining": None if row["daily_limit"] is None else max(row["daily_limit"] - counted["day"], 0),
            "remaining_this_month": None
            if row["monthly_limit"] is None
            else max(row["monthly_limit"] - counted["month"], 0),
            "daily_reset_at": daily_reset,
            "monthly_reset_at": monthly_reset,
        }

    async def add_credits(self, principal: Principal, user: str, amount: int) -> int:
        principal.require_secret()
        check_user(user)
        if not -MAX_CREDITS <= amount <= MAX_CREDITS or amount == 0:
            raise InvalidArgument(
                f"amount must be a non-zero number of credits within ±{MAX_CREDITS}", field="amount"
            )
        balance = await self.store.add_credits(principal.project_id, user, amount, MAX_BALANCE)
        if balance is None:
            have = await self.store.balance(principal.project_id, user)
            if amount > 0:
                raise InvalidArgument(
                    f"user {user!r} has {have} credits; adding {amount} would pass the most a user may hold,"
                    f" {MAX_BALANCE}",
                    field="amount",
                )
            raise FailedPrecondition(
                f"user {user!r} has {have} credits; taking {-amount} would go below zero"
            )
        return balance

    async def balance(self, principal: Principal, user: str) -> int:
        principal.require_secret()
        return await self.store.balance(principal.project_id, check_user(user))

    async def usage(self, principal: Principal, user: str, model: str, first: str, last: str) -> Row:
        principal.require_secret()
        today = dt.datetime.now(dt.UTC).date()
        last_day = _date(last, "to") if last else today
        first_day = _date(first, "from") if first else last_day - dt.timedelta(days=29)
        if first_day > last_day:
            raise InvalidArgument("from must not be after to", field="from")
        if (last_day - first_day).days >= MAX_USAGE_DAYS:
            raise InvalidArgument(f"a usage report covers at most {MAX_USAGE_DAYS} days", field="from")
        days = await self.store.usage(principal.project_id, user, model, first_day, last_day)
        totals = {k: sum(d[k] for d in days) for k in ("generations", "images", "failed")}
        return {"from": first_day, "to": last_day, "days": days, "totals": totals}


def held_to_key(
    principal: Principal, spec: catalog_pb2.GenerationSpec, request_hash: bytes
) -> tuple[catalog_pb2.GenerationSpec, bytes]:
    """A generation as the key may ask for it: a publishable key only for its own user, with no webhook.
    The user it fills in joins the idempotency digest, so two users' requests never replay each other."""
    if principal.kind != "publishable":
        return spec, request_hash
    if spec.user and spec.user != principal.user:
        raise PermissionDenied(PUBLISHABLE_ONLY)
    if spec.callback_url:
        raise PermissionDenied(PUBLISHABLE_NO_CALLBACK)
    held = catalog_pb2.GenerationSpec()
    held.CopyFrom(spec)
    held.user = principal.user
    if request_hash:
        request_hash = hashlib.sha256(request_hash + b"\0" + principal.user.encode()).digest()
    return held, request_hash
