-- An unused blob's noticed_at is now always when it became unused: the sweep keeps bytes stored again
-- since then (a job storing the same bytes is about to record them). An erased user's blobs, which had
-- noticed_at '-infinity' to skip the grace period, say so by `at_once` instead.
ALTER TABLE unused_blobs ADD COLUMN at_once boolean NOT NULL DEFAULT false;
UPDATE unused_blobs SET at_once = true, noticed_at = clock_timestamp() WHERE noticed_at = '-infinity';
