CREATE TABLE projects (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        text NOT NULL DEFAULT '',
    -- sha256 of the key: keys are 256-bit random, so a fast hash is enough and lookups stay O(1).
    key_hash    bytea NOT NULL UNIQUE,
    admin       boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoked_at  timestamptz
);

CREATE TABLE models (
    id              text PRIMARY KEY,
    project_id      text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name            text NOT NULL,
    provider        text NOT NULL,
    upstream_model  text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (project_id, name)
);

CREATE TABLE model_servers (
    id               text PRIMARY KEY,
    model_id         text NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    position         integer NOT NULL,
    url              text NOT NULL,
    api_key          text NOT NULL DEFAULT '',
    max_concurrency  integer NOT NULL DEFAULT 1 CHECK (max_concurrency > 0),
    UNIQUE (model_id, position)
);

CREATE TABLE generations (
    id               text PRIMARY KEY,
    project_id       text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    model_id         text NOT NULL REFERENCES models (id),
    -- Denormalized so the `model` filter and old records survive a model being renamed or removed.
    model_name       text NOT NULL,
    server_id        text NOT NULL DEFAULT '',
    status           text NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    end_user         text NOT NULL DEFAULT '',
    reason           text NOT NULL DEFAULT '',
    prompt           text NOT NULL,
    negative_prompt  text NOT NULL DEFAULT '',
    n                integer NOT NULL CHECK (n BETWEEN 1 AND 4),
    width            integer NOT NULL,
    height           integer NOT NULL,
    seed             bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Newest-first keyset pages, per project and per project and user.
CREATE INDEX generations_by_project ON generations (project_id, created_at DESC, id DESC);
CREATE INDEX generations_by_user ON generations (project_id, end_user, created_at DESC, id DESC);

CREATE TABLE output_images (
    id             text PRIMARY KEY,
    generation_id  text NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    project_id     text NOT NULL,
    idx            integer NOT NULL,
    storage_key    text NOT NULL,
    sha256         text NOT NULL,
    content_type   text NOT NULL,
    size_bytes     bigint NOT NULL,
    width          integer NOT NULL,
    height         integer NOT NULL,
    UNIQUE (generation_id, idx)
);

-- Deleting a generation asks whether any other image still points at the same blob.
CREATE INDEX output_images_by_key ON output_images (storage_key);
