-- Who watches a generation, so that its changes notify only when someone does. Most generations are
-- never watched: a sync create's job runs in the worker that answers it. Unlogged: a crash loses the
-- rows, and the watchers then see changes at their periodic re-read instead.
CREATE UNLOGGED TABLE generation_watches (
    generation_id  text NOT NULL,
    watch_id       text NOT NULL,
    since          timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (generation_id, watch_id)
);
CREATE INDEX generation_watches_by_age ON generation_watches (since);
