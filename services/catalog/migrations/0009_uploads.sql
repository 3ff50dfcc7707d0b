-- Input images uploaded once for later creates of the project to name by id. An upload expires; its
-- blob is then unused unless a generation or an output image still names it.
CREATE TABLE uploads (
    id            text PRIMARY KEY,
    project_id    text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    storage_key   text NOT NULL,
    sha256        text NOT NULL,
    content_type  text NOT NULL,
    size_bytes    bigint NOT NULL,
    width         integer NOT NULL,
    height        integer NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX uploads_by_key ON uploads (storage_key);
CREATE INDEX uploads_by_expiry ON uploads (expires_at);
