-- Per-key request rates. NULL takes the platform's default (IMAGEGEN_KEY_RATE_PER_SECOND / _BURST).
ALTER TABLE api_keys
    ADD COLUMN rate_per_second double precision CHECK (rate_per_second > 0),
    ADD COLUMN rate_burst integer CHECK (rate_burst > 0);

-- One token bucket per key, touched by every request. UNLOGGED: its writes make no WAL, so taking a
-- token never waits for a disk flush; after a crash the buckets start full again, which only forgives.
CREATE UNLOGGED TABLE rate_buckets (
    key_id text PRIMARY KEY,
    rate double precision NOT NULL,
    burst integer NOT NULL,
    tokens double precision NOT NULL,
    refilled_at timestamptz NOT NULL,
    granted boolean NOT NULL
);
