-- The durable job queue, model-server health, idempotency keys and webhook deliveries.

ALTER TABLE generations DROP CONSTRAINT generations_status_check;
ALTER TABLE generations ADD CONSTRAINT generations_status_check
    CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled'));
-- Records outlive their model: `model_name` keeps what they ran on after `DELETE /api/models/{name}`.
ALTER TABLE generations DROP CONSTRAINT generations_model_id_fkey;
ALTER TABLE generations ADD COLUMN priority text NOT NULL DEFAULT 'medium'
    CHECK (priority IN ('low', 'medium', 'high'));
ALTER TABLE generations ADD COLUMN callback_url text NOT NULL DEFAULT '';

-- A server with `benched_until` set gets no jobs; once that time passes a worker probes it, and only a
-- probe that succeeds clears it.
ALTER TABLE model_servers ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0;
ALTER TABLE model_servers ADD COLUMN benched_until timestamptz;
ALTER TABLE model_servers ADD COLUMN last_error text NOT NULL DEFAULT '';

ALTER TABLE projects ADD COLUMN webhook_secret text;

-- One row per generation that is not finished yet; the row goes when the generation reaches a terminal
-- status, so the queue stays as small as the backlog.
CREATE TABLE jobs (
    generation_id     text PRIMARY KEY REFERENCES generations (id) ON DELETE CASCADE,
    project_id        text NOT NULL,
    model_id          text NOT NULL,
    state             text NOT NULL CHECK (state IN ('queued', 'running')),
    score             integer NOT NULL,
    enqueued_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_after         timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- A sync caller's deadline: past it nobody is waiting, so the job is cancelled rather than run.
    deadline          timestamptz,
    -- Claims so far; a claim whose lease ran out without an answer is a lost worker.
    attempts          integer NOT NULL DEFAULT 0,
    server_failures   integer NOT NULL DEFAULT 0,
    last_server_id    text,
    last_error        text NOT NULL DEFAULT '',
    server_id         text,
    worker_id         text,
    lease_expires_at  timestamptz
);

CREATE INDEX jobs_ready ON jobs (score DESC, enqueued_at, generation_id) WHERE state = 'queued';
CREATE INDEX jobs_running_by_server ON jobs (server_id) WHERE state = 'running';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';

CREATE TABLE idempotency_keys (
    project_id     text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    key            text NOT NULL,
    request_hash   bytea NOT NULL,
    generation_id  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (project_id, key)
);

-- The outbox: written in the same transaction that finishes a generation, so no delivery is lost.
CREATE TABLE webhook_deliveries (
    id               text PRIMARY KEY,
    project_id       text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    generation_id    text NOT NULL,
    url              text NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    -- While an attempt is in flight this is its lease: a dispatcher that dies is retried after it.
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_status      integer NOT NULL DEFAULT 0,
    last_error       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at     timestamptz
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_generation ON webhook_deliveries (generation_id);
