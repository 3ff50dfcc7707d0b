-- A balance never passes the most a user may hold (2,000,000,000, which the API's int32 holds). Balances
-- a bug let past it (the cap was checked after the write) are brought back to it.
UPDATE credits SET balance = 2000000000, updated_at = clock_timestamp() WHERE balance > 2000000000;
ALTER TABLE credits ADD CONSTRAINT credits_balance_cap CHECK (balance <= 2000000000);
