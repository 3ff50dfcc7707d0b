-- Images copied to Arweave, where a generator has a wallet. Keyed by storage key (content-addressed):
-- the same bytes are archived once, however many generations made them.
CREATE TABLE arweave_archives (
    storage_key      text PRIMARY KEY,
    content_type     text NOT NULL,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'posted', 'confirmed', 'abandoned')),
    attempts         integer NOT NULL DEFAULT 0,
    -- While an attempt is in flight this is its lease: an archiver that dies is retried after it.
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The signed transaction (arweave-js JSON, no data). Kept before posting, so an attempt whose
    -- answer was lost is settled by asking the node about this id rather than paying twice.
    transaction      jsonb,
    url              text NOT NULL DEFAULT '',
    last_error       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    posted_at        timestamptz,
    confirmed_at     timestamptz
);

CREATE INDEX arweave_archives_due ON arweave_archives (next_attempt_at)
    WHERE state IN ('pending', 'posted');
