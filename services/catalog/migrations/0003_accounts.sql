-- Projects' keys by kind, per-user limits per model, credits, and what each generation was charged.

-- A secret key acts for its project; a publishable key (safe in a browser) only for its one end user.
ALTER TABLE api_keys ADD COLUMN kind text NOT NULL DEFAULT 'secret' CHECK (kind IN ('secret', 'publishable'));
ALTER TABLE api_keys ADD COLUMN end_user text NOT NULL DEFAULT '';
-- What a listing shows in place of the key: its prefix and last four characters.
ALTER TABLE api_keys ADD COLUMN hint text NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD CONSTRAINT api_keys_publishable_user CHECK (kind = 'secret' OR end_user <> '');
CREATE INDEX api_keys_by_project ON api_keys (project_id, created_at);

-- Defaults for every user of the model; NULL is no limit. Images, not requests, are counted.
ALTER TABLE models ADD COLUMN daily_limit integer CHECK (daily_limit >= 0);
ALTER TABLE models ADD COLUMN monthly_limit integer CHECK (monthly_limit >= 0);
ALTER TABLE models ADD COLUMN price_per_image bigint NOT NULL DEFAULT 0 CHECK (price_per_image >= 0);

-- A user's own limits for one model, in place of the model's defaults (NULL: the default applies).
CREATE TABLE user_limits (
    model_id       text NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    end_user       text NOT NULL,
    daily_limit    integer CHECK (daily_limit >= 0),
    monthly_limit  integer CHECK (monthly_limit >= 0),
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (model_id, end_user)
);

-- Images counted against each UTC day and calendar month. A create checks and adds in one UPSERT on
-- the row, so concurrent creates queue on its lock and exactly the allowance gets through.
CREATE TABLE usage_counters (
    model_id      text NOT NULL,
    end_user      text NOT NULL,
    period        text NOT NULL CHECK (period IN ('day', 'month')),
    period_start  date NOT NULL,
    images        integer NOT NULL CHECK (images >= 0),
    PRIMARY KEY (model_id, end_user, period, period_start)
);

CREATE TABLE credits (
    project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    end_user    text NOT NULL,
    balance     bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (project_id, end_user)
);

-- What the create took, so a failed or cancelled generation gives back exactly that: the UTC day whose
-- counters it was added to (NULL when none were), and the credits it cost.
ALTER TABLE generations ADD COLUMN quota_day date;
ALTER TABLE generations ADD COLUMN credits_charged bigint NOT NULL DEFAULT 0;
