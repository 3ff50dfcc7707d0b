"""SQL for projects' keys, end users' limits and credits, and usage. Every statement is scoped by
project; callers pass plain values."""

from __future__ import annotations

import datetime as dt

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from services.common.ids import new_id

from .repository import Repository, Row

# Larger than any count, for a period with no limit: its counter still counts.
_NO_LIMIT = 2**31 - 1
_PERIOD_START = {
    "day": "%(day)s::date",
    "month": "date_trunc('month', %(day)s::date)::date",
}


_PROJECT_COLUMNS = "id, name, created_at, permanent_urls"
_KEY_COLUMNS = (
    "id, project_id, name, kind, end_user, hint, created_at, revoked_at, rate_per_second, rate_burst"
)

# Tokens in a key's bucket now: what it held, plus the refill since, up to the burst.
_AVAILABLE = (
    "least(excluded.burst, b.tokens"
    " + excluded.rate * greatest(0, extract(epoch FROM excluded.refilled_at - b.refilled_at)))"
)
# Finds the key and takes one token in one statement. The bucket row's lock makes concurrent requests
# of one key take turns, so the count is exact across every catalog. A refused request takes nothing.
_AUTHENTICATE = f"""
WITH k AS (
    SELECT id, project_id, admin, kind, end_user, revoked_at, key_hash,
           coalesce(rate_per_second, %(rate)s) AS rate, coalesce(rate_burst, %(burst)s) AS burst
      FROM api_keys WHERE key_hash = %(hash)s
), taken AS (
    INSERT INTO rate_buckets AS b (key_id, rate, burst, tokens, refilled_at, granted)
    SELECT id, rate, burst, burst - 1, clock_timestamp(), true FROM k
     WHERE revoked_at IS NULL AND rate > 0
    ON CONFLICT (key_id) DO UPDATE SET
        rate = excluded.rate,
        burst = excluded.burst,
        tokens = {_AVAILABLE} - CASE WHEN {_AVAILABLE} >= 1 THEN 1 ELSE 0 END,
        granted = {_AVAILABLE} >= 1,
        refilled_at = excluded.refilled_at
    RETURNING key_id, rate, tokens, granted
)
SELECT k.id, k.project_id, k.admin, k.kind, k.end_user, k.revoked_at, k.key_hash,
       t.rate, t.tokens, coalesce(t.granted, true) AS granted, p.permanent_urls
  FROM k JOIN projects p ON p.id = k.project_id LEFT JOIN taken t ON t.key_id = k.id
"""


class AccountStore:
    def __init__(self, pool: AsyncConnectionPool, repository: Repository):
        self.pool = pool
        self.repo = repository

    # -- projects and keys -------------------------------------------------------------------------

    async def authenticate(self, key_hash: bytes, default_rate: float, default_burst: int) -> Row | None:
        """The key's row with `granted` (a token was taken), `tokens` left and `rate`; None if unknown."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                _AUTHENTICATE, {"hash": key_hash, "rate": default_rate, "burst": default_burst}
            )
            return await cur.fetchone()

    async def live_key_hash(self, key_hash: bytes) -> bytes | None:
        """The stored digest of a key that is not revoked, or None; no token is taken."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT key_hash FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL", (key_hash,)
            )
            row = await cur.fetchone()
            return None if row is None else bytes(row["key_hash"])

    async def list_projects(self) -> list[Row]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(f"SELECT {_PROJECT_COLUMNS} FROM projects ORDER BY created_at, id")
            return await cur.fetchall()

    async def create_project(self, name: str) -> Row:
        async with self.pool.connection() as conn, conn.transaction():
            project_id = await self.repo.create_project(conn, name)
            cur = await conn.execute(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = %s", (project_id,))
            return await cur.fetchone()

    async def update_project(self, project_id: str, permanent_urls: bool | None) -> Row | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE projects SET permanent_urls = coalesce(%s, permanent_urls)"
                f" WHERE id = %s RETURNING {_PROJECT_COLUMNS}",
                (permanent_urls, project_id),
            )
            return await cur.fetchone()

    async def project_exists(self, project_id: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM projects WHERE id = %s", (project_id,))
            return await cur.fetchone() is not None

    async def create_key(
        self,
        project_id: str,
        name: str,
        kind: str,
        user: str,
        key_hash: bytes,
        hint: str,
        rate: tuple[float, int] | None,
    ) -> Row:
        per_second, burst = rate or (None, None)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO api_keys"
                " (id, project_id, name, key_hash, kind, end_user, hint, rate_per_second, rate_burst)"
                f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_KEY_COLUMNS}",
                (new_id("key"), project_id, name, key_hash, kind, user, hint, per_second, burst),
            )
            return await cur.fetchone()

    async def list_keys(self, project_id: str) -> list[Row]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE project_id = %s ORDER BY created_at, id",
                (project_id,),
            )
            return await cur.fetchall()

    async def update_key(
        self, key_id: str, name: str | None, rate: tuple[float | None, int | None] | None
    ) -> Row | None:
        """`rate` None leaves the rate alone; (None, None) goes back to the default."""
        per_second, burst = rate or (None, None)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE api_keys SET name = coalesce(%(name)s, name),"
                " rate_per_second = CASE WHEN %(set_rate)s THEN %(per_second)s ELSE rate_per_second END,"
                " rate_burst = CASE WHEN %(set_rate)s THEN %(burst)s ELSE rate_burst END"
                f" WHERE id = %(id)s RETURNING {_KEY_COLUMNS}",
                {
                    "id": key_id,
                    "name": name,
                    "set_rate": rate is not None,
                    "per_second": per_second,
                    "burst": burst,
                },
            )
            return await cur.fetchone()

    async def revoke_key(self, key_id: str) -> Row | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, clock_timestamp()) WHERE id = %s"
                f" RETURNING {_KEY_COLUMNS}",
                (key_id,),
            )
            return await cur.fetchone()

    # -- limits ------------------------------------------------------------------------------------

    async def update_model(
        self,
        project_id: str,
        name: str,
        limits: tuple[int | None, int | None] | None,
        price: int | None,
        content_credentials: bool | None,
        native_policy: tuple[dict | None] | None = None,
        max_outputs_per_image: int | None = None,
        comfyui: dict | None = None,
    ) -> bool:
        """`native_policy` is None to leave it, or (the new policy, None for the provider's defaults).
        A `comfyui` workflow is written only to a comfyui model: False for any other."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE models SET"
                " daily_limit = CASE WHEN %(set_limits)s THEN %(daily)s ELSE daily_limit END,"
                " monthly_limit = CASE WHEN %(set_limits)s THEN %(monthly)s ELSE monthly_limit END,"
                " price_per_image = coalesce(%(price)s, price_per_image),"
                " content_credentials = coalesce(%(signed)s, content_credentials),"
                " native_policy = CASE WHEN %(set_policy)s THEN %(policy)s ELSE native_policy END,"
                " max_outputs_per_image = coalesce(%(max_outputs)s, max_outputs_per_image),"
                " comfyui = coalesce(%(comfyui)s, comfyui)"
                " WHERE project_id = %(project)s AND (name = %(name)s OR id = %(name)s)"
                "   AND (%(comfyui)s::jsonb IS NULL OR provider = 'comfyui') RETURNING id",
                {
                    "comfyui": Jsonb(comfyui) if comfyui is not None else None,
                    "set_policy": native_policy is not None,
                    "policy": Jsonb(native_policy[0])
                    if native_policy and native_policy[0] is not None
                    else None,
                    "max_outputs": max_outputs_per_image,
                    "set_limits": limits is not None,
                    "daily": limits[0] if limits else None,
                    "monthly": limits[1] if limits else None,
                    "price": price,
                    "signed": content_credentials,
                    "project": project_id,
                    "name": name,
                },
            )
            return await cur.fetchone() is not None

    async def model_exists(self, project_id: str, name: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM models WHERE project_id = %s AND (name = %s OR id = %s)",
                (project_id, name, name),
            )
            return await cur.fetchone() is not None

    async def set_user_limits(
        self, project_id: str, model: str, user: str, daily: int | None, monthly: int | None
    ) -> Row | None:
        """The limits that now apply to the user; None when the project has no such model."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO user_limits (model_id, end_user, daily_limit, monthly_limit)"
                " SELECT id, %s, %s, %s FROM models WHERE project_id = %s AND (name = %s OR id = %s)"
                " ON CONFLICT (model_id, end_user) DO UPDATE SET daily_limit = EXCLUDED.daily_limit,"
                "   monthly_limit = EXCLUDED.monthly_limit, updated_at = clock_timestamp()"
                " RETURNING model_id",
                (user, daily, monthly, project_id, model, model),
            )
            if await cur.fetchone() is None:
                return None
            return await self.model_for_user(conn, project_id, model, user)

    async def model_for_user(
        self, conn: AsyncConnection, project_id: str, model: str, user: str
    ) -> Row | None:
        """The model (by name, or by `mod_…` id) with the limits that apply to `user` (their own, else
        the model's defaults)."""
        cur = await conn.execute(
            "SELECT m.id, m.name, m.price_per_image, m.provider, m.upstream_model, m.native_policy,"
            " m.comfyui,"
            " coalesce(u.daily_limit, m.daily_limit) AS daily_limit,"
            " coalesce(u.monthly_limit, m.monthly_limit) AS monthly_limit"
            " FROM models m LEFT JOIN user_limits u ON u.model_id = m.id AND u.end_user = %s"
            " WHERE m.project_id = %s AND (m.name = %s OR m.id = %s)",
            (user, project_id, model, model),
        )
        return await cur.fetchone()

    async def count_images(
        self, conn: AsyncConnection, model: Row, user: str, images: int
    ) -> tuple[dt.date, str | None]:
        """Adds `images` to the user's counters for today and this month, each only if it stays within
        its limit. Answers the day counted, and the period ("day" or "month") that refused, if one did;
        the caller then rolls back. Concurrent calls queue on the counter rows' locks, so exactly the
        allowance gets through."""
        cur = await conn.execute("SELECT (clock_timestamp() AT TIME ZONE 'UTC')::date AS day")
        day = (await cur.fetchone())["day"]
        for period, limit in (("day", model["daily_limit"]), ("month", model["monthly_limit"])):
            allowed = _NO_LIMIT if limit is None else limit
            if images > allowed:
                return day, period
            cur = await conn.execute(
                "INSERT INTO usage_counters (model_id, end_user, period, period_start, images)"
                f" VALUES (%(model)s, %(user)s, %(period)s, {_PERIOD_START[period]}, %(images)s)"
                " ON CONFLICT (model_id, end_user, period, period_start) DO UPDATE"
                "   SET images = usage_counters.images + EXCLUDED.images"
                "   WHERE usage_counters.images + EXCLUDED.images <= %(allowed)s"
                " RETURNING images",
                {
                    "model": model["id"],
                    "user": user,
                    "period": period,
                    "day": day,
                    "images": images,
                    "allowed": allowed,
                },
            )
            if await cur.fetchone() is None:
                return day, period
        return day, None

    async def counted(self, conn: AsyncConnection, model_id: str, user: str, day: dt.date) -> dict[str, int]:
        """Images counted for the user today and this month, by period."""
        cur = await conn.execute(
            "SELECT period, images FROM usage_counters WHERE model_id = %(model)s AND end_user = %(user)s"
            f" AND ((period = 'day' AND period_start = {_PERIOD_START['day']})"
            f"   OR (period = 'month' AND period_start = {_PERIOD_START['month']}))",
            {"model": model_id, "user": user, "day": day},
        )
        counted = {"day": 0, "month": 0}
        counted.update({row["period"]: row["images"] for row in await cur.fetchall()})
        return counted

    async def today(self, conn: AsyncConnection) -> dt.date:
        cur = await conn.execute("SELECT (clock_timestamp() AT TIME ZONE 'UTC')::date AS day")
        return (await cur.fetchone())["day"]

    # -- credits -----------------------------------------------------------------------------------

    async def charge(self, conn: AsyncConnection, project_id: str, user: str, amount: int) -> int | None:
        """Takes `amount` from the user's balance; None (and nothing taken) when it is short."""
        cur = await conn.execute(
            "UPDATE credits SET balance = balance - %s, updated_at = clock_timestamp()"
            " WHERE project_id = %s AND end_user = %s AND balance >= %s RETURNING balance",
            (amount, project_id, user, amount),
        )
        row = await cur.fetchone()
        return None if row is None else row["balance"]

    async def add_credits(self, project_id: str, user: str, amount: int, most: int) -> int | None:
        """The new balance; None (and nothing changed) when it would fall below zero or above `most`,
        decided in the statement that writes it."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO credits (project_id, end_user, balance) SELECT %(project)s, %(user)s, %(amount)s"
                " WHERE %(amount)s BETWEEN 0 AND %(most)s"
                " ON CONFLICT (project_id, end_user) DO UPDATE"
                "   SET balance = credits.balance + EXCLUDED.balance, updated_at = clock_timestamp()"
                "   WHERE credits.balance + EXCLUDED.balance <= %(most)s"
                " RETURNING balance",
                {"project": project_id, "user": user, "amount": amount, "most": most},
            )
            if amount >= 0:
                row = await cur.fetchone()
                return None if row is None else row["balance"]
            cur = await conn.execute(
                "UPDATE credits SET balance = balance + %(amount)s, updated_at = clock_timestamp()"
                " WHERE project_id = %(project)s AND end_user = %(user)s AND balance + %(amount)s >= 0"
                " RETURNING balance",
                {"project": project_id, "user": user, "amount": amount},
            )
            row = await cur.fetchone()
            return None if row is None else row["balance"]

    async def balance(self, project_id: str, user: str) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT balance FROM credits WHERE project_id = %s AND end_user = %s", (project_id, user)
            )
            row = await cur.fetchone()
            return row["balance"] if row else 0

    # -- usage -------------------------------------------------------------------------------------

    async def usage(self, project_id: str, user: str, model: str, first: dt.date, last: dt.date) -> list[Row]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS generations,"
                " coalesce(sum(n) FILTER (WHERE status = 'completed'), 0) AS images,"
                " count(*) FILTER (WHERE status = 'failed') AS failed"
                " FROM generations WHERE project_id = %(project)s"
                "   AND created_at >= %(first)s::date::timestamp AT TIME ZONE 'UTC'"
                "   AND created_at < (%(last)s::date + 1)::timestamp AT TIME ZONE 'UTC'"
                "   AND (%(user)s = '' OR end_user = %(user)s)"
                "   AND (%(model)s = '' OR model_name = %(model)s OR model_id = %(model)s)"
                " GROUP BY day ORDER BY day",
                {"project": project_id, "user": user, "model": model, "first": first, "last": last},
            )
            return await cur.fetchall()
