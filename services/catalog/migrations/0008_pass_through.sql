-- Model-native requests and image inputs. `native_input` is the model server's own request as JSON text
-- (text, not jsonb: it is passed on byte-for-value). A generation given `input` and no seed, width or
-- height leaves them to the model server. `inputs` lists the stored input images, `request_body` the
-- request as sent (inline images replaced by references).
ALTER TABLE generations
    ADD COLUMN native_version text NOT NULL DEFAULT '',
    ADD COLUMN native_input text NOT NULL DEFAULT '',
    ADD COLUMN inputs jsonb,
    ADD COLUMN request_body bytea NOT NULL DEFAULT '',
    ALTER COLUMN seed DROP NOT NULL;
-- The unused-blob sweep asks whether any generation still names a blob as an input.
CREATE INDEX generations_by_input ON generations USING gin (inputs jsonb_path_ops) WHERE inputs IS NOT NULL;
