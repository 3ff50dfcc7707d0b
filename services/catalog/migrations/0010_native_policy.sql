-- A model's own policy for model-native fields (NULL: its provider's defaults) and how many images a
-- server may return per image asked.
ALTER TABLE models
    ADD COLUMN native_policy jsonb,
    ADD COLUMN max_outputs_per_image integer NOT NULL DEFAULT 2 CHECK (max_outputs_per_image BETWEEN 1 AND 8);
