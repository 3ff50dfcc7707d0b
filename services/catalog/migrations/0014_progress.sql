-- Where a generation stands: when its job last started on a server and when it finished, and while it
-- runs, how far its server says it got.
ALTER TABLE generations
    ADD COLUMN started_at timestamptz,
    ADD COLUMN completed_at timestamptz;
UPDATE generations SET completed_at = updated_at
    WHERE status IN ('completed', 'failed', 'cancelled');

ALTER TABLE jobs
    ADD COLUMN progress real CHECK (progress BETWEEN 0 AND 1),
    ADD COLUMN step integer,
    ADD COLUMN steps integer;

-- A pending generation's queue position counts the jobs of its model ahead of it in the queue's order.
CREATE INDEX jobs_queued_by_model ON jobs (model_id, score DESC, enqueued_at, generation_id)
    WHERE state = 'queued';

-- Every change to a model's queue (a job queued, started, requeued or gone) wakes the watchers of that
-- model's pending generations, whose positions it moves; Postgres folds repeats within a transaction.
CREATE FUNCTION jobs_notify_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('imagegen_queue', OLD.model_id);
    ELSE
        PERFORM pg_notify('imagegen_queue', NEW.model_id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_queue_changed AFTER INSERT OR DELETE OR UPDATE OF state ON jobs
    FOR EACH ROW EXECUTE FUNCTION jobs_notify_queue();

-- The latest preview image of each running job. Previews are too large for NOTIFY (8000 bytes) and
-- worthless after a crash, so they live here unlogged (no WAL), one row per job, gone with the job.
CREATE UNLOGGED TABLE job_previews (
    generation_id  text PRIMARY KEY REFERENCES jobs (generation_id) ON DELETE CASCADE,
    data           bytea NOT NULL,
    content_type   text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- A ComfyUI model's workflow and where imagegen's fields go in it (ComfyWorkflow, proto field names).
ALTER TABLE models ADD COLUMN comfyui jsonb;

-- Webhooks by event (Replicate's webhook_events_filter): what a generation's webhook is sent for, and
-- which event each delivery tells.
ALTER TABLE generations ADD COLUMN webhook_events_filter text[] NOT NULL DEFAULT '{}';
ALTER TABLE webhook_deliveries ADD COLUMN event text NOT NULL DEFAULT 'completed'
    CHECK (event IN ('start', 'progress', 'completed'));
CREATE INDEX webhook_deliveries_progress ON webhook_deliveries (generation_id, created_at)
    WHERE event = 'progress';

-- An image stored with variants (WebP thumbnails at the fixed widths below its own, under keys derived
-- from its own); older images have none.
ALTER TABLE output_images ADD COLUMN variants boolean NOT NULL DEFAULT false;
