-- The trace a generation was created in (its W3C traceparent), resumed by the worker that runs it and
-- the webhooks that tell of it. Empty when tracing is off.
ALTER TABLE generations ADD COLUMN trace_parent text NOT NULL DEFAULT '';
