-- A sweep's claim on an unused blob lasts until the sweeper reports the blob deleted or kept (or until
-- swept_until passes: a sweeper that died). Meanwhile nothing may record the blob's key: its bytes may
-- be going. A deleted blob's entry stays for a while with swept_at set: a job that stored the same
-- bytes before the delete and records them only now would point at nothing, so it stores them again
-- first. Either way the writer is refused, stores the bytes again, and asks again.
ALTER TABLE unused_blobs ADD COLUMN swept_until timestamptz, ADD COLUMN swept_at timestamptz;
CREATE INDEX unused_blobs_swept ON unused_blobs (swept_at) WHERE swept_at IS NOT NULL;
