-- Blobs that may no longer be used: from deleted generations and from results that were not recorded.
-- A sweep deletes one only after no row has used it for the grace period, because a job storing the
-- same bytes (keys are content hashes) may be about to record it.
CREATE TABLE unused_blobs (
    storage_key text PRIMARY KEY,
    noticed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX unused_blobs_by_age ON unused_blobs (noticed_at);
