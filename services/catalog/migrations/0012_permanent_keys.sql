-- A permanent URL names its image by a random key, not by the sha256 of its bytes: an unsigned image's
-- bytes can be recomputed by whoever guesses its prompt, seed and size. URLs already issued (the image's
-- storage key) keep working.
ALTER TABLE output_images ADD COLUMN permanent_key text;
UPDATE output_images SET permanent_key = storage_key;
ALTER TABLE output_images ALTER COLUMN permanent_key SET NOT NULL;
CREATE INDEX output_images_by_permanent_key ON output_images (permanent_key);
